"""Test (and evaluate) a detector; mmdet's tools/test.py with mmdet_scconv
registered.

Example:
    python tools/test.py configs/retinanet_scconv_r50_coco.py CHECKPOINT
"""
import argparse

from mmdet.engine.hooks.utils import trigger_visualization_hook
from mmdet.evaluation import DumpDetResults
from mmdet.utils import setup_cache_size_limit_of_dynamo

import mmdet_scconv  # noqa: F401  (registers SCConvResNet, safe checkpoints)
from mmdet_scconv.apis import build_runner, load_config
from mmdet_scconv.apis.cli import add_common_args, parse_common_args


def parse_args():
    parser = argparse.ArgumentParser(description='Test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir', help='the dir to save the evaluation metrics')
    parser.add_argument(
        '--out', help='dump predictions to a .pkl file for offline eval')
    parser.add_argument(
        '--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir', help='save painted images to work_dir/<time>/SHOW_DIR')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument(
        '--check-data',
        action='store_true',
        help='first check that every image exists and decodes and every '
        'box is valid, reporting all problems at once')
    add_common_args(parser)
    return parse_common_args(parser)


def main():
    args = parse_args()
    setup_cache_size_limit_of_dynamo()
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        raise ValueError(f'--out must be a .pkl file, got {args.out!r}.')
    cfg = load_config(args.config, args.cfg_options, args.work_dir,
                      args.launcher)
    cfg.load_from = args.checkpoint
    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args)
    runner = build_runner(
        cfg, check_splits=('test', ), check_data=args.check_data)
    if args.out is not None:
        runner.test_evaluator.metrics.append(
            DumpDetResults(out_file_path=args.out))
    runner.test()


if __name__ == '__main__':
    main()

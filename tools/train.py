"""Train a detector; mmdet's tools/train.py with mmdet_scconv registered.

Example:
    python tools/train.py configs/retinanet_scconv_r50_coco.py
"""
import argparse

from mmdet.utils import setup_cache_size_limit_of_dynamo

import mmdet_scconv  # noqa: F401  (registers SCConvResNet, safe checkpoints)
from mmdet_scconv.apis import apply_train_options, build_runner, load_config
from mmdet_scconv.apis.cli import add_common_args, parse_common_args


def parse_args():
    parser = argparse.ArgumentParser(description='Train a detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the lr by the real total batch size')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from this checkpoint; with no path, from the latest '
        'checkpoint in the work dir')
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
    cfg = load_config(args.config, args.cfg_options, args.work_dir,
                      args.launcher)
    apply_train_options(cfg, args.amp, args.auto_scale_lr, args.resume)
    build_runner(
        cfg, check_splits=('train', 'val'),
        check_data=args.check_data).train()


if __name__ == '__main__':
    main()

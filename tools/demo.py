"""Generate the shapes set if absent, train, test and print the mAPs.

With ``--compare``, train and test SCConv-R50 and ResNet-50 the same way and
write ``WORK_DIR/report.md`` with both side by side; with ``--seeds N`` too,
N runs of each (seeds 0..N-1, or those of ``--seed-list``), reported as the
paper reports: medians, ranges and whether the models differ.

Example:
    python tools/demo.py configs/demo/retinanet_scconv_r50_shapes.py
    python tools/demo.py configs/demo/retinanet_scconv_r50_shapes.py \
        --compare --seeds 3 --work-dir work_dirs/demo_seeds
"""
import argparse

import mmdet_scconv  # noqa: F401  (registers SCConvResNet, safe checkpoints)
from mmdet_scconv.apis import load_config
from mmdet_scconv.apis.cli import add_cfg_options
from mmdet_scconv.apis.demo import run_comparison, run_demo


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='demo config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--compare',
        action='store_true',
        help='also train ResNet-50 the same way and write a report')
    parser.add_argument(
        '--seeds',
        type=int,
        help='with --compare: train and test each model with this many '
        'seeds (0..N-1)')
    parser.add_argument(
        '--seed-list',
        type=int,
        nargs='+',
        help='with --compare: the seeds to use instead of 0..N-1')
    add_cfg_options(parser, 'train_cfg.max_iters=40')
    args = parser.parse_args()
    if (args.seeds is not None or args.seed_list) and not args.compare:
        parser.error('--seeds and --seed-list go with --compare')
    if args.seeds is not None and args.seeds < 1:
        parser.error(f'--seeds must be at least 1, got {args.seeds}')
    if args.seeds is not None and args.seed_list and len(
            args.seed_list) != args.seeds:
        parser.error(f'--seed-list gives {len(args.seed_list)} seeds for '
                     f'--seeds {args.seeds}')
    if args.seed_list and len(set(args.seed_list)) != len(args.seed_list):
        parser.error(f'--seed-list repeats a seed: {args.seed_list}')
    return args


def main():
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options, work_dir=args.work_dir)
    seeds = args.seed_list or (list(range(args.seeds))
                               if args.seeds is not None else None)
    if args.compare:
        run_comparison(cfg, seeds)
    else:
        run_demo(cfg)


if __name__ == '__main__':
    main()

"""Generate the shapes set if absent, train, test and print the mAPs.

With ``--compare``, train and test SCConv-R50 and ResNet-50 the same way and
write ``WORK_DIR/report.md`` with both side by side.

Example:
    python tools/demo.py configs/demo/retinanet_scconv_r50_shapes.py
    python tools/demo.py configs/demo/retinanet_scconv_r50_shapes.py \
        --compare --cfg-options train_cfg.max_iters=40
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
    add_cfg_options(parser, 'train_cfg.max_iters=40')
    return parser.parse_args()


def main():
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options, work_dir=args.work_dir)
    if args.compare:
        run_comparison(cfg)
    else:
        run_demo(cfg)


if __name__ == '__main__':
    main()

"""Generate the shapes set if absent, train, test and print the mAPs.

Example:
    python tools/demo.py configs/demo/retinanet_scconv_r50_shapes.py
"""
import argparse

import mmdet_scconv  # noqa: F401  (registers SCConvResNet, safe checkpoints)
from mmdet_scconv.apis import load_config
from mmdet_scconv.apis.demo import run_demo


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='demo config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    return parser.parse_args()


def main():
    args = parse_args()
    run_demo(load_config(args.config, work_dir=args.work_dir))


if __name__ == '__main__':
    main()

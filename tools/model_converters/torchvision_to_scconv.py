"""Turn a torchvision (or mmdet) ResNet checkpoint into a Pretrained file
for SCConvResNet, keeping every tensor whose name and shape match.

Example:
    python tools/model_converters/torchvision_to_scconv.py \
        resnet50-0676ba61.pth scconv_r50_from_resnet50.pth --depth 50
"""
import argparse

from mmdet.registry import MODELS

import mmdet_scconv  # noqa: F401  (registers SCConvResNet, safe checkpoints)
from mmdet_scconv.models.backbones import convert_resnet_checkpoint


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='torchvision/mmdet ResNet checkpoint')
    parser.add_argument('dst', help='output checkpoint path')
    parser.add_argument(
        '--depth', type=int, default=50, choices=[50, 101, 152])
    return parser.parse_args()


def main():
    args = parse_args()
    backbone = MODELS.build(dict(type='SCConvResNet', depth=args.depth))
    summary = convert_resnet_checkpoint(args.src, args.dst, backbone)
    print(f'Kept {len(summary.loaded)} tensors; dropped '
          f'{len(summary.unexpected)} the backbone has no use for '
          f'{summary.unexpected}; SCConvResNet-{args.depth} will initialise '
          f'{len(summary.missing)} tensors the file lacks.')
    print(f'Wrote {args.dst}; use it with init_cfg=dict(type="Pretrained", '
          f'checkpoint="{args.dst}").')


if __name__ == '__main__':
    main()

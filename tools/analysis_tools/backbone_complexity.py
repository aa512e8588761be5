"""Print parameters and FLOPs of SCConvResNet against mmdet's ResNet.

Example:
    python tools/analysis_tools/backbone_complexity.py --depths 50 101 \
        --shape 224 224
"""
import argparse

import mmdet_scconv  # noqa: F401  (registers SCConvResNet)
from mmdet_scconv.analysis import compare_backbones, format_comparison


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--depths',
        type=int,
        nargs='+',
        default=[50, 101],
        help='ResNet depths to compare')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=2,
        default=[224, 224],
        metavar=('H', 'W'),
        help='input image size')
    parser.add_argument(
        '--alpha', type=float, default=0.5, help='SCConv split ratio')
    return parser.parse_args()


def main():
    args = parse_args()
    pairs = compare_backbones(
        args.depths, tuple(args.shape), scconv_cfg=dict(alpha=args.alpha))
    print(format_comparison(pairs, args.shape))


if __name__ == '__main__':
    main()

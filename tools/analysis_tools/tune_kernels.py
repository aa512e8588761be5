"""Sweep the launch settings of SCConv's inference kernels at every SCConv
shape of a ResNet trunk (GPU), and print the best per shape.

Every setting's output is checked against the defaults' first. The defaults
live in ``squeeze_launch`` (``mmdet_scconv/layers/kernels/sru_squeeze.py``)
and ``cru_launch`` (``.../cru.py``).

Example (about 3 minutes on an H100/H200, most of it compiling):
    python tools/analysis_tools/tune_kernels.py --dtype bf16
"""
import argparse
import os
import sys

sys.path.insert(
    0,
    os.path.dirname(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from mmdet_scconv.benchmark.tuning import format_tuned, tune_trunk


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--depth', type=int, choices=[50, 101], default=50)
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument(
        '--size', type=int, nargs=2, default=(800, 1216), metavar=('H', 'W'))
    parser.add_argument(
        '--dtype', choices=['fp32', 'bf16', 'fp16'], default='bf16')
    parser.add_argument(
        '--stages',
        type=int,
        nargs='+',
        default=[1, 2, 3, 4],
        choices=[1, 2, 3, 4])
    parser.add_argument(
        '--verbose',
        action='store_true',
        help='also list the settings that failed, and why')
    return parser.parse_args()


def main():
    args = parse_args()
    import torch
    if not torch.cuda.is_available():
        sys.exit('tune_kernels.py times Triton kernels on a CUDA device; '
                 'torch sees none.')
    rows = tune_trunk(args.depth, args.batch, *args.size, args.dtype, 'cuda',
                      tuple(args.stages))
    print(format_tuned(rows))
    if args.verbose:
        for row in rows:
            for failure in row.failed:
                print(f'{row.kernel} {row.layer}: {failure}')


if __name__ == '__main__':
    main()

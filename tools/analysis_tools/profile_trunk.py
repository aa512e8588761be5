"""Print the operators a trunk's inference or training step spends its
time in (torch.profiler), e.g. to see what SCConv costs beyond its convs.

Example:
    python tools/analysis_tools/profile_trunk.py --impl fast --device cuda \
        --dtype bf16 --channels-last --mode train
"""
import argparse
import os
import sys

sys.path.insert(
    0,
    os.path.dirname(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from mmdet_scconv.benchmark.profile import profile_trunk


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--impl',
        default='fast',
        choices=['resnet', 'fast', 'deploy', 'reference'])
    parser.add_argument('--depth', type=int, choices=[50, 101], default=50)
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cuda')
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument(
        '--size', type=int, nargs=2, default=(800, 1216), metavar=('H', 'W'))
    parser.add_argument(
        '--dtype', choices=['fp32', 'bf16', 'fp16'], default='bf16')
    parser.add_argument('--channels-last', action='store_true')
    parser.add_argument('--mode', choices=['infer', 'train'], default='infer')
    parser.add_argument('--rows', type=int, default=25)
    return parser.parse_args()


def main():
    args = parse_args()
    print(
        profile_trunk(
            args.depth,
            args.impl,
            args.device,
            args.batch,
            *args.size,
            args.dtype,
            args.channels_last,
            args.mode == 'train',
            rows=args.rows))


if __name__ == '__main__':
    main()

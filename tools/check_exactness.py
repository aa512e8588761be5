"""Check that SCConv's fast paths equal the reference path on a device
(training outputs and gradients, inference and deploy outputs, fp32 and
bf16); exits 1 on any mismatch.

Example:
    python tools/check_exactness.py --device cuda
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mmdet_scconv.benchmark.exactness import check_paths, format_checks


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cuda')
    parser.add_argument(
        '--impls',
        nargs='+',
        default=['fast'],
        choices=['fast', 'triton', 'torch'])
    parser.add_argument(
        '--dtypes',
        nargs='+',
        default=['fp32', 'bf16'],
        choices=['fp32', 'bf16', 'fp16'])
    args = parser.parse_args()
    checks = check_paths(args.device, args.impls, args.dtypes)
    print(format_checks(checks))
    failed = [c for c in checks if not c.ok]
    print(f'{len(checks) - len(failed)}/{len(checks)} tensors within '
          'tolerance')
    sys.exit(1 if failed else 0)


if __name__ == '__main__':
    main()

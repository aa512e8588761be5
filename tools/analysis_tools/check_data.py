"""Check every image and box of a config's datasets before a long run.

Every annotated image must exist and decode at its annotated size, and
every box must have positive size, lie inside its image and name a known
category. All problems are reported at once; the exit status is 1 if there
are any. ``tools/train.py --check-data`` and ``tools/test.py --check-data``
run the same check first.

Example:
    python tools/analysis_tools/check_data.py \
        configs/retinanet_scconv_r50_coco.py --splits train val --workers 8
"""
import argparse
import sys
import time

import mmdet_scconv  # noqa: F401  (registers SCConvResNet)
from mmdet_scconv.apis import load_config
from mmdet_scconv.apis.cli import add_common_args
from mmdet_scconv.apis.data_files import check_data_files


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--splits',
        nargs='+',
        choices=['train', 'val', 'test'],
        default=['train', 'val', 'test'],
        help='dataloaders to check')
    parser.add_argument(
        '--workers', type=int, default=8, help='processes decoding images')
    add_common_args(parser)
    return parser.parse_args()


def main():
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options)
    start = time.perf_counter()
    reports = check_data_files(cfg, args.splits, args.workers)
    for report in reports:
        print(report.summary())
    images = sum(report.images for report in reports)
    print(f'checked {images} images in {time.perf_counter() - start:.1f} s '
          f'with {args.workers} workers')
    sys.exit(1 if any(report.problems for report in reports) else 0)


if __name__ == '__main__':
    main()

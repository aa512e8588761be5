"""Compare trained and tested runs in one report, as the paper's tables do.

Reads MMEngine work dirs of ``tools/train.py`` and ``tools/test.py`` runs and
writes ``OUT/report.md`` (one row per run, the paper's row beside it where
the paper has one) and ``OUT/curves.png`` (losses, lr and validation mAP).

Example:
    python tools/analysis_tools/compare_runs.py work_dirs/retinanet_r50_voc \
        work_dirs/retinanet_scconv_r50_voc --out work_dirs/compare_voc
"""
import argparse

import mmdet_scconv  # noqa: F401  (registers SCConvResNet)
from mmdet_scconv.analysis import load_run, write_report


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('work_dirs', nargs='+', help='work dirs to compare')
    parser.add_argument(
        '--out', required=True, help='dir for report.md and curves.png')
    parser.add_argument(
        '--names', nargs='+', help='a label per work dir (default: its name)')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=2,
        default=[224, 224],
        metavar=('H', 'W'),
        help='input size for the backbone parameters and FLOPs')
    return parser.parse_args()


def main():
    args = parse_args()
    names = args.names or [None] * len(args.work_dirs)
    if len(names) != len(args.work_dirs):
        raise SystemExit(f'--names gives {len(names)} labels for '
                         f'{len(args.work_dirs)} work dirs.')
    runs = [
        load_run(work_dir, name)
        for work_dir, name in zip(args.work_dirs, names)
    ]
    path = write_report(runs, args.out, tuple(args.shape))
    print(open(path).read())


if __name__ == '__main__':
    main()

"""Compare trained and tested runs in one report, as the paper's tables do.

Reads MMEngine work dirs of ``tools/train.py`` and ``tools/test.py`` runs,
groups the runs that differ only in their seed (or as ``--group`` says) and
writes ``OUT/report.md`` (per group the median, min-max and count of each
metric, the paper's row beside it where the paper has one, and the
differences between groups with bootstrap intervals), ``OUT/metrics.png``
(every run's AP by group) and ``OUT/curves.png`` (losses, lr and validation
mAP: each group's median and min-max band).

Example:
    python tools/analysis_tools/compare_runs.py work_dirs/r50_voc_seed* \
        work_dirs/scconv_r50_voc_seed* --out work_dirs/compare_voc
"""
import argparse
import os.path as osp

import mmdet_scconv  # noqa: F401  (registers SCConvResNet)
from mmdet_scconv.analysis import (GroupError, group_runs, load_run,
                                   write_report)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('work_dirs', nargs='+', help='work dirs to compare')
    parser.add_argument(
        '--out', required=True, help='dir for report.md and curves.png')
    parser.add_argument(
        '--names', nargs='+', help='a label per work dir (default: its name)')
    parser.add_argument(
        '--group',
        nargs='+',
        default=[],
        metavar='NAME=DIR,DIR',
        help='put these work dirs in one group (default: runs whose configs '
        'differ only in randomness.seed)')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=2,
        default=[224, 224],
        metavar=('H', 'W'),
        help='input size for the backbone parameters and FLOPs')
    return parser.parse_args()


def parse_groups(specs, work_dirs):
    """``NAME=DIR,DIR`` specs as {name: [work dir as given]}; a dir is
    matched to the positional work dir that is the same path."""
    given = {osp.realpath(d): d for d in work_dirs}
    groups = {}
    for spec in specs:
        name, sep, dirs = spec.partition('=')
        if not (sep and name and dirs):
            raise SystemExit(f'--group takes NAME=DIR,DIR,..., got {spec!r}.')
        if name in groups:
            raise SystemExit(f'--group {name} is given twice.')
        groups[name] = [
            given.get(osp.realpath(d), d) for d in dirs.split(',') if d
        ]
    return groups


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
    try:
        groups = group_runs(runs, parse_groups(args.group, args.work_dirs))
    except GroupError as error:
        raise SystemExit(str(error))
    path = write_report(runs, args.out, tuple(args.shape), groups=groups)
    print(open(path).read())


if __name__ == '__main__':
    main()

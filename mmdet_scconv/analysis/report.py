"""Runs side by side as the paper reports them: groups of runs that differ
only in their seed, each metric's median (the paper's number), min-max and
count, the differences between groups with their intervals, the paper's row
beside, and pictures of the runs and of the training curves."""
import datetime
import itertools
import os
import os.path as osp
import statistics
from typing import Optional, Sequence

from .complexity import backbone_complexity
from .groups import (COCO_METRICS, LEVEL, RESAMPLES, SIZE_METRICS, VOC_METRIC,
                     RunGroup, difference, group_runs, metric_value)
from .paper import DATASET_NAMES, paper_row
from .runs import MIN_TIMED_ITERS, WARMUP_ITERS, Run

_EMPTY = '–'


def _spread(summary, digits, scale=1):
    """``median (min–max)`` of a :class:`.groups.Summary` times ``scale``
    (100: percent), the value alone for a single run, or "–"."""
    if summary is None:
        return _EMPTY
    median, low, high = (f'{scale * v:.{digits}f}'
                         for v in (summary.median, summary.low, summary.high))
    return median if summary.count == 1 else f'{median} ({low}–{high})'


def _complexity(run, input_size):
    backbone = run.cfg.model.backbone.to_dict()
    backbone['init_cfg'] = None  # count, never load weights
    return backbone_complexity(backbone, input_size)


def _metric_columns(groups):
    """The AP columns, AP_S/M/L and VOC mAP@.5 where some run has them."""
    runs = [run for group in groups for run in group.runs]
    optional = [name for name, _ in SIZE_METRICS] + [VOC_METRIC[0]]
    return [name for name, _ in COCO_METRICS] + [
        name for name in optional if any(
            metric_value(run, name) is not None for run in runs)
    ]


def _ap_columns(groups):
    """:func:`_metric_columns` without AP_S/M/L: the metrics compared
    between groups and pictured."""
    sizes = dict(SIZE_METRICS)
    return [m for m in _metric_columns(groups) if m not in sizes]


def groups_table(groups: Sequence[RunGroup], input_size=(224, 224)) -> str:
    """A markdown table: one row per group (a single run is a group of
    one), each followed by the paper's row for the same detector, backbone
    and dataset where the paper has one. Metric cells of a group give the
    median and the min-max over its runs.

    Args:
        groups (Sequence[RunGroup]): From :func:`.groups.group_runs`.
        input_size (tuple[int, int]): Height and width at which the
            backbones' parameters and FLOPs are counted.
    """
    metrics = _metric_columns(groups)
    columns = ['run', 'backbone', 'data', 'runs', 'params (M)', 'FLOPs (G)']
    columns += metrics + ['iters', 's/iter (train)', 'img/s (test)']
    lines = [
        '| ' + ' | '.join(columns) + ' |',
        '|---|---|---|' + '---:|' * (len(columns) - 3)
    ]
    for group in groups:
        run = group.runs[0]
        complexity = _complexity(run, input_size)
        cells = [
            group.name, run.backbone, run.dataset_name,
            str(len(group.runs)), f'{complexity.params / 1e6:.2f}',
            f'{complexity.flops / 1e9:.2f}'
        ]
        cells += [
            _spread(
                group.summary(metric),
                digits=2 if metric == VOC_METRIC[0] else 1,
                scale=100) for metric in metrics
        ]
        cells += [
            str(run.iterations),
            _spread(group.speed('seconds_per_iter'), 3),
            _spread(group.speed('images_per_second'), 1)
        ]
        lines.append('| ' + ' | '.join(cells) + ' |')
        paper = paper_row(run.detector, run.dataset, run.backbone)
        if paper is not None:
            lines.append('| ' + ' | '.join(_paper_cells(paper, metrics)) +
                         ' |')
    return '\n'.join(lines)


def runs_table(runs: Sequence[Run], input_size=(224, 224)) -> str:
    """:func:`groups_table` of ``runs`` grouped by :func:`group_runs`."""
    return groups_table(group_runs(runs), input_size)


def differences_table(groups: Sequence[RunGroup]) -> Optional[str]:
    """Every later group's medians minus every earlier group's, per AP
    metric, with the bootstrap interval; None for fewer than two groups."""
    if len(groups) < 2:
        return None
    metrics = _ap_columns(groups)
    lines = [
        '| difference | metric | median difference | '
        f'{round(100 * LEVEL)}% interval | verdict |', '|---|---|---:|---|---|'
    ]
    for first, second in itertools.combinations(groups, 2):
        for metric in metrics:
            diff = difference(first, second, metric)
            if diff.value is None:
                cells = [_EMPTY, _EMPTY, diff.note]
            elif diff.low is None:
                cells = [f'{100 * diff.value:+.2f}', _EMPTY, diff.note]
            else:
                runs = sorted(
                    {len(first.values(metric)),
                     len(second.values(metric))})
                counts = ' and '.join(map(
                    str, runs)) + (' runs' if len(runs) > 1 else ' runs each')
                verdict = (f'{second.name} differs from {first.name}'
                           if diff.distinguishable else
                           f'not distinguishable with {counts}')
                cells = [
                    f'{100 * diff.value:+.2f}',
                    f'[{100 * diff.low:+.2f}, {100 * diff.high:+.2f}]', verdict
                ]
            lines.append(f'| {second.name} − {first.name} | {metric} | ' +
                         ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def _paper_cells(paper, metrics):
    printed = dict(AP=paper.ap, AP50=paper.ap50, AP75=paper.ap75)
    cells = [
        '**paper**', paper.backbone, DATASET_NAMES[paper.dataset], _EMPTY,
        f'{paper.params / 1e6:.2f}*', f'{paper.flops / 1e9:.2f}*'
    ]
    cells += [str(printed.get(metric, _EMPTY)) for metric in metrics]
    return cells + [_EMPTY] * 3


def _series(run):
    """Training curves of a run: name -> {iteration: value}."""
    names = sorted({
        key
        for entry in run.train
        for key in entry if key.startswith('loss')
    }) + ['lr']
    series = {
        name: {
            e['iter']: e[name]
            for e in run.train if name in e
        }
        for name in names
    }
    for key in ('coco/bbox_mAP', VOC_METRIC[1]):
        points = {e['iter']: e[key] for e in run.val if key in e}
        if points:
            series[f'val {key}'] = points
    return series


def _band(curves):
    """Median, min and max over runs at the iterations all runs logged."""
    iters = sorted(set.intersection(*(set(c) for c in curves)))
    values = [[c[i] for c in curves] for i in iters]
    return (iters, [statistics.median(v) for v in values],
            [min(v) for v in values], [max(v) for v in values])


def plot_curves(groups: Sequence[RunGroup], path: str) -> str:
    """Draw each group's loss terms, lr and validation mAP over
    iterations, one panel per quantity: the median of the group's runs as a
    line, their min-max as a band (a single run: its line). Write a PNG.

    Returns:
        str: ``path``.
    """
    from matplotlib.figure import Figure
    group_series = [[_series(run) for run in group.runs] for group in groups]
    names = list(
        dict.fromkeys(n for runs in group_series for s in runs for n in s))
    columns = min(3, len(names))
    rows = -(-len(names) // columns)
    figure = Figure(figsize=(5 * columns, 3.4 * rows), tight_layout=True)
    for index, name in enumerate(names):
        axes = figure.add_subplot(rows, columns, index + 1)
        for group, runs in zip(groups, group_series):
            curves = [s[name] for s in runs if s.get(name)]
            if not curves:
                continue
            iters, median, low, high = _band(curves)
            label = group.name + (f' (median of {len(curves)})'
                                  if len(curves) > 1 else '')
            line, = axes.plot(
                iters,
                median,
                label=label,
                marker='o' if name.startswith('val') else None)
            if len(curves) > 1:
                axes.fill_between(
                    iters, low, high, color=line.get_color(), alpha=0.25)
        axes.set_title(name)
        axes.set_xlabel('iteration')
        if name == 'lr':
            axes.set_yscale('log')
        axes.legend(fontsize='small')
    figure.savefig(path, dpi=100)
    return path


def plot_metrics(groups: Sequence[RunGroup], path: str) -> str:
    """Per AP metric (AP, AP50, AP75; VOC mAP@.5 where present) a panel
    with each group's runs as points and their median as a bar. Write a
    PNG.

    Returns:
        str: ``path``.
    """
    from matplotlib.figure import Figure
    metrics = _ap_columns(groups)
    figure = Figure(
        figsize=(max(3.2, 1.3 * len(groups) + 1) * len(metrics), 3.6),
        tight_layout=True)
    for index, metric in enumerate(metrics):
        axes = figure.add_subplot(1, len(metrics), index + 1)
        for position, group in enumerate(groups):
            values = [100 * v for v in group.values(metric).values()]
            if not values:
                continue
            offsets = [(i - (len(values) - 1) / 2) * 0.08
                       for i in range(len(values))]
            axes.scatter([position + o for o in offsets],
                         values,
                         s=22,
                         zorder=3)
            median = statistics.median(values)
            axes.hlines(median, position - 0.3, position + 0.3, color='k')
        axes.set_xticks(range(len(groups)))
        axes.set_xticklabels([g.name for g in groups],
                             rotation=20,
                             ha='right',
                             fontsize='small')
        axes.set_xlim(-0.6, len(groups) - 0.4)
        axes.set_title(f'{metric} (runs; bar: median)')
        axes.set_ylabel('%')
    figure.savefig(path, dpi=100)
    return path


def _notes(groups):
    """What the table leaves out, and why: runs without a metric some
    other run of their group has, speed cells without a steady state."""
    notes = []
    metrics = _metric_columns(groups)
    for group in groups:
        for metric in metrics:
            summary = group.summary(metric)
            if summary is not None and summary.missing:
                notes.append(
                    f'{group.name}: {metric} is the median of '
                    f'{summary.count} of {len(group.runs)} runs; '
                    f'{", ".join(summary.missing)} did not report it.')
        for run in group.runs:
            notes += [
                note
                for note in (run.speed_note('train'), run.speed_note('test'))
                if note
            ]
    return notes


def write_report(runs: Sequence[Run],
                 out_dir: str,
                 input_size=(224, 224),
                 extra: Optional[str] = None,
                 groups: Optional[Sequence[RunGroup]] = None) -> str:
    """Write ``out_dir/report.md``, ``out_dir/metrics.png`` and
    ``out_dir/curves.png``.

    Args:
        runs (Sequence[Run]): The runs, in the table's order.
        out_dir (str): Where to write; created if missing.
        input_size (tuple[int, int]): See :func:`groups_table`.
        extra (str, optional): Markdown appended to the report (e.g. a
            picture of detections).
        groups (Sequence[RunGroup], optional): The runs' groups; default:
            :func:`group_runs` (runs differing only in their seed).

    Returns:
        str: The report's path.
    """
    groups = list(groups or group_runs(runs))
    os.makedirs(out_dir, exist_ok=True)
    plot_curves(groups, osp.join(out_dir, 'curves.png'))
    plot_metrics(groups, osp.join(out_dir, 'metrics.png'))
    height, width = input_size
    sections = [
        '# Runs compared',
        f'Written {datetime.date.today().isoformat()} from ' +
        ', '.join(f'`{run.work_dir}`' for run in runs) + '.',
        groups_table(groups, input_size),
        f'A row is a group of runs of one configuration that differ only in '
        f'their seed (`runs`: how many); a cell gives the median over them '
        f'(the number the paper reports) and, for more than one, their '
        f'min–max. Backbone parameters and FLOPs (multiply-accumulates) are '
        f'counted on the backbone config at 1x3x{height}x{width}, without '
        f'the ImageNet fc layer, as `tools/analysis_tools/'
        f'backbone_complexity.py` counts them. AP columns are box AP in '
        f'percent from the test runs. Speed is the steady state, as mmdet\'s '
        f'`analysis_tools/benchmark.py` measures it: s/iter is the median '
        f'time per training iteration and img/s the test batch over the '
        f'median time per test iteration, both after {WARMUP_ITERS} warm-up '
        f'iterations (at least {MIN_TIMED_ITERS} timed) and with data '
        f'loading, on the machine each run used; "{_EMPTY}" where a run '
        f'has no steady state (see the notes).',
    ]
    if any(
            paper_row(g.runs[0].detector, g.runs[0].dataset,
                      g.runs[0].backbone) for g in groups):
        sections.append(
            '**paper** rows are the SCConv paper\'s RetinaNet table as '
            'printed (the median of several runs; \\*: with the fc layer, at '
            'an input size the paper does not state), not measured here.')
    notes = _notes(groups)
    if notes:
        sections.append('Notes:\n\n' + '\n'.join(f'- {n}' for n in notes))
    differences = differences_table(groups)
    if differences:
        sections.append(
            f'## Differences between groups\n\n{differences}\n\nThe '
            f'interval is a {round(100 * LEVEL)}% percentile bootstrap: '
            f'each group\'s runs resampled with replacement {RESAMPLES} '
            f'times and the difference of the medians taken each time. An '
            f'interval that contains 0 means the groups cannot be told '
            f'apart with these runs; few runs give wide, coarse intervals.')
    sections.append('## Runs\n\n![each run\'s AP, by group](metrics.png)')
    sections.append('## Training curves\n\n![training curves](curves.png)')
    if extra:
        sections.append(extra)
    path = osp.join(out_dir, 'report.md')
    with open(path, 'w') as f:
        f.write('\n\n'.join(sections) + '\n')
    return path

"""Runs side by side as the paper reports them: one markdown table (the
paper's row beside each run that has one) and the training curves."""
import datetime
import os
import os.path as osp
from typing import Optional, Sequence

from .complexity import backbone_complexity
from .paper import DATASET_NAMES, paper_row
from .runs import Run

#: Columns of box AP, with CocoMetric's key suffix.
_COCO_COLUMNS = (('AP', 'bbox_mAP'), ('AP50', 'bbox_mAP_50'), ('AP75',
                                                               'bbox_mAP_75'))
_SIZE_COLUMNS = (('AP_S', 'bbox_mAP_s'), ('AP_M', 'bbox_mAP_m'),
                 ('AP_L', 'bbox_mAP_l'))
_VOC_KEY = 'pascal_voc/mAP'
_EMPTY = '–'


def _coco_metric(metrics, suffix):
    """A CocoMetric value (its prefix is ``coco`` unless renamed)."""
    for key, value in metrics.items():
        if key.endswith('/' + suffix):
            return value
    return None


def _percent(value, digits=1):
    # CocoMetric logs -1 for a size class without ground truth.
    if value is None or value < 0:
        return _EMPTY
    return f'{100 * value:.{digits}f}'


def _complexity(run, input_size):
    backbone = run.cfg.model.backbone.to_dict()
    backbone['init_cfg'] = None  # count, never load weights
    return backbone_complexity(backbone, input_size)


def runs_table(runs: Sequence[Run], input_size=(224, 224)) -> str:
    """A markdown table: one row per run, each followed by the paper's row
    for the same detector, backbone and dataset where the paper has one.

    Args:
        runs (Sequence[Run]): From :func:`.runs.load_run`.
        input_size (tuple[int, int]): Height and width at which the
            backbones' parameters and FLOPs are counted.
    """
    sizes = any(
        _coco_metric(run.test, key) is not None for run in runs
        for _, key in _SIZE_COLUMNS)
    voc = any(_VOC_KEY in run.test for run in runs)
    columns = ['run', 'backbone', 'data', 'params (M)', 'FLOPs (G)']
    columns += [name for name, _ in _COCO_COLUMNS]
    columns += [name for name, _ in _SIZE_COLUMNS] if sizes else []
    columns += ['VOC mAP@.5'] if voc else []
    columns += ['iters', 's/iter (train)', 'img/s (test)']
    lines = [
        '| ' + ' | '.join(columns) + ' |',
        '|---|---|---|' + '---:|' * (len(columns) - 3)
    ]
    for run in runs:
        complexity = _complexity(run, input_size)
        cells = [
            run.name, run.backbone, run.dataset_name,
            f'{complexity.params / 1e6:.2f}', f'{complexity.flops / 1e9:.2f}'
        ]
        cells += [
            _percent(_coco_metric(run.test, key)) for _, key in _COCO_COLUMNS
        ]
        if sizes:
            cells += [
                _percent(_coco_metric(run.test, key))
                for _, key in _SIZE_COLUMNS
            ]
        if voc:
            cells.append(_percent(run.test.get(_VOC_KEY), digits=2))
        images = run.images_per_second
        cells += [
            str(run.iterations), f'{run.seconds_per_iter:.3f}',
            _EMPTY if images is None else f'{images:.1f}'
        ]
        lines.append('| ' + ' | '.join(cells) + ' |')
        paper = paper_row(run.detector, run.dataset, run.backbone)
        if paper is not None:
            lines.append('| ' + ' | '.join(_paper_cells(paper, sizes, voc)) +
                         ' |')
    return '\n'.join(lines)


def _paper_cells(paper, sizes, voc):
    cells = [
        '**paper**', paper.backbone, DATASET_NAMES[paper.dataset],
        f'{paper.params / 1e6:.2f}*', f'{paper.flops / 1e9:.2f}*',
        f'{paper.ap}', f'{paper.ap50}', f'{paper.ap75}'
    ]
    cells += [_EMPTY] * 3 if sizes else []
    cells += [_EMPTY] if voc else []
    return cells + [_EMPTY] * 3


def _series(run):
    """Training curves of a run: name -> (iterations, values)."""
    names = sorted({
        key
        for entry in run.train
        for key in entry if key.startswith('loss')
    }) + ['lr']
    series = {
        name: ([e['iter'] for e in run.train
                if name in e], [e[name] for e in run.train if name in e])
        for name in names
    }
    for key in ('coco/bbox_mAP', _VOC_KEY):
        points = [(e['iter'], e[key]) for e in run.val if key in e]
        if points:
            series[f'val {key}'] = tuple(zip(*points))
    return series


def plot_curves(runs: Sequence[Run], path: str) -> str:
    """Draw every run's loss terms, lr and validation mAP over iterations,
    one panel per quantity, the runs overlaid; write a PNG.

    Returns:
        str: ``path``.
    """
    from matplotlib.figure import Figure
    all_series = [_series(run) for run in runs]
    names = list(dict.fromkeys(n for s in all_series for n in s))
    columns = min(3, len(names))
    rows = -(-len(names) // columns)
    figure = Figure(figsize=(5 * columns, 3.4 * rows), tight_layout=True)
    for index, name in enumerate(names):
        axes = figure.add_subplot(rows, columns, index + 1)
        for run, series in zip(runs, all_series):
            if name in series:
                axes.plot(
                    *series[name],
                    label=run.name,
                    marker='o' if name.startswith('val') else None)
        axes.set_title(name)
        axes.set_xlabel('iteration')
        if name == 'lr':
            axes.set_yscale('log')
        axes.legend(fontsize='small')
    figure.savefig(path, dpi=100)
    return path


def write_report(runs: Sequence[Run],
                 out_dir: str,
                 input_size=(224, 224),
                 extra: Optional[str] = None) -> str:
    """Write ``out_dir/report.md`` and ``out_dir/curves.png``.

    Args:
        runs (Sequence[Run]): The runs, in the table's order.
        out_dir (str): Where to write; created if missing.
        input_size (tuple[int, int]): See :func:`runs_table`.
        extra (str, optional): Markdown appended to the report (e.g. a
            picture of detections).

    Returns:
        str: The report's path.
    """
    os.makedirs(out_dir, exist_ok=True)
    plot_curves(runs, osp.join(out_dir, 'curves.png'))
    height, width = input_size
    sections = [
        '# Runs compared',
        f'Written {datetime.date.today().isoformat()} from ' +
        ', '.join(f'`{run.work_dir}`' for run in runs) + '.',
        runs_table(runs, input_size),
        f'Backbone parameters and FLOPs (multiply-accumulates) are counted '
        f'on each run\'s backbone config at 1x3x{height}x{width}, without '
        f'the ImageNet fc layer, as `tools/analysis_tools/'
        f'backbone_complexity.py` counts them. AP columns are box AP in '
        f'percent from the test run. s/iter is the median logged time per '
        f'training iteration and img/s the test batch over the mean time per '
        f'test iteration, both with data loading, on the machine each run '
        f'used.',
    ]
    if any(paper_row(r.detector, r.dataset, r.backbone) for r in runs):
        sections.append(
            '**paper** rows are the SCConv paper\'s RetinaNet table as '
            'printed (\\*: with the fc layer, at an input size the paper '
            'does not state), not measured here.')
    sections.append('## Training curves\n\n![training curves](curves.png)')
    if extra:
        sections.append(extra)
    path = osp.join(out_dir, 'report.md')
    with open(path, 'w') as f:
        f.write('\n\n'.join(sections) + '\n')
    return path

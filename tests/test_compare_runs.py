"""Runs compared as the paper reports them: the demo's ``--compare --seeds
2`` trains and tests SCConv-R50 and ResNet-50 twice each (a short schedule),
and its report holds what the runs logged: per group the median, min-max and
count, the differences with their intervals, and the pictures."""
import copy
import json
import os
import shutil
import statistics

import cv2
import pytest
from mmengine.config import Config
from tiny import CONFIGS, ROOT, run_tool

from mmdet_scconv.analysis import (GroupError, RunGroup, WorkDirError,
                                   backbone_complexity, bootstrap_interval,
                                   difference, differences_table, group_runs,
                                   load_run, runs_table)
from mmdet_scconv.analysis.runs import WARMUP_ITERS

DEMO_CONFIG = 'configs/demo/retinanet_scconv_r50_shapes.py'
PNG_MAGIC = b'\x89PNG\r\n\x1a\n'
ITERS = 12
METRICS = (('AP', 'bbox_mAP'), ('AP50', 'bbox_mAP_50'), ('AP75',
                                                         'bbox_mAP_75'))


@pytest.fixture(scope='module')
def compared(tmp_path_factory):
    """The demo's comparison at 12 iterations, 2 seeds per model, in a copy
    of the configs (so that the demo's relative data root lands in tmp)."""
    root = tmp_path_factory.mktemp('compare')
    shutil.copytree(CONFIGS, root / 'configs')
    work = root / 'work'
    # A 12-iteration model scores below mmdet's 0.05: keep all its boxes so
    # that the metrics have something to evaluate.
    result = run_tool(
        f'{ROOT}/tools/demo.py',
        DEMO_CONFIG,
        '--compare',
        '--seeds',
        '2',
        '--work-dir',
        str(work),
        '--cfg-options',
        f'train_cfg.max_iters={ITERS}',
        'model.test_cfg.score_thr=0.0',
        'default_hooks.logger.interval=2',
        cwd=str(root))
    return work, result.stdout + result.stderr


def _tables(report):
    """The report's markdown tables, each as one dict per row."""
    tables, lines = [], []
    for line in report.splitlines() + ['']:
        if line.startswith('|'):
            lines.append(line)
        elif lines:
            header = [c.strip() for c in lines[0].strip('|').split('|')]
            tables.append([
                dict(
                    zip(header, (c.strip()
                                 for c in row.strip('|').split('|'))))
                for row in lines[2:]
            ])
            lines = []
    return tables


def _cell(text):
    """``'12.3 (11.0–13.5)'`` -> (12.3, 11.0, 13.5)."""
    median, _, spread = text.partition(' (')
    low, high = spread.rstrip(')').split('–')
    return float(median), float(low), float(high)


def _logged(run_dir):
    """The test metrics and the per-iteration times a run logged."""
    (stamp, ) = [d for d in os.listdir(run_dir) if d[:8].isdigit()]
    with open(os.path.join(run_dir, stamp, f'{stamp}.json')) as f:
        test = json.load(f)
    with open(os.path.join(run_dir, stamp, 'step_times.json')) as f:
        return test, json.load(f)


def _read(path):
    with open(path) as f:
        return f.read()


def test_demo_seeds_report_medians_ranges_and_counts(compared):
    work, log = compared
    assert 'Comparison report' in log, log[-3000:]
    report = _read(work / 'report.md')
    for picture in ('curves.png', 'metrics.png', 'detections.png'):
        assert f']({picture})' in report
        with open(work / picture, 'rb') as f:
            assert f.read(8) == PNG_MAGIC
        assert cv2.imread(str(work / picture)).shape[2] == 3
    groups, differences = _tables(report)
    rows = {row['run']: row for row in groups}
    assert set(rows) == {'scconv_r50', 'r50'}, report
    assert rows['scconv_r50']['backbone'] == 'SCConv-R50'
    assert rows['r50']['backbone'] == 'R50'
    for name, row in rows.items():
        assert row['runs'] == '2' and int(row['iters']) == ITERS
        logged = [_logged(work / f'{name}_seed{seed}') for seed in (0, 1)]
        for column, key in METRICS:
            values = [100 * test[f'coco/{key}'] for test, _ in logged]
            median, low, high = _cell(row[column])
            assert median == pytest.approx(statistics.median(values), abs=0.05)
            assert (low, high) == pytest.approx((min(values), max(values)),
                                                abs=0.05)
        # Speed: the steady state, the medians after the warm-up.
        per_iter = [
            statistics.median(times['train'][WARMUP_ITERS:])
            for _, times in logged
        ]
        assert len(logged[0][1]['train']) == ITERS
        assert _cell(row['s/iter (train)']) == pytest.approx(
            (statistics.median(per_iter), min(per_iter), max(per_iter)),
            abs=5e-4)
        images = [
            4 / statistics.median(times['test'][WARMUP_ITERS:])
            for _, times in logged
        ]
        assert len(logged[0][1]['test']) == 10  # 40 images, 4 per batch
        assert _cell(row['img/s (test)']) == pytest.approx(
            (statistics.median(images), min(images), max(images)), abs=0.05)
    assert 'after 5 warm-up iterations' in report
    assert [d['metric'] for d in differences] == ['AP', 'AP50', 'AP75']
    assert {d['difference'] for d in differences} == {'r50 − scconv_r50'}


def test_differences_come_from_resampling_the_runs(compared):
    work, _ = compared
    report = _read(work / 'report.md')
    differences = {d['metric']: d for d in _tables(report)[1]}
    for column, key in METRICS:
        values = {
            name: [
                _logged(work / f'{name}_seed{seed}')[0][f'coco/{key}']
                for seed in (0, 1)
            ]
            for name in ('scconv_r50', 'r50')
        }
        low, high = bootstrap_interval(values['scconv_r50'], values['r50'])
        row = differences[column]
        expected = 100 * (
            statistics.median(values['r50']) -
            statistics.median(values['scconv_r50']))
        assert float(row['median difference']) == pytest.approx(
            expected, abs=0.006)
        assert row['95% interval'] == f'[{100 * low:+.2f}, {100 * high:+.2f}]'
        if low <= 0 <= high:
            assert row['verdict'] == 'not distinguishable with 2 runs each'
        else:
            assert row['verdict'] == 'r50 differs from scconv_r50'


def test_compare_runs_groups_by_config_beyond_the_seed(compared, tmp_path):
    work, _ = compared
    dirs = [
        str(work / f'{name}_seed{seed}') for name in ('r50', 'scconv_r50')
        for seed in (1, 0)
    ]
    result = run_tool('tools/analysis_tools/compare_runs.py', *dirs, '--out',
                      str(tmp_path / 'auto'))
    groups = {row['run']: row for row in _tables(result.stdout)[0]}
    assert set(groups) == {'r50', 'scconv_r50'}
    assert all(row['runs'] == '2' for row in groups.values())
    # A named group of runs that differ beyond the seed is refused.
    mixed = f'mixed={dirs[0]},{dirs[2]}'
    result = run_tool(
        'tools/analysis_tools/compare_runs.py',
        *dirs,
        '--out',
        str(tmp_path / 'mixed'),
        '--group',
        mixed,
        check=False)
    assert result.returncode != 0
    assert "Group 'mixed'" in result.stderr
    assert 'model.backbone.type' in result.stderr


def test_group_errors_and_edge_cases(compared):
    work, _ = compared
    runs = {
        f'{name}{seed}': load_run(str(work / f'{name}_seed{seed}'))
        for name in ('r50', 'scconv_r50')
        for seed in (0, 1)
    }
    with pytest.raises(GroupError, match='not among the work dirs'):
        group_runs([runs['r500']], {'g': [str(work / 'elsewhere')]})
    with pytest.raises(GroupError, match='another group has already'):
        group_runs(
            list(runs.values()), {
                'a': [runs['r500'].work_dir],
                'b': [runs['r500'].work_dir]
            })
    # A group of one: a difference, no interval, and the reason.
    one = RunGroup('one', [runs['r500']])
    two = RunGroup('two', [runs['scconv_r500'], runs['scconv_r501']])
    diff = difference(one, two, 'AP')
    assert diff.low is None and diff.value is not None
    assert "'one' has 1 run" in diff.note
    table = _tables(
        differences_table(group_runs([runs['r500'], runs['scconv_r500']])))
    assert "'r50_seed0' has 1 run" in table[0][0]['verdict']
    # Identical groups: a zero-width interval at 0, not distinguishable.
    same = difference(two, two, 'AP')
    assert same.value == 0 and same.low <= 0 <= same.high
    assert same.distinguishable is False
    low, high = bootstrap_interval([0.1, 0.2, 0.3], [0.6, 0.7, 0.8])
    assert 0.3 - 1e-9 <= low <= high <= 0.7 + 1e-9
    # A metric missing in some runs of a group is named, not dropped.
    partial = copy.copy(runs['r501'])
    partial.test = {
        k: v
        for k, v in partial.test.items() if not k.endswith('bbox_mAP_75')
    }
    group = RunGroup('r50', [runs['r500'], partial])
    summary = group.summary('AP75')
    assert summary.count == 1 and summary.missing == ['r50_seed1']


def test_speed_without_a_steady_state_is_named(compared):
    work, _ = compared
    run = load_run(str(work / 'r50_seed0'))
    run.train_times = run.train_times[:WARMUP_ITERS + 4]
    run.test_times = None
    assert run.seconds_per_iter is None and run.images_per_second is None
    assert 'r50_seed0: 9 train iterations, too few for a steady state' in \
        run.speed_note('train')
    assert 'no per-iteration test times' in run.speed_note('test')
    row = _tables(runs_table([run]))[0][0]
    assert row['s/iter (train)'] == row['img/s (test)'] == '–'


def test_work_dirs_without_scalars_or_test_result_are_named(
        compared, tmp_path):
    work, _ = compared
    untested = tmp_path / 'untested'
    shutil.copytree(work / 'r50_seed0', untested)
    (stamp, ) = [d for d in os.listdir(untested) if d[:8].isdigit()]
    os.remove(untested / stamp / f'{stamp}.json')
    with pytest.raises(WorkDirError, match='has no test result') as error:
        load_run(str(untested))
    assert str(untested) in str(error.value)
    assert 'tools/test.py' in str(error.value)

    untrained = tmp_path / 'untrained'
    shutil.copytree(work / 'r50_seed0', untrained)
    os.remove(untrained / stamp / 'vis_data' / 'scalars.json')
    with pytest.raises(WorkDirError, match='has no training scalars'):
        load_run(str(untrained))
    with pytest.raises(WorkDirError, match='not found'):
        load_run(str(tmp_path / 'missing'))


@pytest.mark.parametrize('config, backbone, ap', [
    ('retinanet_scconv_r50_voc.py', 'SCConv-R50', '53.16'),
    ('retinanet_r50_coco.py', 'R50', '35.2'),
])
def test_the_paper_row_sits_beside_a_run_on_the_papers_data(
        compared, config, backbone, ap):
    """A run of the project's paper configs gets the paper's row."""
    work, _ = compared
    run = load_run(str(work / 'r50_seed0'))
    run.cfg = run.test_cfg = Config.fromfile(f'{CONFIGS}/{config}')
    assert run.backbone == backbone
    rows = _tables(runs_table([run]))[0]
    assert [row['run'] for row in rows] == ['r50_seed0', '**paper**']
    assert rows[1]['AP'] == ap
    assert rows[1]['backbone'] == backbone
    counted = backbone_complexity(dict(run.cfg.model.backbone, init_cfg=None))
    assert float(rows[0]['params (M)']) == pytest.approx(
        counted.params / 1e6, abs=0.005)

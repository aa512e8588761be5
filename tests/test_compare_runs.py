"""Runs compared as the paper's tables do: the demo's ``--compare`` trains
and tests SCConv-R50 and ResNet-50 (a short schedule), and its report holds
what the runs logged."""
import json
import os
import shutil
import statistics

import pytest
from mmengine.config import Config
from tiny import CONFIGS, ROOT, run_tool

from mmdet_scconv.analysis import (WorkDirError, backbone_complexity, load_run,
                                   runs_table)

DEMO_CONFIG = 'configs/demo/retinanet_scconv_r50_shapes.py'
PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


@pytest.fixture(scope='module')
def compared(tmp_path_factory):
    """The demo's comparison at 6 iterations, in a copy of the configs (so
    that the demo's relative data root lands in tmp)."""
    root = tmp_path_factory.mktemp('compare')
    shutil.copytree(CONFIGS, root / 'configs')
    work = root / 'work'
    # A 6-iteration model scores below mmdet's 0.05: keep all its boxes so
    # that the metrics have something to evaluate.
    result = run_tool(
        f'{ROOT}/tools/demo.py',
        DEMO_CONFIG,
        '--compare',
        '--work-dir',
        str(work),
        '--cfg-options',
        'train_cfg.max_iters=6',
        'model.test_cfg.score_thr=0.0',
        'default_hooks.logger.interval=2',
        cwd=str(root))
    return work, result.stdout + result.stderr


def _table(report):
    """The report's first markdown table as one dict per row."""
    lines = [line for line in report.splitlines() if line.startswith('|')]
    header = [cell.strip() for cell in lines[0].strip('|').split('|')]
    return [
        dict(zip(header, (c.strip() for c in line.strip('|').split('|'))))
        for line in lines[2:]
    ]


def _logged(run_dir):
    """The training scalars and the test metrics a run logged."""
    (stamp, ) = [d for d in os.listdir(run_dir) if d[:8].isdigit()]
    with open(os.path.join(run_dir, stamp, 'vis_data', 'scalars.json')) as f:
        train = [json.loads(line) for line in f if 'loss' in line]
    with open(os.path.join(run_dir, stamp, f'{stamp}.json')) as f:
        return train, json.load(f)


def test_demo_compare_reports_what_the_runs_logged(compared):
    work, log = compared
    assert 'Comparison report' in log, log[-3000:]
    with open(work / 'report.md') as f:
        report = f.read()
    for picture in ('curves.png', 'detections.png'):
        assert f']({picture})' in report
        with open(work / picture, 'rb') as f:
            assert f.read(8) == PNG_MAGIC
    rows = {row['run']: row for row in _table(report)}
    assert set(rows) == {'scconv_r50', 'r50'}, report
    assert rows['scconv_r50']['backbone'] == 'SCConv-R50'
    assert rows['r50']['backbone'] == 'R50'
    for name, row in rows.items():
        train, test = _logged(work / name)
        for column, key in (('AP', 'bbox_mAP'), ('AP50', 'bbox_mAP_50'),
                            ('AP75', 'bbox_mAP_75'), ('AP_S', 'bbox_mAP_s')):
            assert float(row[column]) == pytest.approx(
                100 * test[f'coco/{key}'], abs=0.05), (column, report)
        assert int(row['iters']) == 6 == train[-1]['iter']
        assert float(row['s/iter (train)']) == pytest.approx(
            statistics.median(e['time'] for e in train), abs=5e-4)
        # The demo tests 4 images per batch.
        assert float(row['img/s (test)']) == pytest.approx(
            4 / test['time'], abs=0.05)
    # No paper row: the shapes data is not the paper's test set.
    assert '**paper**' not in report
    scconv, resnet = (
        float(rows[n]['params (M)']) for n in ('scconv_r50', 'r50'))
    assert scconv == pytest.approx(14.48, abs=0.01)
    assert resnet == pytest.approx(23.51, abs=0.01)


def test_work_dirs_without_scalars_or_test_result_are_named(
        compared, tmp_path):
    work, _ = compared
    untested = tmp_path / 'untested'
    shutil.copytree(work / 'r50', untested)
    (stamp, ) = [d for d in os.listdir(untested) if d[:8].isdigit()]
    os.remove(untested / stamp / f'{stamp}.json')
    with pytest.raises(WorkDirError, match='has no test result') as error:
        load_run(str(untested))
    assert str(untested) in str(error.value)
    assert 'tools/test.py' in str(error.value)

    untrained = tmp_path / 'untrained'
    shutil.copytree(work / 'r50', untrained)
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
    run = load_run(str(work / 'r50'))
    run.cfg = run.test_cfg = Config.fromfile(f'{CONFIGS}/{config}')
    assert run.backbone == backbone
    rows = _table(runs_table([run]))
    assert [row['run'] for row in rows] == ['r50', '**paper**']
    assert rows[1]['AP'] == ap
    assert rows[1]['backbone'] == backbone
    counted = backbone_complexity(dict(run.cfg.model.backbone, init_cfg=None))
    assert float(rows[0]['params (M)']) == pytest.approx(
        counted.params / 1e6, abs=0.005)

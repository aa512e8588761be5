"""A diverging run stops at the iteration it diverges, names what went
non-finite and the checkpoint to resume from, and writes no checkpoint of
non-finite weights."""
import glob
import re

import pytest
import torch
from tiny import run_tool, write_tiny

from mmdet_scconv.engine import DivergenceHook


def test_diverging_run_stops_and_names_the_last_checkpoint(tmp_path):
    config = write_tiny(tmp_path, 'coco', 'retinanet_scconv_r50_coco.py')
    work = tmp_path / 'work'
    run_tool('tools/train.py', config, '--work-dir', str(work))
    good = sorted(glob.glob(f'{work}/iter_*.pth'))
    assert [p.rsplit('/', 1)[1] for p in good] == ['iter_2.pth', 'iter_4.pth']
    # The trained weights, then an lr no run survives.
    result = run_tool(
        'tools/train.py',
        config,
        '--work-dir',
        str(work),
        '--cfg-options',
        f'load_from={good[-1]}',
        'optim_wrapper.optimizer.lr=1e8',
        'train_cfg.max_iters=8',
        check=False)
    assert result.returncode != 0
    message = result.stderr.splitlines()[-1]
    assert message.startswith('mmdet_scconv.engine.divergence.'
                              'TrainingDivergedError: Training diverged at '
                              'iteration 2: non-finite'), result.stderr[-3000:]
    assert re.search(r'lr: 1e\+0[78]\. ', message), message  # warmup's
    assert f'Last checkpoint: {good[-1]} (resume with --resume' in message
    # Nothing was saved after the divergence; everything saved is finite.
    assert sorted(glob.glob(f'{work}/iter_*.pth')) == good
    for path in good:
        state = torch.load(path, weights_only=True)['state_dict']
        assert all(
            torch.isfinite(v).all() for v in state.values()
            if v.is_floating_point())


def test_max_bad_iters_is_checked():
    with pytest.raises(ValueError, match='max_bad_iters must be an int'):
        DivergenceHook(max_bad_iters=-1)

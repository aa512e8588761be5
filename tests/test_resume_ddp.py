"""Exact resume after an interruption, and 2-process DDP training."""
import json
import os
import os.path as osp
import random
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.fileio import get_file_backend
from mmengine.model import convert_sync_batchnorm
from tiny import ROOT, run_tool, write_tiny

import mmdet_scconv  # noqa: F401
from mmdet_scconv.apis import build_runner, load_config
from mmdet_scconv.apis.runner import prepare_cpu_distributed
from mmdet_scconv.engine.atomic_checkpoints import AtomicLocalBackend

TESTS = osp.dirname(osp.abspath(__file__))


def env_with_tests_on_path():
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (TESTS, env.get('PYTHONPATH')) if p)
    return env


def train_losses(work_dir):
    """Per-iteration training losses over all runs in ``work_dir``."""
    losses = {}
    for run in sorted(os.listdir(work_dir)):
        scalars = osp.join(work_dir, run, 'vis_data', 'scalars.json')
        if osp.isfile(scalars):
            with open(scalars) as f:
                for line in map(json.loads, f):
                    if 'loss' in line:
                        losses[line['iter']] = line['loss']
    return losses


def assert_same_state(a, b, path=''):
    if isinstance(a, torch.Tensor):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7, msg=path)
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            assert_same_state(a[key], b[key], f'{path}.{key}')
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f'{path}[{i}]')
    else:
        assert a == b, path


@pytest.fixture(scope='module')
def full_run(tmp_path_factory):
    """An uninterrupted 6-iteration run (deterministic mode): its config and
    work dir."""
    root = tmp_path_factory.mktemp('full_run')
    config = write_tiny(
        root, 'coco', 'retinanet_scconv_r50_coco.py', max_iters=6)
    with open(config, 'a') as f:
        f.write('log_processor = dict(window_size=1)\n')
    full = root / 'full'
    run_tool('tools/train.py', config, '--work-dir', str(full))
    return config, full


def test_interrupted_run_resumes_exactly(tmp_path, full_run):
    config, full = full_run
    full = str(full)
    interrupting = tmp_path / 'interrupting.py'
    interrupting.write_text(
        f'_base_ = {config!r}\n'
        "custom_imports = dict(imports=['mmdet_scconv', 'helper_hooks'], "
        "allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='InterruptAfterIterHook', iters=3)]\n")
    cut = str(tmp_path / 'cut')
    interrupted = run_tool(
        'tools/train.py',
        str(interrupting),
        '--work-dir',
        cut,
        env=env_with_tests_on_path(),
        check=False)
    assert interrupted.returncode != 0
    assert 'interrupted after iteration 3' in interrupted.stderr
    assert not osp.exists(osp.join(cut, 'iter_4.pth'))
    run_tool('tools/train.py', config, '--work-dir', cut, '--resume')

    expected, resumed = train_losses(full), train_losses(cut)
    assert sorted(expected) == sorted(resumed) == [1, 2, 3, 4, 5, 6]
    for it in expected:
        assert abs(expected[it] - resumed[it]) <= 1e-5 * abs(expected[it])

    a = torch.load(osp.join(full, 'iter_6.pth'), weights_only=True)
    b = torch.load(osp.join(cut, 'iter_6.pth'), weights_only=True)
    assert a['meta']['iter'] == b['meta']['iter'] == 6
    assert_same_state(a['state_dict'], b['state_dict'], 'state_dict')
    assert_same_state(a['optimizer'], b['optimizer'], 'optimizer')
    assert_same_state(a['param_schedulers'], b['param_schedulers'],
                      'param_schedulers')
    lr = [g['lr'] for g in b['optimizer']['param_groups']]
    assert lr == [g['lr'] for g in a['optimizer']['param_groups']]


def _newest_checkpoint_iter(work_dir):
    return max(
        int(name[5:-4]) for name in os.listdir(work_dir)
        if name.startswith('iter_') and name.endswith('.pth'))


def _kill_training(config, work_dir, moment):
    """Start tools/train.py and SIGKILL it after its first checkpoint: at a
    random moment, or as soon as a checkpoint is being written (its
    temporary file exists). Returns the checkpoint files being written when
    it died."""
    process = subprocess.Popen([
        sys.executable, 'tools/train.py', config, '--work-dir',
        str(work_dir)
    ],
                               cwd=ROOT,
                               stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while not (work_dir / 'iter_2.pth').exists():
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    if moment == 'random':
        time.sleep(random.Random(os.getpid()).uniform(0, 1))
    else:
        while not list(work_dir.glob('.iter_*.part')):
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.001)
    process.kill()
    assert process.wait() == -signal.SIGKILL
    return list(work_dir.glob('.iter_*.part'))


@pytest.mark.parametrize('moment', ['random', 'writing'])
def test_kill_9_then_resume_ends_with_the_uninterrupted_weights(
        tmp_path, full_run, moment):
    """``kill -9`` at a random moment after the first checkpoint, or while a
    checkpoint is being written, then ``--resume``: training continues from
    the newest complete checkpoint and ends with the uninterrupted run's
    weights (deterministic mode). A truncated newer checkpoint beside them
    (what a writer killed mid-save leaves without atomic writes) is passed
    over."""
    config, full = full_run
    cut = tmp_path / 'cut'
    # Checkpoints appear complete or not at all (written atomically).
    assert isinstance(get_file_backend(str(cut)), AtomicLocalBackend)
    half_written = _kill_training(config, cut, moment)
    if moment == 'writing':
        assert half_written, 'the kill missed the checkpoint write'
    newest = _newest_checkpoint_iter(cut)
    assert newest < 6, 'the run ended before the kill'
    truncated = cut / f'iter_{newest + 2}.pth'
    truncated.write_bytes((cut / f'iter_{newest}.pth').read_bytes()[:4096])

    resumed = run_tool('tools/train.py', config, '--work-dir', str(cut),
                       '--resume')
    log = resumed.stdout + resumed.stderr
    assert f'Not resuming from {truncated}: it is truncated' in log
    assert f'resumed epoch: 0, iter: {newest}' in log, log[-3000:]
    a = torch.load(full / 'iter_6.pth', weights_only=True)
    b = torch.load(cut / 'iter_6.pth', weights_only=True)
    assert_same_state(a['state_dict'], b['state_dict'], 'state_dict')
    assert_same_state(a['optimizer'], b['optimizer'], 'optimizer')


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_two_process_ddp_on_cpu(tmp_path):
    config = write_tiny(
        tmp_path, 'coco', 'retinanet_scconv_r50_coco.py', max_iters=3)
    with open(config, 'a') as f:
        # torch's SyncBatchNorm runs on GPUs only.
        f.write("custom_imports = dict(imports=['mmdet_scconv', "
                "'helper_hooks'], allow_failed_imports=False)\n"
                "custom_hooks = [dict(type='DumpRankWeightsHook')]\n"
                "sync_bn = None\n")
    work = str(tmp_path / 'work')
    env = dict(
        env_with_tests_on_path(), PYTHON=sys.executable, PORT=str(free_port()))
    result = subprocess.run(
        ['bash', 'tools/dist_train.sh', config, '2', '--work-dir', work],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600)
    assert result.returncode == 0, result.stderr[-5000:]
    rank0 = torch.load(osp.join(work, 'rank0.pth'), weights_only=True)
    rank1 = torch.load(osp.join(work, 'rank1.pth'), weights_only=True)
    assert rank0['norms'] == ['BatchNorm2d', 'GroupNorm']
    assert_same_state(rank0['params'], rank1['params'])
    assert osp.isfile(osp.join(work, 'iter_3.pth'))


def test_sync_bn_converts_batchnorm_and_keeps_scconv_groupnorm():
    """What the Runner does for sync_bn='torch' under a launcher. (DDP on
    CPU rejects SyncBatchNorm modules, so only the conversion and a
    single-process forward run here.)"""
    model = MODELS.build(dict(type='SCConvResNet', depth=50))
    model = convert_sync_batchnorm(model, 'torch')
    kinds = {type(m) for m in model.modules()}
    assert torch.nn.SyncBatchNorm in kinds
    assert torch.nn.BatchNorm2d not in kinds
    assert isinstance(model.layer2[0].conv2.sru.gn, torch.nn.GroupNorm)
    model.eval()
    outs = model(torch.rand(1, 3, 64, 64))
    assert outs[-1].shape == (1, 2048, 2, 2)


def test_single_process_paper_run_keeps_batchnorm(tmp_path):
    config = write_tiny(tmp_path, 'coco', 'retinanet_scconv_r50_coco.py')
    cfg = load_config(config, work_dir=str(tmp_path / 'work'))
    assert cfg.sync_bn == 'torch'
    kinds = {type(m) for m in build_runner(cfg).model.modules()}
    assert torch.nn.BatchNorm2d in kinds
    assert torch.nn.SyncBatchNorm not in kinds


@pytest.mark.skipif(
    torch.cuda.is_available(), reason='SyncBatchNorm runs on GPUs')
def test_cpu_processes_with_sync_bn_name_the_fix(tmp_path):
    config = write_tiny(tmp_path, 'coco', 'retinanet_scconv_r50_coco.py')
    cfg = load_config(config, launcher='pytorch')
    with pytest.raises(ValueError) as error:
        prepare_cpu_distributed(cfg)
    assert "sync_bn='torch'" in str(error.value)
    assert '--cfg-options sync_bn=None' in str(error.value)
    assert not torch.distributed.is_initialized()

"""tools/slurm_train.sh and tools/slurm_test.sh: syntax and the srun
command line they build (DRY_RUN=1 prints it instead of running srun)."""
import os
import shlex
import subprocess

import pytest
from tiny import ROOT

SCRIPTS = ('tools/slurm_launch.sh', 'tools/slurm_train.sh',
           'tools/slurm_test.sh')


def run(script, *args, **env):
    return subprocess.run(['bash', script, *args],
                          cwd=ROOT,
                          env=dict(os.environ, **env),
                          capture_output=True,
                          text=True,
                          timeout=60)


@pytest.mark.parametrize('script', SCRIPTS)
def test_bash_syntax(script):
    assert run('-n', script).returncode == 0


def test_train_dry_run_prints_the_srun_command():
    result = run(
        'tools/slurm_train.sh',
        'gpu',
        'scconv r50',
        'configs/retinanet_scconv_r50_coco.py',
        'work_dirs/r50',
        '--cfg-options',
        'randomness.seed=1',
        DRY_RUN='1',
        GPUS='16',
        SRUN_ARGS='--quotatype=auto --exclude=node7')
    assert result.returncode == 0, result.stderr
    assert shlex.split(result.stdout) == [
        'srun', '-p', 'gpu', '--job-name=scconv r50', '--gres=gpu:8',
        '--ntasks=16', '--ntasks-per-node=8', '--cpus-per-task=5',
        '--kill-on-bad-exit=1', '--quotatype=auto', '--exclude=node7',
        'python', '-u', 'tools/train.py',
        'configs/retinanet_scconv_r50_coco.py', '--work-dir', 'work_dirs/r50',
        '--cfg-options', 'randomness.seed=1', '--launcher', 'slurm'
    ]


def test_test_dry_run_on_fewer_gpus_than_a_node():
    result = run(
        'tools/slurm_test.sh',
        'gpu',
        'eval',
        'configs/retinanet_scconv_r50_voc.py',
        'iter_20000.pth',
        '--out',
        'preds.pkl',
        DRY_RUN='1',
        GPUS='2',
        CPUS_PER_TASK='8',
        PYTHON='/opt/env/bin/python')
    assert result.returncode == 0, result.stderr
    assert shlex.split(result.stdout) == [
        'srun', '-p', 'gpu', '--job-name=eval', '--gres=gpu:2', '--ntasks=2',
        '--ntasks-per-node=2', '--cpus-per-task=8', '--kill-on-bad-exit=1',
        '/opt/env/bin/python', '-u', 'tools/test.py',
        'configs/retinanet_scconv_r50_voc.py', 'iter_20000.pth', '--out',
        'preds.pkl', '--launcher', 'slurm'
    ]


@pytest.mark.parametrize('script', SCRIPTS[1:])
def test_missing_arguments_print_the_usage(script):
    result = run(script, 'gpu', 'job', DRY_RUN='1')
    assert result.returncode == 2
    assert result.stderr.startswith(f'Usage: bash {script} PARTITION JOB_NAME')

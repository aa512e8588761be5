"""The package installs into an environment that already has torch, mmcv
and mmdet, as a wheel built from a clean copy of the checkout."""
import os
import shutil
import subprocess
import sys
import sysconfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

USE = """
import torch
from mmdet.registry import MODELS
import mmdet_scconv
model = MODELS.build(dict(type='SCConvResNet', depth=50))
model.eval()
with torch.no_grad():
    outs = model(torch.rand(1, 3, 64, 64))
print(mmdet_scconv.__file__)
print([tuple(o.shape) for o in outs])
"""


def run(*args, **kwargs):
    return subprocess.run(
        args, capture_output=True, text=True, check=True, **kwargs)


def test_wheel_installs_into_an_existing_environment(tmp_path):
    source = tmp_path / 'source'
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns('.venv', '.git', '*.egg-info', 'build',
                                      '__pycache__', 'work_dirs', 'data',
                                      'benchmark_results'))
    run(sys.executable, '-m', 'pip', 'wheel', '--no-build-isolation',
        '--no-deps', '-w', str(tmp_path / 'wheels'), str(source))
    wheels = os.listdir(tmp_path / 'wheels')
    assert len(wheels) == 1 and wheels[0].endswith('-py3-none-any.whl')
    # A separate environment that sees the packages this one has (torch,
    # mmcv, mmdet), as a user's conda or venv environment would.
    env = tmp_path / 'env'
    run(sys.executable, '-m', 'venv', str(env))
    python = str(env / 'bin' / 'python')
    purelib = run(python, '-c',
                  'import sysconfig; print(sysconfig.get_path("purelib"))'
                  ).stdout.strip()
    with open(os.path.join(purelib, 'existing_environment.pth'), 'w') as f:
        f.write(sysconfig.get_path('purelib') + '\n')
    run(python, '-m', 'pip', 'install', '--no-deps', '--no-index',
        str(tmp_path / 'wheels' / wheels[0]))
    # The CPU path users get: the backbone compiles itself.
    users = dict(os.environ, MMDET_SCCONV_COMPILE='1')
    out = run(
        python, '-c', USE, cwd=str(tmp_path), env=users).stdout.splitlines()
    assert out[-2].startswith(purelib), out  # the wheel, not the checkout
    assert out[-1] == ('[(1, 256, 16, 16), (1, 512, 8, 8), (1, 1024, 4, 4), '
                       '(1, 2048, 2, 2)]')

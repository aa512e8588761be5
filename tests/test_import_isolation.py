"""The torch-only core works without mmcv/mmengine/mmdet; a broken mmdet
makes ``import mmdet_scconv`` fail instead of skipping registration."""
import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
from tiny import ROOT

# torch and what importing it needs (torch 2.13).
TORCH_ONLY = ('torch', 'torchgen', 'functorch', 'typing_extensions', 'sympy',
              'mpmath', 'filelock', 'fsspec', 'networkx', 'jinja2',
              'markupsafe', 'numpy', 'yaml')


def torch_only_dir(tmp_path):
    """Symlinks to torch and its own imports: no mm* package reachable."""
    folder = tmp_path / 'torch_only'
    folder.mkdir()
    for name in TORCH_ONLY:
        spec = importlib.util.find_spec(name)
        if spec is None:
            continue
        path = (
            spec.submodule_search_locations[0]
            if spec.submodule_search_locations else spec.origin)
        os.symlink(path, folder / osp.basename(path))
        libs = osp.join(osp.dirname(path), f'{name}.libs')
        if osp.isdir(libs):
            os.symlink(libs, folder / f'{name}.libs')
    return str(folder)


def run_python(code, path, cwd=ROOT):
    """Run ``code`` with ``path`` instead of site-packages on sys.path."""
    prelude = ('import sys; sys.path = [p for p in sys.path if '
               f'"site-packages" not in p] + {path!r}; ')
    return subprocess.run([sys.executable, '-c', prelude + code],
                          cwd=cwd,
                          capture_output=True,
                          text=True,
                          timeout=600)


def test_core_and_trunk_benchmark_without_mm_packages(tmp_path):
    out = tmp_path / 'bench'
    result = run_python(
        'import mmdet_scconv, torch; '
        'from mmdet_scconv.layers import SCConv; '
        'assert not mmdet_scconv.MMDET_AVAILABLE; '
        'y = SCConv(16, 24, stride=2, gn_groups=4)(torch.randn(1, 16, 9, 9)); '
        'assert y.shape == (1, 24, 5, 5); '
        'assert not [m for m in sys.modules if m.startswith('
        '("mmdet.", "mmcv", "mmengine"))]; '
        f'sys.argv = ["benchmark", "--size", "64", "64", "--repeats", "1", '
        f'"--warmup", "0", "--channels-last", "off", "--out-dir", "{out}"]; '
        'import runpy; runpy.run_path("tools/benchmark.py", '
        'run_name="__main__")', [torch_only_dir(tmp_path), ROOT])
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'scconv50-fast' in result.stdout
    with open(out / 'trunk_r50_cpu_b1_64x64.json') as f:
        report = json.load(f)
    modes = {(r['case'], r['model']) for r in report['results']}
    assert ('trunk train fp32', 'scconv50-reference') in modes


def test_broken_mmdet_fails_loudly(tmp_path):
    broken = tmp_path / 'broken' / 'mmdet'
    broken.mkdir(parents=True)
    (broken / '__init__.py'
     ).write_text("raise ImportError('this mmdet install is broken')\n")
    result = subprocess.run([sys.executable, '-c', 'import mmdet_scconv'],
                            cwd=ROOT,
                            env=dict(
                                os.environ,
                                PYTHONPATH=str(tmp_path / 'broken')),
                            capture_output=True,
                            text=True,
                            timeout=600)
    assert result.returncode != 0
    assert 'this mmdet install is broken' in result.stderr


def test_old_torch_fails_at_import_naming_both_versions():
    from mmdet_scconv.version import TORCH_REQUIRED, check_torch_version
    with pytest.raises(ImportError) as error:
        check_torch_version('2.3.1+cu121')
    message = str(error.value)
    assert f'needs torch >= {TORCH_REQUIRED}' in message
    assert 'found torch 2.3.1+cu121' in message
    for version in ('2.4.0', '2.13.0+cpu', '2.14.1+cu130', '2.15.0a0+git1'):
        check_torch_version(version)
    check_torch_version()  # the installed one

"""The Triton kernels' self-check, where the kernels run: on a GPU, or here
in Triton's interpreter, with the real kernels (it passes and is cached), a
deliberately wrong one (it stops) and one that fails on the device."""
import json
import os
import warnings

import pytest
import torch

pytest.importorskip('triton')

from mmdet_scconv.layers import SCConv, kernel_check, ops, set_scconv_impl
from mmdet_scconv.layers._numerics import relative_error
from mmdet_scconv.layers.kernel_check import (CACHE_ENV, SKIP_ENV,
                                              KernelCheckError, cache_file,
                                              clear_verdicts, kernels_checked)
from mmdet_scconv.layers.kernels import cru as cru_kernels
from mmdet_scconv.layers.kernels import triton_interpreted

DEVICE = 'cuda' if torch.cuda.is_available() else 'cpu'
pytestmark = pytest.mark.skipif(
    DEVICE == 'cpu' and not triton_interpreted(),
    reason='the kernels run on a GPU or in the interpreter')


@pytest.fixture
def fresh_checks(tmp_path, monkeypatch):
    """No verdict in the process, an empty cache folder."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    monkeypatch.delenv(SKIP_ENV, raising=False)
    clear_verdicts()
    yield
    clear_verdicts()


def run_layer(impl='triton'):
    layer = SCConv(16, 16, gn_groups=4, impl=impl).to(DEVICE)
    x = torch.randn(1, 16, 6, 5, device=DEVICE)
    return layer(x), x


def verdict_for(x):
    return kernel_check._verdicts[(str(x.device), x.dtype, x.dtype)]


def test_right_kernels_pass_once_and_are_cached(fresh_checks):
    _, x = run_layer()
    verdict = verdict_for(x)
    assert verdict.status == 'ok' and verdict.source == 'run'
    assert verdict.worst <= 1e-5
    assert f'torch {torch.__version__}' in verdict.setup
    if DEVICE == 'cpu':
        assert verdict.setup.startswith('cpu (Triton interpreter), fp32')
    with open(cache_file()) as f:
        cached = json.load(f)
    assert list(cached) == [verdict.setup]
    assert cached[verdict.setup]['status'] == 'ok'
    # A new process (here: the process's verdicts forgotten) reads it back
    # instead of checking again.
    clear_verdicts()
    run_layer()
    assert verdict_for(x).source == 'cache file'
    assert verdict_for(x).worst == verdict.worst


def test_wrong_kernel_stops_naming_device_error_and_fix(
        fresh_checks, monkeypatch):
    right = cru_kernels.cru_forward
    monkeypatch.setattr(cru_kernels, 'cru_forward',
                        lambda *args, **kwargs: right(*args, **kwargs) * 1.001)
    with pytest.raises(KernelCheckError) as error:
        run_layer()
    message = str(error.value)
    assert 'give other numbers than its PyTorch path' in message
    device = ('Triton interpreter'
              if DEVICE == 'cpu' else torch.cuda.get_device_name())
    assert device in message
    assert 'worst relative error 1.00e-03' in message
    assert "scconv_cfg=dict(impl='torch')" in message
    # The PyTorch path still runs.
    y, _ = run_layer('torch')
    assert torch.isfinite(y).all()


def test_kernel_failing_on_the_device(fresh_checks, monkeypatch):

    def fails(*args, **kwargs):
        raise RuntimeError('PTX .target sm_42 is not supported')

    monkeypatch.setattr(cru_kernels, 'cru_forward', fails)
    with pytest.raises(KernelCheckError) as error:
        run_layer('triton')
    message = str(error.value)
    assert "Triton kernels do not run on" in message
    assert 'RuntimeError: PTX .target sm_42 is not supported' in message
    assert "impl='triton' needs them" in message
    x = torch.randn(1, 16, 6, 5, device=DEVICE)
    # impl='fast' warns (once) and runs the PyTorch path; the verdict comes
    # from the cache file now.
    clear_verdicts()
    with pytest.warns(UserWarning, match="impl='fast' runs SCConv's PyTorch"):
        assert kernels_checked(
            x, x.dtype, ops.CHECK_CASES, strict=False) is False
    assert verdict_for(x).source == 'cache file'
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert kernels_checked(
            x, x.dtype, ops.CHECK_CASES, strict=False) is False


def test_environment_variable_skips_the_check(fresh_checks, monkeypatch):
    right = cru_kernels.cru_forward
    monkeypatch.setattr(cru_kernels, 'cru_forward',
                        lambda *args, **kwargs: right(*args, **kwargs) * 1.001)
    monkeypatch.setenv(SKIP_ENV, '1')
    layer = SCConv(16, 16, gn_groups=4, impl='triton').to(DEVICE)
    x = torch.randn(1, 16, 6, 5, device=DEVICE)
    y = layer(x)
    assert not kernel_check._verdicts
    expected = set_scconv_impl(layer, 'torch')(x)
    assert relative_error(y, expected) > 5e-4  # the wrong kernel ran


def test_the_registered_kernels_check_themselves(fresh_checks, monkeypatch):
    """The op itself (as a compiled model calls it) checks the kernels on
    its first call, and stops on a wrong one."""
    layer = SCConv(16, 16, gn_groups=4, impl='triton').to(DEVICE).eval()
    x = torch.randn(1, 16, 6, 5, device=DEVICE)
    compiled = torch.compile(layer, backend='aot_eager', fullgraph=True)
    with torch.no_grad():
        compiled(x)  # traced without running the check
        clear_verdicts()
        compiled(x)
    assert verdict_for(x).status == 'ok'
    clear_verdicts()
    os.remove(cache_file())
    right = cru_kernels.cru_forward
    monkeypatch.setattr(cru_kernels, 'cru_forward',
                        lambda *args, **kwargs: right(*args, **kwargs) * 1.001)
    with pytest.raises(KernelCheckError, match='give other numbers'):
        with torch.no_grad():
            compiled(x)


def test_the_digest_covers_kernel_subfolders(tmp_path, monkeypatch):
    """A kernel source in a subfolder changes the self-check's cache key."""
    for folder in ('kernels/sub', 'ops'):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / 'kernels' / 'sub' / 'tile.py').write_text('A = 1\n')
    monkeypatch.setattr(kernel_check, '__file__',
                        str(tmp_path / 'kernel_check.py'))
    kernel_check.kernel_sources_digest.cache_clear()
    try:
        before = kernel_check.kernel_sources_digest()
        kernel_check.kernel_sources_digest.cache_clear()
        (tmp_path / 'kernels' / 'sub' / 'tile.py').write_text('A = 2\n')
        assert kernel_check.kernel_sources_digest() != before
    finally:
        kernel_check.kernel_sources_digest.cache_clear()

"""The compiled CPU kernel (``mmdet_scconv::sru_inference``) against its
PyTorch twin, for every instruction set this CPU runs, and the CPU
inference path built on it."""
import importlib
import subprocess
import sys
import textwrap

import pytest
import torch
from test_fast import assert_relative_error, pair

from mmdet_scconv.layers._numerics import relative_error
from mmdet_scconv.layers.fast import pool
from mmdet_scconv.layers.kernels.cpu import (CAPABILITY_MODULES,
                                             capability_module, cpu_kernels,
                                             load_error)
from mmdet_scconv.layers.ops.sru import gn_affine, split_halves, sru_output
from mmdet_scconv.layers.ops.sru_inference import (sru_inference,
                                                   sru_inference_pooled)

#: The builds this CPU can run: torch's own capability and those below it.
RUNNABLE = {
    'DEFAULT': ['DEFAULT'],
    'AVX2': ['DEFAULT', 'AVX2'],
    'AVX512': ['DEFAULT', 'AVX2', 'AVX512'],
}.get(torch.backends.cpu.get_cpu_capability(), ['DEFAULT'])

# (N, C, H, W), groups: odd sizes leave tails shorter than a vector, in
# channels (half of 30 is 15) and in pixels; the last is large enough for
# every pass to split over threads.
SHAPES = [((1, 64, 16, 24), 16), ((2, 30, 7, 9), 5), ((1, 4, 1, 1), 2),
          ((2, 96, 33, 5), 8), ((2, 64, 32, 48), 16)]


def twin(x, gamma, beta, groups, threshold, gate):
    weight, bias = gn_affine(gamma, beta, gate)
    output, _, _ = sru_output(x, weight, bias, groups, 1e-5, threshold, gate)
    return output


def inputs(shape, channels_last, offset=0.0):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=generator) * 2 + offset
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    c = shape[1]
    gamma = torch.rand(c, generator=generator) + 0.5
    beta = torch.randn(c, generator=generator) * 0.2
    return x, gamma, beta


def test_kernels_are_built_for_this_cpu():
    assert cpu_kernels() is not None, (
        f'the compiled CPU kernels do not import: {load_error()}')
    assert cpu_kernels().__name__ == capability_module()


@pytest.mark.parametrize('capability', RUNNABLE)
@pytest.mark.parametrize('gate', ['soft', 'hard'])
@pytest.mark.parametrize('channels_last', [False, True])
@pytest.mark.parametrize('shape,groups', SHAPES)
def test_each_build_equals_the_twin(capability, gate, channels_last, shape,
                                    groups):
    module = importlib.import_module(CAPABILITY_MODULES[capability])
    x, gamma, beta = inputs(shape, channels_last)
    weight, bias = gn_affine(gamma, beta, gate)
    for threshold in (0.3, 0.5, 0.7):
        expected = twin(x, gamma, beta, groups, threshold, gate)
        actual = torch.full_like(x, float('nan'))
        module.sru_inference_out(x, weight, bias, groups, 1e-5, threshold,
                                 gate == 'hard', actual)
        assert_relative_error(actual, expected, 1e-6,
                              f'{capability} t={threshold}')


@pytest.mark.parametrize('capability', RUNNABLE)
@pytest.mark.parametrize('gate', ['soft', 'hard'])
@pytest.mark.parametrize('channels_last', [False, True])
@pytest.mark.parametrize('shape,groups', [((1, 64, 16, 24), 16),
                                          ((2, 30, 8, 10), 5),
                                          ((1, 4, 2, 2), 2),
                                          ((2, 64, 32, 48), 16)])
def test_each_build_pools_the_lower_half(capability, gate, channels_last,
                                         shape, groups):
    """The pooled variant: the same upper half, and the lower half's 2x2
    means in the order :func:`pool` sums them."""
    module = importlib.import_module(CAPABILITY_MODULES[capability])
    x, gamma, beta = inputs(shape, channels_last)
    weight, bias = gn_affine(gamma, beta, gate)
    upper, lower = split_halves(twin(x, gamma, beta, groups, 0.5, gate))
    n, c, h, w = shape
    layout = torch.channels_last if channels_last else torch.contiguous_format
    actual_upper = torch.full((n, c // 2, h, w),
                              float('nan')).contiguous(memory_format=layout)
    actual_lower = torch.full((n, c // 2, h // 2, w // 2),
                              float('nan')).contiguous(memory_format=layout)
    module.sru_inference_pooled_out(x, weight, bias, groups, 1e-5, 0.5,
                                    gate == 'hard', actual_upper, actual_lower)
    assert_relative_error(actual_upper, upper, 1e-6, 'upper')
    assert_relative_error(actual_lower, pool(lower, 2), 1e-6, 'lower')


def test_pooled_op_refuses_windows_that_do_not_tile():
    x, gamma, beta = inputs((1, 8, 6, 5), False)
    with pytest.raises(ValueError, match='must tile the input, got 6x5'):
        sru_inference_pooled(x, gamma, beta, 2, 1e-5, 0.5, 'soft')


@pytest.mark.parametrize('channels_last', [False, True])
def test_statistics_hold_on_a_large_mean(channels_last):
    """A mean 1e4 times the spread: the kernel's variance comes from shifted
    sums, not from the difference of two large ones (which would lose it in
    fp32), so against an fp64 evaluation it is no less exact than the
    PyTorch twin (whose error here comes from normalising itself)."""
    x, gamma, beta = inputs((2, 32, 40, 40), channels_last, offset=2e4)
    exact = twin(x.double(), gamma.double(), beta.double(), 8, 0.5, 'soft')
    kernel_error = relative_error(
        sru_inference(x, gamma, beta, 8, 1e-5, 0.5, 'soft'), exact)
    twin_error = relative_error(twin(x, gamma, beta, 8, 0.5, 'soft'), exact)
    assert kernel_error <= twin_error, (kernel_error, twin_error)


@pytest.mark.parametrize('op', [sru_inference, sru_inference_pooled])
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
@pytest.mark.parametrize('channels_last', [False, True])
def test_ops_pass_opcheck(op, dtype, channels_last):
    x, gamma, beta = inputs((2, 16, 6, 10), channels_last)
    torch.library.opcheck(op, (x.to(dtype), gamma, beta, 4, 1e-5, 0.5, 'soft'))


def test_kernel_refuses_an_output_of_another_layout():
    x, gamma, beta = inputs((1, 8, 4, 4), False)
    weight, bias = gn_affine(gamma, beta)
    out = torch.empty_like(x, memory_format=torch.channels_last)
    with pytest.raises(
            RuntimeError,
            match=r"out must be fp32 of shape \[1, "
            r"8, 4, 4\] in x's layout"):
        cpu_kernels().sru_inference_out(x, weight, bias, 2, 1e-5, 0.5, False,
                                        out)


def test_op_keeps_the_input_layout():
    for layout in (torch.contiguous_format, torch.channels_last):
        x, gamma, beta = inputs((2, 8, 5, 6), layout == torch.channels_last)
        y = sru_inference(x, gamma, beta, 2, 1e-5, 0.5, 'soft')
        assert y.is_contiguous(memory_format=layout)


def test_op_reads_a_strided_input():
    x, gamma, beta = inputs((1, 16, 12, 12), False)
    view = x[..., ::2]
    assert_relative_error(
        sru_inference(view, gamma, beta, 4, 1e-5, 0.5, 'soft'),
        twin(view.contiguous(), gamma, beta, 4, 0.5, 'soft'), 1e-6)


def test_missing_build_warns_and_runs_the_twin(tmp_path):
    """Where the compiled module cannot be imported, inference warns with
    the import error and the fix, and still gives the same output."""
    script = textwrap.dedent(f"""
        import sys, warnings
        sys.modules[{capability_module()!r}] = None  # not importable
        import torch
        from mmdet_scconv.layers.ops.sru_inference import sru_inference
        x = torch.randn(1, 8, 5, 5)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            out = sru_inference(x, torch.ones(8), torch.zeros(8), 2, 1e-5,
                                0.5, 'soft')
        assert out.shape == x.shape, out.shape
        print([str(w.message) for w in caught])
        """)
    result = subprocess.run([sys.executable, '-c', script],
                            capture_output=True,
                            text=True,
                            check=True)
    assert "CPU kernels are not built" in result.stdout
    assert 'pip install --no-build-isolation -e .' in result.stdout


@pytest.mark.parametrize('channels_last', [False, True])
@pytest.mark.parametrize('stride', [1, 2])
def test_inference_keeps_the_input_layout(channels_last, stride):
    """The CPU path runs a grouped convolution with few channels per group
    channels-last (oneDNN's NCHW kernel falls back to im2col there) and
    still returns the input's layout, with the reference's values."""
    fast, reference = pair(
        in_channels=32, out_channels=32, stride=stride, gn_groups=8)
    x = torch.randn(2, 32, 12, 16)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    x = x.contiguous(memory_format=layout)
    with torch.no_grad():
        y = fast.eval()(x)
        expected = reference.eval()(x)
    assert fast.cru.gwc.in_channels // fast.cru.gwc.groups < 16
    assert y.is_contiguous(memory_format=layout)
    assert_relative_error(y, expected, 1e-5)

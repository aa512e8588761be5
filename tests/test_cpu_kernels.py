"""The compiled CPU kernels (``mmdet_scconv::sru_inference``,
``sru_squeeze_inference`` and ``cru_fuse``) against their PyTorch twins,
for every instruction set this CPU runs, and the CPU inference path built
on them."""
import importlib
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from test_fast import assert_relative_error, pair

from mmdet_scconv.benchmark.host import layer_host_work
from mmdet_scconv.layers._numerics import relative_error
from mmdet_scconv.layers.fast import pool
from mmdet_scconv.layers.kernels._layout import memory_format
from mmdet_scconv.layers.kernels.cpu import (CAPABILITY_MODULES,
                                             capability_module, cpu_kernels,
                                             load_error)
from mmdet_scconv.layers.ops.cru import branch_weight
from mmdet_scconv.layers.ops.cru_fuse import cru_fuse, cru_fuse_
from mmdet_scconv.layers.ops.sru import gn_affine, split_halves, sru_output
from mmdet_scconv.layers.ops.sru_inference import (sru_inference,
                                                   sru_inference_pooled,
                                                   sru_squeeze_inference)
from mmdet_scconv.layers.sru import GAMMA_SUM_EPS

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
    for threshold in (0.3, 0.5, 0.7):
        expected = twin(x, gamma, beta, groups, threshold, gate)
        actual = torch.full_like(x, float('nan'))
        module.sru_inference_out(x, gamma, beta, groups, 1e-5, GAMMA_SUM_EPS,
                                 threshold, gate == 'hard', actual)
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
    upper, lower = split_halves(twin(x, gamma, beta, groups, 0.5, gate))
    n, c, h, w = shape
    layout = memory_format(channels_last)
    actual_upper = torch.full((n, c // 2, h, w),
                              float('nan')).contiguous(memory_format=layout)
    actual_lower = torch.full((n, c // 2, h // 2, w // 2),
                              float('nan')).contiguous(memory_format=layout)
    module.sru_inference_pooled_out(x, gamma, beta, groups, 1e-5,
                                    GAMMA_SUM_EPS, 0.5, gate == 'hard',
                                    actual_upper, actual_lower)
    assert_relative_error(actual_upper, upper, 1e-6, 'upper')
    assert_relative_error(actual_lower, pool(lower, 2), 1e-6, 'lower')


def _nan(shape, channels_last):
    return torch.full(
        shape,
        float('nan')).contiguous(memory_format=memory_format(channels_last))


@pytest.mark.parametrize('capability', RUNNABLE)
@pytest.mark.parametrize('gate', ['soft', 'hard'])
@pytest.mark.parametrize('channels_last,squeezed_channels_last',
                         [(False, False), (False, True), (True, True),
                          (True, False)])
@pytest.mark.parametrize('shape,groups,squeezed', [
    ((1, 64, 16, 24), 16, (16, 16)),
    ((2, 30, 7, 9), 5, (7, 5)),
    ((1, 4, 1, 1), 2, (1, 1)),
    ((2, 128, 33, 5), 8, (32, 40)),
])
def test_each_build_squeezes_the_halves(capability, gate, channels_last,
                                        squeezed_channels_last, shape, groups,
                                        squeezed):
    """The squeezed form: each SRU half through its 1x1 squeeze, written in
    either layout whatever the input's, for odd channel counts and tails
    of pixels too."""
    module = importlib.import_module(CAPABILITY_MODULES[capability])
    x, gamma, beta = inputs(shape, channels_last)
    generator = torch.Generator().manual_seed(1)
    n, c, h, w = shape
    w_up, w_low = (
        torch.randn(o, c // 2, 1, 1, generator=generator) for o in squeezed)
    upper, lower = split_halves(twin(x, gamma, beta, groups, 0.5, gate))
    z_up, z_low = (
        _nan((n, o, h, w), squeezed_channels_last) for o in squeezed)
    module.sru_squeeze_out(x, gamma, beta, groups, 1e-5, GAMMA_SUM_EPS, 0.5,
                           gate == 'hard', w_up, w_low, z_up, z_low)
    assert_relative_error(z_up, F.conv2d(upper, w_up), 1e-6, 'up')
    assert_relative_error(z_low, F.conv2d(lower, w_low), 1e-6, 'low')


def fuse_reference(g, z_up, z_low, w_up, w_low, scale=None, shift=None):
    """The CRU's fuse as the equations read (Eq. 6-10)."""
    y1 = g + F.conv2d(z_up, w_up)
    y2 = torch.cat([F.conv2d(z_low, w_low), z_low], 1)
    y = torch.lerp(y2, y1, branch_weight(y1, y2))
    return y if scale is None else (y * scale[:, None, None] +
                                    shift[:, None, None])


def fuse_inputs(n, c, cu, cl, h, w, channels_last):
    generator = torch.Generator().manual_seed(2)

    def randn(*size):
        return torch.randn(size, generator=generator)

    g, z_up, z_low = (
        randn(n, k, h,
              w).contiguous(memory_format=memory_format(channels_last))
        for k in (c, cu, cl))
    return (g, z_up, z_low, randn(c, cu, 1, 1) * 0.3,
            randn(c - cl, cl, 1, 1) * 0.3, randn(c), randn(c))


@pytest.mark.parametrize('capability', RUNNABLE)
@pytest.mark.parametrize('affine,relu', [(False, False), (True, False),
                                         (True, True)])
@pytest.mark.parametrize('channels_last,out_channels_last', [(False, False),
                                                             (True, False),
                                                             (True, True),
                                                             (False, True)])
@pytest.mark.parametrize('n,c,cu,cl,h,w', [(1, 64, 16, 16, 37, 29),
                                           (2, 128, 32, 32, 8, 8),
                                           (1, 40, 10, 12, 5, 7),
                                           (3, 512, 128, 128, 4, 6),
                                           (1, 8, 2, 2, 1, 1)])
def test_each_build_fuses_the_cru(capability, affine, relu, channels_last,
                                  out_channels_last, n, c, cu, cl, h, w):
    """``beta`` from the means, ``PWC1``, ``PWC2``, the reused ``Z_low``,
    a folded BatchNorm and the ReLU after it in one pass, into either layout;
    channel counts that leave partial vectors and blocks, per-sample
    ``beta``."""
    module = importlib.import_module(CAPABILITY_MODULES[capability])
    g, z_up, z_low, w_up, w_low, scale, shift = fuse_inputs(
        n, c, cu, cl, h, w, channels_last)
    affine_args = (scale, shift) if affine else (None, None)
    out = _nan((n, c, h, w), out_channels_last)
    module.cru_fuse_out(g, z_up, z_low, w_up, w_low, *affine_args, relu, out)
    expected = fuse_reference(g, z_up, z_low, w_up, w_low, *affine_args)
    if relu:
        assert (expected < 0).any() and (expected > 0).any()
        expected = expected.relu()
    assert_relative_error(out, expected, 2e-6)


@pytest.mark.parametrize('channels_last', [False, True])
@pytest.mark.parametrize('relu', [False, True])
def test_fuse_op_equals_its_twin(channels_last, relu):
    """The op's PyTorch twin (bf16 takes it) against the kernel, in fp64
    for the twin so that only the kernel's rounding is left."""
    args = fuse_inputs(2, 64, 16, 16, 9, 11, channels_last)
    out = cru_fuse(*args, relu, channels_last)
    twin = cru_fuse(*(a.double() for a in args), relu, channels_last)
    assert out.is_contiguous(memory_format=memory_format(channels_last))
    assert twin.dtype == torch.float64
    assert_relative_error(out, twin, 1e-6)


@pytest.mark.parametrize('channels_last', [False, True])
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_fuse_over_g_equals_the_fuse_into_a_new_tensor(channels_last, dtype):
    """``cru_fuse_`` (the kernel for fp32, the twin for fp64) writes over
    ``G`` what ``cru_fuse`` returns."""
    g, *rest = (
        a.to(dtype) for a in fuse_inputs(2, 64, 16, 16, 9, 11, channels_last))
    expected = cru_fuse(g, *rest, True, channels_last)
    storage = g.data_ptr()
    cru_fuse_(g, *rest, True)
    assert g.data_ptr() == storage
    assert g.is_contiguous(memory_format=memory_format(channels_last))
    torch.testing.assert_close(g, expected, rtol=0, atol=0)


def test_fuse_kernel_names_a_mismatched_operand():
    g, z_up, z_low, w_up, w_low, _, _ = fuse_inputs(1, 16, 4, 4, 5, 5, False)
    with pytest.raises(
            RuntimeError,
            match=r'cru_fuse: z_low must be an fp32 CPU tensor of shape '
            r'\(1, 4, 5, 5\), got \[1, 4, 5, 4\]'):
        cpu_kernels().cru_fuse_out(g, z_up, z_low[..., :4], w_up, w_low, None,
                                   None, False, torch.empty_like(g))
    with pytest.raises(
            RuntimeError,
            match=r'z_up must be contiguous in g\'s layout \(NCHW\)'):
        cpu_kernels().cru_fuse_out(
            g, z_up.contiguous(memory_format=torch.channels_last), z_low, w_up,
            w_low, None, None, False, torch.empty_like(g))
    with pytest.raises(
            RuntimeError,
            match=r'w_low must be a \(12, 4\) weight \(or its 1x1 '
            r'convolution form\), got shape \[6, 4, 1, 1\]'):
        cpu_kernels().cru_fuse_out(g, z_up, z_low, w_up, w_low[:6], None, None,
                                   False, torch.empty_like(g))
    with pytest.raises(RuntimeError, match='scale must have 16 values, got 8'):
        cpu_kernels().cru_fuse_out(g, z_up, z_low, w_up, w_low, torch.ones(8),
                                   torch.zeros(16), False, torch.empty_like(g))


def test_squeeze_kernel_names_a_mismatched_weight():
    x, gamma, beta = inputs((1, 16, 4, 4), False)
    z = torch.empty(1, 4, 4, 4)
    message = (r"w_low must have C/2 = 8 input channels \(a 1x1 "
               r"convolution's weight\), got shape \[4, 6, 1, 1\]")
    with pytest.raises(RuntimeError, match=message):
        cpu_kernels().sru_squeeze_out(x, gamma, beta, 2, 1e-5, GAMMA_SUM_EPS,
                                      0.5, False, torch.ones(4, 8, 1, 1),
                                      torch.ones(4, 6, 1, 1), z, z.clone())


def test_pooled_op_refuses_windows_that_do_not_tile():
    x, gamma, beta = inputs((1, 8, 6, 5), False)
    with pytest.raises(ValueError, match='must tile the input, got 6x5'):
        sru_inference_pooled(x, gamma, beta, 2, 1e-5, 0.5, 'soft')


@pytest.mark.parametrize('channels_last', [False, True])
def test_kernel_guards_a_gamma_summing_to_zero(channels_last):
    """``W_gamma = gamma / sum(gamma)`` with the sum pushed away from zero,
    as the twin does it."""
    x, gamma, beta = inputs((1, 16, 6, 6), channels_last)
    gamma = torch.cat([gamma[:8], -gamma[:8]])
    assert gamma.sum() == 0
    assert_relative_error(
        sru_inference(x, gamma, beta, 4, 1e-5, 0.5, 'soft'),
        twin(x, gamma, beta, 4, 0.5, 'soft'), 1e-6)


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


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
@pytest.mark.parametrize('channels_last', [False, True])
def test_squeeze_and_fuse_ops_pass_opcheck(dtype, channels_last):
    x, gamma, beta = inputs((2, 16, 6, 10), channels_last)
    w_up, w_low = torch.randn(4, 8, 1, 1), torch.randn(4, 8, 1, 1)
    torch.library.opcheck(sru_squeeze_inference,
                          (x.to(dtype), gamma, beta, 4, 1e-5, 0.5, 'soft',
                           w_up.to(dtype), w_low.to(dtype), channels_last))
    args = fuse_inputs(2, 16, 4, 4, 6, 10, channels_last)
    torch.library.opcheck(
        cru_fuse,
        (*(a.to(dtype) for a in args[:5]), *args[5:], True, not channels_last))


def test_kernel_refuses_an_output_of_another_layout():
    x, gamma, beta = inputs((1, 8, 4, 4), False)
    out = torch.empty_like(x, memory_format=torch.channels_last)
    with pytest.raises(
            RuntimeError,
            match=r"out must be fp32 of shape \[1, "
            r"8, 4, 4\] in x's layout"):
        cpu_kernels().sru_inference_out(x, gamma, beta, 2, 1e-5, GAMMA_SUM_EPS,
                                        0.5, False, out)


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
        from mmdet_scconv.layers.ops.cru_fuse import cru_fuse
        from mmdet_scconv.layers.ops.sru_inference import sru_inference
        x = torch.randn(1, 8, 5, 5)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            out = sru_inference(x, torch.ones(8), torch.zeros(8), 2, 1e-5,
                                0.5, 'soft')
            fused = cru_fuse(x, x[:, :2], x[:, :2], torch.ones(8, 2),
                             torch.ones(6, 2), None, None, False, False)
        assert out.shape == x.shape, out.shape
        assert fused.shape == x.shape, fused.shape
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
    layout = memory_format(channels_last)
    x = x.contiguous(memory_format=layout)
    with torch.no_grad():
        y = fast.eval()(x)
        expected = reference.eval()(x)
    assert fast.cru.gwc.in_channels // fast.cru.gwc.groups < 16
    assert y.is_contiguous(memory_format=layout)
    assert_relative_error(y, expected, 1e-5)


@pytest.mark.parametrize('channels_last', [False, True])
def test_a_layer_costs_the_host_seven_or_eight_calls(channels_last):
    """A stride-1 layer's CPU inference with its BatchNorm is the squeezing
    kernel's two outputs, the grouped convolution, the four small ops that
    turn the BatchNorm into the fuse's affine (none in the deploy form,
    whose affine is kept) and the fuse over the convolution's output, which
    allocates only where that ran in the other layout (NCHW at 64
    channels: 8 per group); no call of its own besides, no BatchNorm
    pass."""
    rows = layer_host_work(
        channels=64,
        batch=1,
        strides=(1, ),
        gates=('soft', 'hard'),
        impl='fast',
        channels_last=channels_last)
    deploy = {'empty': 2, 'conv2d': 1}
    if not channels_last:
        deploy['empty_like'] = 1
    expected = {
        'inference': {
            **deploy, 'add': 1,
            'rsqrt': 1,
            'mul': 1,
            'addcmul': 1
        },
        'deploy': deploy
    }
    for row in rows:
        if row['path'] in expected:
            assert dict(row['scconv'].aten) == expected[row['path']], row

"""SCConv's Triton kernels equal the PyTorch path and the reference.

Without a GPU they run in Triton's interpreter on CPU tensors (conftest.py
sets ``TRITON_INTERPRET=1`` before triton is imported); on a GPU machine
the same tests run the compiled kernels on CUDA.
"""
import collections
import copy
import importlib
import os
import subprocess
import sys

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

pytest.importorskip(
    'triton', reason="the kernels need triton: pip install -e '.[triton]'")

from test_compiled import assert_relative_error
from test_layers import randomise

from mmdet_scconv.benchmark.exactness import CASES, check_paths, format_checks
from mmdet_scconv.benchmark.host import count_host_work
from mmdet_scconv.benchmark.tuning import format_tuned, tune_trunk
from mmdet_scconv.layers import CRU, SCConv, set_scconv_impl
from mmdet_scconv.layers.kernels import _workspace
from mmdet_scconv.layers.kernels import cru as triton_cru
from mmdet_scconv.layers.kernels import sru as triton_sru
from mmdet_scconv.layers.kernels.sru_squeeze import sru_squeeze
from mmdet_scconv.layers.norm_folding import apply_affine
from mmdet_scconv.layers.ops.sru import gn_affine, sru_forward, stats_tensor

DEVICE = 'cuda' if torch.cuda.is_available() else 'cpu'
# The module, not the op of the same name that its package exports.
layer_op = importlib.import_module('mmdet_scconv.layers.ops.scconv')
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def layout(x, channels_last):
    return x.contiguous(memory_format=torch.channels_last
                        if channels_last else torch.contiguous_format)


def sru_inputs(shape, channels_last, dtype=torch.float32):
    x = layout(torch.randn(shape, device=DEVICE, dtype=dtype), channels_last)
    weight = torch.rand(shape[1], device=DEVICE) + 0.5
    bias = torch.randn(shape[1], device=DEVICE)
    return x, weight, bias


SRU_CASES = [  # shape, GroupNorm groups, channels-last, gate
    ((2, 16, 7, 9), 4, False, 'soft'),
    ((2, 32, 5, 6), 8, True, 'soft'),
    ((1, 16, 8, 3), 2, True, 'hard'),
    ((2, 12, 9, 4), 3, False, 'soft'),  # channels not a power of two
]


def sru_twin(x, gamma, beta, groups, gate):
    """The PyTorch math's halves (in ``x``'s dtype) and statistics."""
    weight, bias = gn_affine(gamma, beta, gate)
    upper, lower, mean, rstd = sru_forward(x, weight, bias, groups, 1e-5, 0.5,
                                           gate)
    return upper.to(x.dtype), lower.to(x.dtype), stats_tensor(mean, rstd)


@pytest.mark.parametrize('shape,groups,channels_last,gate', SRU_CASES)
def test_group_stats_match_pytorch(shape, groups, channels_last, gate):
    x, gamma, beta = sru_inputs(shape, channels_last)
    _, _, stats = sru_twin(x, gamma, beta, groups, gate)
    assert_relative_error(
        triton_sru.group_stats(x, groups, 1e-5), stats, 1e-6, 'mean and rstd')


def layer_on_both_sides(shape, groups, channels_last, gate, gamma=None):
    """Output and every gradient of one layer (``alpha=0.5``, the grouped
    convolution ungrouped so that any even width works) on the kernels and
    by the PyTorch math, from the same output gradient."""
    x, weight, beta = sru_inputs(shape, channels_last)
    scconv = randomise(SCConv(shape[1], shape[1], gn_groups=groups,
                              groups=1)).to(DEVICE)
    cru = scconv.cru
    weights = (weight if gamma is None else gamma, beta,
               cru.squeeze_up.weight.detach(), cru.squeeze_low.weight.detach(),
               cru.gwc.weight.detach(), cru.pwc_up.weight.detach(),
               cru.pwc_low.weight.detach())
    results = []
    for forward, backward in ((layer_op.kernels_forward,
                               layer_op.kernels_backward),
                              (layer_op.torch_forward,
                               layer_op.torch_backward)):
        options = (groups, 1e-5, 0.5, gate, 1, 1, torch.float32)
        y, *saved = forward(x, weights, options)
        grad = torch.linspace(-1, 1, y.numel(), device=DEVICE).view_as(y)
        results.append((y, *backward(grad, x, weights, saved, options)))
    return results


NAMES = ('y', 'x', 'gamma', 'beta', 'squeeze_up', 'squeeze_low', 'gwc',
         'pwc_up', 'pwc_low')


@pytest.mark.parametrize('shape,groups,channels_last,gate', SRU_CASES)
def test_layer_backward_matches_pytorch(shape, groups, channels_last, gate):
    """Gradients of x, of the GroupNorm's own gamma and beta (through
    W_gamma) and of every weight."""
    actual, expected = layer_on_both_sides(shape, groups, channels_last, gate)
    for name, a, e in zip(NAMES, actual, expected):
        if gate == 'hard' and name in ('gamma', 'beta'):
            assert a is None and e is None
            continue
        assert_relative_error(a, e, 1e-5, name)


def test_gamma_gradient_where_the_sum_of_gamma_is_held_away_from_zero():
    """Where |sum(gamma)| is pushed up to its floor it passes no gradient,
    in the kernel as in the PyTorch math (and in autograd of the
    reference)."""
    _, gamma, _ = sru_inputs((2, 16, 5, 4), False)
    gamma = torch.cat([gamma[:8], -gamma[:8]])  # sum(gamma) == 0
    actual, expected = layer_on_both_sides((2, 16, 5, 4), 4, False, 'soft',
                                           gamma)
    for name, a, e in zip(NAMES, actual, expected):
        assert torch.isfinite(a).all()
        assert_relative_error(a, e, 1e-5, name)


def test_group_stats_stay_accurate_when_the_mean_dwarfs_the_spread():
    """Partial means and centred sums merged with Chan's formula: no
    catastrophic cancellation of ``E[x^2] - E[x]^2``."""
    x = 1000 + 0.01 * torch.randn(2, 16, 20, 30, dtype=torch.float64)
    stats = triton_sru.group_stats(x.float().to(DEVICE), 4, 1e-12)
    mean, rstd = stats[:8].view(2, 4), stats[8:].view(2, 4)
    grouped = x.view(2, 4, -1)
    torch.testing.assert_close(
        mean.double().cpu(), grouped.mean(-1), rtol=1e-6, atol=0)
    expected_rstd = grouped.var(-1, unbiased=False).rsqrt()
    assert_relative_error(rstd.cpu(), expected_rstd, 2e-3, 'rstd')


def test_group_stats_zero_the_values_after_them():
    """The statistics kernel zeroes the accumulators a later kernel adds
    into (no launch of their own), whatever the buffer held before."""
    x = torch.randn(2, 16, 5, 5, device=DEVICE)
    for _ in range(2):  # the second call may reuse the first one's memory
        stats = triton_sru.group_stats(x, 4, 1e-5, extra=1000)
        assert stats.shape == (16 + 1000, )
        assert (stats[16:] == 0).all()
        stats.fill_(7.0)


@pytest.mark.parametrize(
    'channels,out_channels,alpha,kernel_size,stride,dilation,groups,size,'
    'channels_last,with_affine',
    [
        (64, 64, 0.5, 3, 1, 1, 2, (7, 5), False, False),
        (64, 64, 0.5, 3, 2, 1, 2, (7, 6), True, True),  # odd, strided
        (64, 48, 0.75, 3, 2, 2, 4, (9, 8), False, True),
        (32, 40, 0.5, 5, 3, 1, 1, (8, 10), True, False),  # k 5, stride 3
        (16, 12, 0.5, 1, 1, 1, 2, (4, 3), False, False),  # k 1, tiny
        (256, 256, 0.5, 3, 1, 1, 2, (5, 4), True, True),  # K, C blocks
    ])
def test_cru_kernel_matches_the_module(channels, out_channels, alpha,
                                       kernel_size, stride, dilation, groups,
                                       size, channels_last, with_affine):
    """The whole CRU after its squeeze convolutions (grouped convolution,
    pointwise convolutions, pooling, fuse, folded BatchNorm) as one kernel
    equals the module's ops (its gradients: the whole layer's tests)."""
    cru = randomise(
        CRU(channels,
            out_channels,
            kernel_size,
            stride,
            dilation,
            alpha,
            groups=groups)).to(DEVICE)
    x = layout(torch.randn(2, channels, *size, device=DEVICE), channels_last)
    affine = ((torch.randn(out_channels, device=DEVICE),
               torch.randn(out_channels, device=DEVICE))
              if with_affine else None)
    with torch.no_grad():
        x_up, x_low = torch.split(x, [cru.up_channels, cru.low_channels], 1)
        x_up, x_low = cru.squeeze_up(x_up), cru.squeeze_low(x_low)
        expected = cru(x)
        if with_affine:
            expected = apply_affine(expected, affine)
        weights = (cru.gwc.weight, cru.pwc_up.weight, cru.pwc_low.weight)
        actual = triton_cru.cru_forward(x_up, x_low, *weights, stride,
                                        dilation, groups, affine)
    assert actual.shape == expected.shape
    assert actual.is_contiguous(memory_format=torch.channels_last) == (
        channels_last)
    assert_relative_error(actual, expected, 1e-5, 'Y')


@pytest.mark.parametrize(
    'channels,groups,channels_last,gate,dtype',
    [
        (64, 16, True, 'soft', torch.float32),
        (32, 8, False, 'hard', torch.float32),
        (16, 4, True, 'soft', torch.float16),  # half < the GEMM's K block
        (48, 3, False, 'soft', torch.float16),
        (256, 16, True, 'soft', torch.float32),  # two K blocks, wide output
    ])
def test_fused_sru_squeeze_matches_sru_then_convolutions(
        channels, groups, channels_last, gate, dtype):
    """The GEMM equals the SRU halves put through the two squeeze
    convolutions (operands rounded to the convolution dtype)."""
    scconv = randomise(
        SCConv(channels, channels, gn_groups=groups, gate=gate)).to(DEVICE)
    x = layout(torch.randn(2, channels, 9, 11, device=DEVICE),
               channels_last).to(dtype)
    sru, cru = scconv.sru, scconv.cru
    with torch.no_grad():
        upper, lower, _ = sru_twin(x, sru.gn.weight, sru.gn.bias, groups, gate)
        expected = [
            torch.nn.functional.conv2d(half.to(dtype), conv.weight.to(dtype))
            for half, conv in ((upper, cru.squeeze_up), (lower,
                                                         cru.squeeze_low))
        ]
        actual = sru_squeeze(x, sru.gn.weight, sru.gn.bias,
                             cru.squeeze_up.weight, cru.squeeze_low.weight,
                             groups, 1e-5, 0.5, gate)[:2]
    tolerance = 1e-6 if dtype == torch.float32 else 5e-3
    for a, e in zip(actual, expected):
        assert a.dtype == dtype and a.shape == e.shape
        assert a.is_contiguous(
            memory_format=torch.channels_last) == channels_last
        assert_relative_error(a, e, tolerance, 'squeezed')


@pytest.mark.parametrize('stride,dilation,channels_last', [(1, 1, True),
                                                           (2, 1, False),
                                                           (2, 2, True)])
def test_squeeze_gemm_adds_up_the_cru_sums(stride, dilation, channels_last):
    """The GEMM adds up the CRU's pooled statistics of its outputs as it
    stores them, after the GroupNorm statistics: the same as the separate
    sums pass."""
    scconv = randomise(SCConv(32, 32, gn_groups=8)).to(DEVICE)
    x = layout(torch.randn(2, 32, 9, 7, device=DEVICE), channels_last)
    sru, cru = scconv.sru, scconv.cru
    with torch.no_grad():
        up, low, stats = sru_squeeze(
            x,
            sru.gn.weight,
            sru.gn.bias,
            cru.squeeze_up.weight,
            cru.squeeze_low.weight,
            8,
            1e-5,
            0.5,
            'soft',
            cru_geometry=(3, stride, dilation))
    expected = triton_cru.pooled_sums(up, low, 3, stride, dilation)
    assert_relative_error(stats[2 * 2 * 8:], expected, 1e-6, 'sums')


@pytest.mark.parametrize('deploy', [False, True])
def test_inference_never_writes_the_sru_output(monkeypatch, deploy):
    """On the kernels, inference (the deploy form too) computes the SRU
    output inside the squeeze GEMM, which also adds up the CRU's sums:
    the separate sums pass may not run (no kernel writes the SRU halves)."""

    def no_sums_pass(*args, **kwargs):
        raise AssertionError('the squeezed tensors were read for the sums')

    monkeypatch.setattr(triton_cru, 'pooled_sums', no_sums_pass)
    scconv = randomise(SCConv(32, 32, gn_groups=8, impl='triton')).to(DEVICE)
    bn = torch.nn.BatchNorm2d(32).to(DEVICE).eval()
    x = torch.randn(1, 32, 5, 5, device=DEVICE)
    with torch.no_grad():
        expected = set_scconv_impl(copy.deepcopy(scconv), 'reference')(x)
        if deploy:
            expected = bn(expected)
            scconv.fuse_norm(bn)
        assert_relative_error(scconv.eval()(x), expected, 1e-5, 'output')


class _OpCalls(TorchDispatchMode):
    """Counts the operators called at the top level (aten operators and
    registered ops; not those inside a registered op)."""

    def __init__(self):
        super().__init__()
        self.calls = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.calls[str(func).rsplit('.', 1)[0]] += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize('stride', [1, 2])
def test_kernels_run_the_cru_convolutions_themselves(monkeypatch, stride):
    """On the kernels neither inference nor training runs the CRU's
    convolutions as modules: one kernel computes them with the fuse, in
    training through the layer op ``mmdet_scconv::scconv``, whose backward
    takes each of the three convolutions' two gradients from one call and
    hands them to the SRU backward kernels as they are: no add, pooling or
    unpooling of them runs on its own, and the squeeze convolutions'
    gradients come from those kernels."""
    scconv = randomise(
        SCConv(32, 32, stride=stride, gn_groups=8, impl='triton')).to(DEVICE)
    x = torch.randn(1, 32, 6, 5, device=DEVICE)

    def no_module_call(*args):
        raise AssertionError('a CRU convolution ran as a module')

    for conv in (scconv.cru.gwc, scconv.cru.pwc_up, scconv.cru.pwc_low,
                 scconv.cru.squeeze_up, scconv.cru.squeeze_low):
        monkeypatch.setattr(conv, 'forward', no_module_call)
    with torch.no_grad():
        scconv(x)
    ops = _OpCalls()
    with ops:
        work = count_host_work(lambda: scconv(x).sum().backward())
    assert ops.calls['mmdet_scconv.scconv'] == 1
    assert ops.calls['mmdet_scconv.cru'] == 0
    assert scconv.cru.gwc.weight.grad is not None
    assert work.aten['convolution_backward'] == 3
    assert not {'add', 'avg_pool2d', 'avg_pool2d_backward'} & set(work.aten)
    assert work.launches['_backward_input_kernel'] == 1


def _layer_grads(scconv, x):
    scconv.zero_grad(set_to_none=True)
    scconv(x).square().mean().backward()
    return [p.grad.clone() for p in scconv.parameters() if p.grad is not None]


@pytest.mark.parametrize('gate', ['soft', 'hard'])
def test_backward_accumulators_are_left_zeroed(monkeypatch, gate):
    """The layer's backward adds into one reused scratch buffer that its
    last kernel zeroes: a second step gives the same gradients, the buffer
    is zeros after each, and a backward that fails midway zeroes it too."""
    scconv = randomise(
        SCConv(16, 16, stride=2, gn_groups=4, gate=gate,
               impl='triton')).to(DEVICE)
    x = torch.randn(2, 16, 4, 4, device=DEVICE)
    _workspace.clear()
    first = _layer_grads(scconv, x)
    accumulators = [
        buffer for key, buffer in _workspace._buffers.items()
        if key[0] == 'scconv.accumulators'
    ]
    assert len(accumulators) == 1 and not accumulators[0].any()
    for a, b in zip(_layer_grads(scconv, x), first):
        assert torch.equal(a, b)

    def fail(*args):
        assert accumulators[0].any()  # the CRU's sums are in by now
        raise RuntimeError('out of memory')

    monkeypatch.setattr(layer_op, 'conv_grads_in_pieces', fail)
    with pytest.raises(RuntimeError, match='out of memory'):
        _layer_grads(scconv, x)
    assert not accumulators[0].any()
    monkeypatch.undo()
    for a, b in zip(_layer_grads(scconv, x), first):
        assert torch.equal(a, b)


def test_scconv_triton_impl_equals_reference():
    """Training outputs and every gradient, inference and deploy outputs;
    fp32 on the GPU exactness check's cases the kernels take (stride 1 and
    2, odd sizes, NCHW and channels-last, soft and hard gate, alpha 1/2),
    half precision on the strided channels-last one (the interpreter is
    slow; on a GPU the exactness check runs every case in both). The
    interpreter cannot multiply bf16 (triton#11584), so it checks fp16
    there."""
    half = 'bf16' if torch.cuda.is_available() else 'fp16'
    checks = check_paths(
        DEVICE, impls=('triton', ), dtypes=('fp32', ), cases=CASES[:3])
    checks += check_paths(
        DEVICE, impls=('triton', ), dtypes=(half, ), cases=CASES[1:2])
    assert all(c.ok for c in checks), format_checks(checks)
    assert len(checks) == 31 + 11


def test_impl_selection(monkeypatch):
    x = torch.randn(1, 16, 4, 4)
    layer = SCConv(16, 16, gn_groups=4)
    for impl in ('torch', 'reference'):
        assert not set_scconv_impl(layer, impl).runs_kernels(x)
    assert set_scconv_impl(layer, 'fast').runs_kernels(x) == x.is_cuda
    assert set_scconv_impl(layer, 'triton').runs_kernels(x)
    with pytest.raises(
            ValueError,
            match="impl='triton' runs SCConv layers "
            "with alpha=0.5; this one splits 12/4"):
        SCConv(16, 16, gn_groups=4, alpha=0.75, impl='triton')(x)
    if not x.is_cuda:
        # The interpreter chosen after the ops were imported: not silently
        # the PyTorch math.
        from mmdet_scconv.layers import ops
        monkeypatch.setattr(ops, 'KERNEL_DEVICES', ['cuda'])
        with pytest.raises(RuntimeError, match='register_cpu_kernels'):
            SCConv(16, 16, gn_groups=4, impl='triton')(x)
        monkeypatch.undo()
    monkeypatch.setenv('TRITON_INTERPRET', '0')
    with pytest.raises(RuntimeError, match="runs on CUDA tensors"):
        SCConv(16, 16, gn_groups=4, impl='triton')(x)


def test_tuning_sweep_checks_and_times_every_setting():
    """The launch-settings sweep runs every setting of a small space on a
    real layer, checks it against the defaults and reports the best; a
    setting the kernel cannot take is reported, not hidden."""
    spaces = dict(
        sru_squeeze=dict(BLOCK_P=(16, 32), BLOCK_K=(16, )),
        cru=dict(BLOCK_P=(16, ), BLOCK_C=(16, 24)))
    rows = tune_trunk(
        50, 1, 32, 32, 'fp32', DEVICE, stages=(2, ), spaces=spaces)
    assert [(r.kernel, r.layer)
            for r in rows] == [('sru_squeeze', 'stage2 128x8x8 s2 (x1)'),
                               ('cru', 'stage2 128x8x8 s2 (x1)'),
                               ('sru_squeeze', 'stage2 128x4x4 (x3)'),
                               ('cru', 'stage2 128x4x4 (x3)')]
    for row in rows:
        assert 0 < row.best_ms <= row.default_ms
    # Blocks must be powers of two: BLOCK_C=24 fails, loudly.
    assert all(
        len(r.failed) == 1 and 'BLOCK_C' in r.failed[0] for r in rows
        if r.kernel == 'cru')
    assert all(not r.failed for r in rows if r.kernel == 'sru_squeeze')
    assert 'trunk total' in format_tuned(rows)


def test_kernels_compile_for_the_gpus():
    """Every kernel launch of the deploy, inference and training paths
    compiles for the V100 (sm_70), the A100 (sm_80) and the H100/H200
    (sm_90), each with the dtypes it runs (bf16 from sm_80 on), with
    Triton's own compiler, here, without a GPU: what the interpreter cannot
    check."""
    env = {k: v for k, v in os.environ.items() if k != 'TRITON_INTERPRET'}
    result = subprocess.run([
        sys.executable, 'tools/analysis_tools/compile_kernels.py',
        '--channels', '64', '--strides', '2', '--dtypes', 'fp32', 'bf16',
        'fp16', '--archs', '70', '80', '90'
    ],
                            cwd=REPO,
                            env=env,
                            capture_output=True,
                            text=True,
                            timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    compiled, total = lines[-1].split()[0].split('/')
    assert compiled == total, lines[-1]
    launches = {arch: [] for arch in ('sm_70', 'sm_80', 'sm_90')}
    for line in lines[:-1]:
        arch, launch = line.split(' ', 1)
        launches[arch].append(launch)
    for arch, found in launches.items():
        assert {launch.split('(')[0]
                for launch in found} == {
                    '_partial_stats_kernel', '_group_stats_kernel',
                    '_sru_squeeze_kernel', '_cru_kernel', '_grad_beta_kernel',
                    '_branch_grads_kernel', '_backward_sums_kernel',
                    '_backward_affine_kernel', '_backward_input_kernel'
                }, arch
        assert any('fp16' in launch for launch in found), arch
    assert not any('bf16' in launch for launch in launches['sm_70'])
    assert any('bf16' in launch for launch in launches['sm_90'])
    assert len(launches['sm_80']) == len(launches['sm_90'])

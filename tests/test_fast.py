"""The fast path equals the reference path, outputs and gradients."""
import copy

import pytest
import torch
from test_layers import randomise, randomise_running_stats

from mmdet_scconv.benchmark.exactness import (batchnorm_with_stats,
                                              forward_backward, relative_error)
from mmdet_scconv.layers import SCConv, set_scconv_impl
from mmdet_scconv.layers.cru import downsample
from mmdet_scconv.layers.fast import pool
from mmdet_scconv.layers.kernels._layout import memory_format


def assert_relative_error(actual, expected, tol, what=''):
    """``||actual - expected|| <= tol * ||expected||`` (in fp64)."""
    error = relative_error(actual, expected)
    assert error <= tol, f'{what}: relative error {error:.2e} > {tol:.0e}'


def pair(**kwargs):
    fast = randomise(SCConv(**kwargs, impl='fast'))
    reference = copy.deepcopy(fast)
    set_scconv_impl(reference, 'reference')
    return fast, reference


def run(module, x, dtype='fp32'):
    """Output, input gradient and parameter gradients (``dtype``: autocast
    by name, ``'fp32'`` for none)."""
    y, grads = forward_backward(module, x, dtype, torch.device('cpu'))
    return y, grads.pop('input grad'), grads


@pytest.mark.parametrize('gate', ['soft', 'hard'])
@pytest.mark.parametrize('alpha', [0.5, 0.75])
@pytest.mark.parametrize('stride,size,channels_last', [(1, (16, 16), False),
                                                       (2, (15, 9), False),
                                                       (2, (16, 12), True),
                                                       (2, (16, 12), False),
                                                       (1, (7, 13), True)])
def test_fast_equals_reference_fp32(gate, alpha, stride, size, channels_last):
    fast, reference = pair(
        in_channels=32,
        out_channels=48,
        stride=stride,
        alpha=alpha,
        gn_groups=8,
        gate=gate)
    x = torch.randn(2, 32, *size)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    y_f, gx_f, g_f = run(fast, x)
    y_r, gx_r, g_r = run(reference, x)
    assert_relative_error(y_f, y_r, 1e-5, 'output')
    assert_relative_error(gx_f, gx_r, 1e-5, 'input gradient')
    assert g_f.keys() == g_r.keys()
    for name in g_f:
        assert_relative_error(g_f[name], g_r[name], 1e-5, name)


def test_fast_equals_reference_bf16():
    fast, reference = pair(in_channels=32, out_channels=32, gn_groups=8)
    x = torch.randn(2, 32, 12, 12)
    y_f, gx_f, _ = run(fast, x, 'bf16')
    y_r, gx_r, _ = run(reference, x, 'bf16')
    assert y_f.dtype == y_r.dtype == torch.bfloat16
    # bf16 keeps 8 bits of mantissa: errors of a few 2^-8 are rounding.
    assert_relative_error(y_f, y_r, 2e-2, 'output')
    assert_relative_error(gx_f, gx_r, 2e-2, 'input gradient')


def test_impl_is_checked():
    with pytest.raises(ValueError, match="impl must be one of"):
        SCConv(16, 16, gn_groups=4, impl='cuda')
    with pytest.raises(ValueError, match="impl must be one of"):
        set_scconv_impl(SCConv(16, 16, gn_groups=4), 'turbo')


def test_compiles_without_graph_breaks():
    m = SCConv(32, 32, gn_groups=8)
    explanation = torch._dynamo.explain(m)(torch.randn(1, 32, 8, 8))
    assert explanation.graph_break_count == 0
    assert explanation.graph_count == 1


@pytest.mark.parametrize('batch', [1, 2])
@pytest.mark.parametrize('gate', ['soft', 'hard'])
@pytest.mark.parametrize('stride', [1, 2])
@pytest.mark.parametrize('channels_last', [False, True])
@pytest.mark.parametrize('size', [(13, 10), (12, 16)])
def test_inference_path_equals_reference(batch, gate, stride, channels_last,
                                         size):
    """Without autograd the fast path works in place (for one NCHW sample
    even its SRU halves overwrite their operands, and the CRU's pointwise
    convolutions are added into Y1); same numbers."""
    fast, reference = pair(
        in_channels=32, out_channels=40, stride=stride, gn_groups=8, gate=gate)
    x = torch.randn(batch, 32, *size)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    x_before = x.clone()
    with torch.inference_mode():
        y_f = fast(x)
    with torch.no_grad():
        y_r = reference(x)
    assert torch.equal(x, x_before)  # the input is never overwritten
    assert_relative_error(y_f, y_r, 1e-5, 'output')


@pytest.mark.parametrize('gate', ['soft', 'hard'])
def test_reweights_exactly_at_threshold_match(gate):
    """A constant GroupNorm group with beta = 0 gives R = 0.5 = t exactly:
    both paths treat it as not informative (R > t is false)."""
    fast, reference = pair(
        in_channels=16, out_channels=16, gn_groups=4, gate=gate)
    with torch.no_grad():
        fast.sru.gn.bias.zero_()
        reference.sru.gn.bias.zero_()
    x = torch.randn(1, 16, 6, 6)
    x[:, :4] = 0.0
    assert (reference.sru.reweights(x)[:, :4] == 0.5).all()
    for grad in (False, True):
        with torch.set_grad_enabled(grad):
            assert_relative_error(fast(x), reference(x), 1e-6, gate)


def test_scconv_resnet_block_compiles_without_breaks_in_scconv():
    from mmdet_scconv.benchmark import ResNetTrunk
    trunk = ResNetTrunk(50, scconv_cfg={})
    block = trunk.stages[1][0]  # strided, with a projection shortcut
    explanation = torch._dynamo.explain(block)(torch.randn(1, 256, 16, 16))
    assert explanation.graph_break_count == 0
    trunk.eval()
    compiled = torch.compile(trunk.stages[0], backend='eager', fullgraph=True)
    x = torch.randn(1, 64, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), trunk.stages[0](x))


@pytest.mark.parametrize('impl', ['fast', 'reference'])
@pytest.mark.parametrize('alpha,stride', [(0.5, 1), (0.75, 2)])
def test_fused_norm_equals_scconv_then_batchnorm(impl, alpha, stride):
    fast, _ = pair(
        in_channels=32,
        out_channels=48,
        alpha=alpha,
        stride=stride,
        gn_groups=8)
    set_scconv_impl(fast, impl)
    bn = batchnorm_with_stats(48)
    x = torch.randn(2, 32, 11, 12)
    with torch.no_grad():
        expected = bn(fast(x))
        fused = copy.deepcopy(fast)
        fused.fuse_norm(bn)
        assert_relative_error(fused(x), expected, 1e-5, 'no autograd')
    assert_relative_error(fused(x), expected, 1e-5, 'autograd')
    with pytest.raises(RuntimeError, match='already has a norm fused'):
        fused.fuse_norm(bn)


def test_trunk_deploy_form_equals_eval_model():
    from mmdet_scconv.benchmark import ResNetTrunk
    trunk = ResNetTrunk(50, scconv_cfg={})
    randomise_running_stats(trunk)
    trunk.eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        expected = trunk(x)
        deployed = copy.deepcopy(trunk).switch_to_deploy()
        outs = deployed(x)
    assert sum(
        isinstance(m, torch.nn.BatchNorm2d)
        for m in deployed.modules()) == 53 - 16
    for out, ref in zip(outs, expected):
        assert_relative_error(out, ref, 1e-5, 'stage output')


@pytest.mark.parametrize('stride,size,layout', [(2, (12, 16), 'nchw'),
                                                (3, (9, 6), 'nchw'),
                                                (2, (12, 16), 'cl'),
                                                (2, (13, 16), 'nchw'),
                                                (1, (5, 5), 'nchw'),
                                                (2, (12, 16), 'cl half')])
def test_pool_equals_downsample(stride, size, layout):
    """The strided-slices mean (windows tiling exactly) or avg_pool2d
    (otherwise): the CRU's downsample either way, gradients too."""
    x = torch.randn(2, 3, *size, dtype=torch.float64, requires_grad=True)
    if layout == 'cl half':  # an SRU half of a channels-last tensor
        x = torch.cat([x, x], 1).to(memory_format=torch.channels_last)[:, 3:]
    elif layout == 'cl':
        x = x.to(memory_format=torch.channels_last)
    torch.autograd.gradcheck(lambda t: pool(t, stride), (x, ))
    torch.testing.assert_close(pool(x, stride), downsample(x, stride))


@pytest.mark.parametrize('deploy', [False, True])
@pytest.mark.parametrize('stride,channels_last', [(1, False), (1, True),
                                                  (2, False), (2, True)])
def test_norm_and_relu_ride_on_the_last_pass(deploy, stride, channels_last):
    """``forward_with_norm`` in CPU inference equals SCConv, BatchNorm and
    ReLU in turn, and neither the norm nor the ReLU runs as an op of its
    own (the deploy form: the folded norm, then an ``nn.Identity``)."""
    from mmdet_scconv.benchmark.host import count_host_work

    fast, reference = pair(
        in_channels=32, out_channels=32, stride=stride, gn_groups=8)
    bn = batchnorm_with_stats(32)
    x = torch.randn(2, 32, 12, 16)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    norm = bn
    if deploy:
        fast.fuse_norm(bn)
        norm = torch.nn.Identity()
    relu = torch.nn.ReLU(inplace=True)
    with torch.no_grad():
        expected = torch.relu(bn(reference(x)))
        y = fast.forward_with_norm(x, norm, relu)
        work = count_host_work(lambda: fast.forward_with_norm(x, norm, relu))
    assert (expected == 0).any() and (expected > 0).any()
    assert_relative_error(y, expected, 1e-5)
    assert y.is_contiguous(memory_format=memory_format(channels_last))
    ops = set(work.aten)
    assert not ops & {'batch_norm', 'relu', 'relu_', 'clamp_min_'}, ops


def test_norm_runs_as_a_module_where_it_cannot_fold():
    """A BatchNorm in training mode (its batch statistics, its running
    statistics updated), another activation, or autograd: the modules in
    turn, as a bottleneck would run them."""
    fast, reference = pair(in_channels=32, out_channels=32, gn_groups=8)
    x = torch.randn(2, 32, 8, 8)
    bn = torch.nn.BatchNorm2d(32)
    bn_copy = copy.deepcopy(bn)
    with torch.no_grad():
        y = fast.forward_with_norm(x, bn, torch.nn.ReLU())
        expected = torch.relu(bn_copy(reference(x)))
    assert_relative_error(y, expected, 1e-5, 'training-mode norm')
    torch.testing.assert_close(bn.running_mean, bn_copy.running_mean)
    bn.eval()
    with torch.no_grad():
        y = fast.forward_with_norm(x, bn, torch.nn.GELU())
    assert_relative_error(y, torch.nn.functional.gelu(bn(reference(x))), 1e-5,
                          'GELU')
    y = fast.forward_with_norm(x, bn, torch.nn.ReLU())
    assert y.requires_grad
    assert_relative_error(y, torch.relu(bn(reference(x))), 1e-5, 'autograd')

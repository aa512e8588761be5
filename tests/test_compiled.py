"""The CPU path (the reference compiled by inductor, a layer on its own or a
backbone whole) equals the reference modules, outputs and gradients, and
compiles once for many image sizes."""
import copy
import warnings

import pytest
import torch
from test_layers import randomise, randomise_running_stats

from mmdet_scconv.benchmark.exactness import (batchnorm_with_stats,
                                              forward_backward, relative_error)
from mmdet_scconv.layers import SCConv, compiled, run_backbone, set_scconv_impl


@pytest.fixture
def compiling(monkeypatch):
    """The product's default: SCConv compiles itself (the other tests run
    the reference eagerly to keep CI's time, see conftest.py)."""
    monkeypatch.setenv(compiled.COMPILE_ENV, '1')


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


def compiles(fn):
    """``fn()``'s result and how many graphs dynamo compiled for it."""
    before = torch._dynamo.utils.counters['stats']['unique_graphs']
    result = fn()
    return result, (
        torch._dynamo.utils.counters['stats']['unique_graphs'] - before)


# Each value of each option at least once (every graph costs seconds).
@pytest.mark.parametrize('gate,alpha,stride,size,channels_last',
                         [('soft', 0.5, 1, (16, 16), False),
                          ('hard', 0.75, 2, (15, 9), False),
                          ('soft', 0.75, 2, (16, 12), True),
                          ('hard', 0.5, 1, (7, 13), True)])
def test_compiled_equals_reference_fp32(compiling, gate, alpha, stride, size,
                                        channels_last):
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
    (y_f, gx_f, g_f), graphs = compiles(lambda: run(fast, x))
    assert graphs >= 1  # the layer compiled itself
    y_r, gx_r, g_r = run(reference, x)
    assert_relative_error(y_f, y_r, 1e-5, 'output')
    assert_relative_error(gx_f, gx_r, 1e-5, 'input gradient')
    assert g_f.keys() == g_r.keys()
    for name in g_f:
        assert_relative_error(g_f[name], g_r[name], 1e-5, name)
    with torch.inference_mode():
        assert_relative_error(fast(x), reference(x), 1e-5, 'inference')


def test_compiled_equals_reference_bf16(compiling):
    fast, reference = pair(in_channels=32, out_channels=32, gn_groups=8)
    x = torch.randn(2, 32, 12, 12)
    y_f, gx_f, _ = run(fast, x, 'bf16')
    y_r, gx_r, _ = run(reference, x, 'bf16')
    assert y_f.dtype == y_r.dtype == torch.bfloat16
    # bf16 keeps 8 bits of mantissa: errors of a few 2^-8 are rounding.
    assert_relative_error(y_f, y_r, 2e-2, 'output')
    assert_relative_error(gx_f, gx_r, 2e-2, 'input gradient')


def test_new_image_sizes_do_not_recompile(compiling):
    """The first size compiles a static graph, the second one graph with
    height, width and batch dynamic; eight more sizes compile nothing."""
    fast, reference = pair(in_channels=32, out_channels=32, gn_groups=8)
    sizes = [(2, 20, 24), (3, 17, 31), (2, 32, 32), (4, 9, 13), (2, 40, 8),
             (3, 25, 25), (2, 11, 50), (5, 16, 12), (2, 64, 48), (3, 7, 7)]
    graphs = []
    with torch.inference_mode():
        for n, h, w in sizes:
            x = torch.randn(n, 32, h, w)
            y, count = compiles(lambda: fast(x))
            graphs.append(count)
            assert_relative_error(y, reference(x), 1e-5, f'{n}x{h}x{w}')
    assert sum(graphs[2:]) == 0, graphs


@pytest.mark.parametrize('gate', ['soft', 'hard'])
def test_reweights_exactly_at_threshold_match(compiling, gate):
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


@pytest.mark.parametrize('impl', ['fast', 'reference'])
def test_fused_norm_equals_scconv_then_batchnorm(compiling, impl):
    fast, _ = pair(
        in_channels=32, out_channels=48, alpha=0.75, stride=2, gn_groups=8)
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


def test_without_a_compiler_warns_once_and_runs_the_reference(monkeypatch):
    """Where inductor has no C++ compiler the layer says so once, names the
    fix and runs the reference modules."""
    monkeypatch.setenv(compiled.COMPILE_ENV, '1')
    compiled.inductor_missing.cache_clear()
    compiled._warn_eager.cache_clear()
    try:
        no_compiler = torch._inductor.config.patch(
            {'cpp.cxx': ('no-such-c++-compiler', )})
        with no_compiler:
            fast, reference = pair(
                in_channels=16, out_channels=16, gn_groups=4)
            x = torch.randn(1, 16, 6, 6)
            with pytest.warns(
                    UserWarning, match=r'no C\+\+ compiler') as record:
                (y, graphs) = compiles(lambda: fast(x))
            assert graphs == 0
            message = str(record[0].message)
            assert "impl='reference'" in message
            assert_relative_error(y, reference(x), 1e-6)
            with warnings.catch_warnings():
                warnings.simplefilter('error')
                fast(x)  # once only
    finally:
        compiled.inductor_missing.cache_clear()
        compiled._warn_eager.cache_clear()


def test_switch_off_runs_the_reference_without_warning(monkeypatch):
    monkeypatch.setenv(compiled.COMPILE_ENV, '0')
    fast, reference = pair(in_channels=16, out_channels=16, gn_groups=4)
    x = torch.randn(1, 16, 6, 6)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        y, graphs = compiles(lambda: fast(x))
    assert graphs == 0
    torch.testing.assert_close(y, reference(x), rtol=0, atol=0)


class TwoBlocks(torch.nn.Module):
    """A small backbone: two SCConv layers, each with a BatchNorm and a
    ReLU, the second strided."""

    def __init__(self):
        super().__init__()
        self.blocks = torch.nn.Sequential(*[
            torch.nn.Sequential(
                SCConv(16, 16, stride=stride, gn_groups=4),
                torch.nn.BatchNorm2d(16), torch.nn.ReLU()) for stride in (1, 2)
        ])

    def forward(self, x):
        return run_backbone(TwoBlocks.blocks_forward, self, x)

    def blocks_forward(self, x):
        return self.blocks(x)


def test_backbone_compiles_whole_and_equals_reference(compiling):
    """A backbone of SCConv layers compiles as one graph (its layers do not
    compile themselves inside it), for training and inference, and gives
    the reference's outputs and gradients (in float64, where any error is
    far from rounding)."""
    backbone = randomise(TwoBlocks()).double()
    reference = set_scconv_impl(copy.deepcopy(backbone), 'reference')
    x = torch.randn(2, 16, 12, 10, dtype=torch.float64)
    y, graphs = compiles(lambda: backbone(x))
    assert graphs == 1
    expected = reference(x)
    assert_relative_error(y, expected, 1e-10, 'training output')
    y.square().mean().backward()
    expected.square().mean().backward()
    for (name, p), q in zip(backbone.named_parameters(),
                            reference.parameters()):
        assert_relative_error(p.grad, q.grad, 1e-10, name)
    backbone.eval()
    reference.eval()
    with torch.inference_mode():
        assert_relative_error(
            backbone(x), reference(x), 1e-10, 'inference output')


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


def test_scconv_resnet_block_compiles_without_breaks_in_scconv():
    from mmdet_scconv.benchmark import ResNetTrunk
    trunk = ResNetTrunk(50, scconv_cfg={})
    block = trunk.stages[1][0]  # strided, with a projection shortcut
    explanation = torch._dynamo.explain(block)(torch.randn(1, 256, 16, 16))
    assert explanation.graph_break_count == 0
    trunk.eval()
    compiled_stage = torch.compile(
        trunk.stages[0], backend='eager', fullgraph=True)
    x = torch.randn(1, 64, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(compiled_stage(x), trunk.stages[0](x))


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

"""SCConvResNet through mmdet's registry, against mmdet's ResNet."""
import copy

import pytest
import torch
from mmcv.cnn import build_conv_layer
from mmdet.registry import MODELS
from test_layers import randomise_running_stats
from torch.nn.modules.batchnorm import _BatchNorm

import mmdet_scconv  # noqa: F401
from mmdet_scconv.layers import SCConv


def build(**cfg):
    return MODELS.build(dict(type='SCConvResNet', **cfg))


def scconvs(model):
    return [m for m in model.modules() if isinstance(m, SCConv)]


@pytest.mark.parametrize('depth,blocks', [(50, 16), (101, 33), (152, 50)])
def test_every_bottleneck_conv2_is_scconv(depth, blocks):
    model = build(depth=depth)
    convs = scconvs(model)
    assert len(convs) == blocks
    for layer_name in model.res_layers:
        for block in getattr(model, layer_name):
            assert isinstance(block.conv2, SCConv)


@pytest.mark.parametrize('depth', [50, 101])
def test_output_shapes_match_resnet(depth):
    x = torch.rand(1, 3, 67, 45)
    ours = build(depth=depth)
    resnet = MODELS.build(dict(type='ResNet', depth=depth))
    ours.eval()  # mmdet's ResNet.train() returns None, so no chaining
    resnet.eval()
    with torch.no_grad():
        assert [o.shape for o in ours(x)] == [o.shape for o in resnet(x)]


@pytest.mark.parametrize('style', ['pytorch', 'caffe'])
def test_style_moves_the_stride(style):
    model = build(depth=50, style=style)
    first = model.layer2[0]
    if style == 'pytorch':
        assert first.conv2.cru.stride == 2 and first.conv1.stride == (1, 1)
    else:
        assert first.conv2.cru.stride == 1 and first.conv1.stride == (2, 2)


def test_resnet_options_keep_working():
    model = build(
        depth=50,
        out_indices=(1, 3),
        deep_stem=True,
        avg_down=True,
        strides=(1, 2, 2, 1),
        dilations=(1, 1, 1, 2),
        with_cp=True,
        scconv_cfg=dict(alpha=0.75, gn_groups=8, gate='hard'),
    )
    assert model.layer4[1].conv2.cru.gwc.dilation == (2, 2)
    assert model.layer1[0].conv2.sru.gate == 'hard'
    assert model.layer1[0].conv2.sru.gn.num_groups == 8
    assert model.layer1[0].conv2.cru.up_channels == 48
    model.train()
    x = torch.rand(2, 3, 64, 64, requires_grad=True)
    outs = model(x)
    assert [o.shape[1:] for o in outs] == [(512, 8, 8), (2048, 4, 4)]
    sum(o.sum() for o in outs).backward()
    assert model.layer1[0].conv2.cru.gwc.weight.grad is not None


def test_stage_with_scconv_picks_stages():
    model = build(depth=50, stage_with_scconv=(False, True, False, True))
    kinds = [
        isinstance(getattr(model, n)[0].conv2, SCConv)
        for n in model.res_layers
    ]
    assert kinds == [False, True, False, True]


def test_plugins_still_work():
    plugin = dict(
        cfg=dict(type='ContextBlock', ratio=1. / 4),
        stages=(False, True, True, True),
        position='after_conv3')
    model = build(depth=50, plugins=[plugin])
    assert hasattr(model.layer2[0], 'context_block')
    assert not hasattr(model.layer1[0], 'context_block')
    model(torch.rand(1, 3, 64, 64))


@pytest.mark.parametrize('frozen_stages', [-1, 0, 1, 2])
def test_frozen_stages_like_resnet(frozen_stages):
    model = build(depth=50, frozen_stages=frozen_stages, norm_eval=False)
    model.train()
    for i, name in enumerate(['layer1', 'layer2', 'layer3', 'layer4']):
        layer = getattr(model, name)
        frozen = i < frozen_stages
        assert all(p.requires_grad != frozen for p in layer.parameters())
        assert all(m.training != frozen for m in layer.modules())
    stem_frozen = frozen_stages >= 0
    assert model.conv1.weight.requires_grad != stem_frozen


def test_norm_eval_freezes_batchnorm_only():
    model = build(depth=50, norm_eval=True)
    model.train()
    for m in model.modules():
        if isinstance(m, _BatchNorm):
            assert not m.training
    assert all(c.sru.gn.training for c in scconvs(model))


def test_default_init_sets_gn_gamma_to_one():
    model = build(depth=50)
    model.init_weights()
    gn = model.layer3[2].conv2.sru.gn
    assert torch.all(gn.weight == 1) and torch.all(gn.bias == 0)


@pytest.mark.parametrize('zero_init_residual', [True, False])
def test_zero_init_residual_like_resnet(zero_init_residual):
    model = build(depth=50, zero_init_residual=zero_init_residual)
    model.init_weights()
    norm3 = [
        b.norm3.weight for n in model.res_layers for b in getattr(model, n)
    ]
    assert all(bool((w == 0).all()) == zero_init_residual for w in norm3)


def test_build_conv_layer_builds_scconv():
    conv = build_conv_layer(
        dict(type='SCConv'), 64, 64, 3, stride=2, padding=1)
    assert isinstance(conv, SCConv)
    assert conv(torch.rand(1, 64, 9, 9)).shape == (1, 64, 5, 5)
    conv = build_conv_layer(
        dict(type='SCConv', alpha=0.75, gn_groups=4),
        32,
        64,
        3,
        dilation=2,
        padding=2,
        bias=False)
    assert conv.cru.up_channels == 24


def test_conv_cfg_scconv_in_mmdet_bottleneck():
    """mmdet's own Bottleneck builds SCConv from a conv_cfg."""
    from mmdet.models.backbones.resnet import Bottleneck
    block = Bottleneck(
        64,
        64,
        conv_cfg=dict(type='SCConv', gn_groups=4),
        downsample=torch.nn.Conv2d(64, 256, 1))
    assert all(
        isinstance(c, SCConv) for c in (block.conv1, block.conv2, block.conv3))
    assert block(torch.rand(1, 64, 8, 8)).shape == (1, 256, 8, 8)


def test_custom_imports_config_builds(tmp_path):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    cfg_file = tmp_path / 'cfg.py'
    cfg_file.write_text(
        "custom_imports = dict(imports=['mmdet_scconv'], "
        "allow_failed_imports=False)\n"
        "default_scope = 'mmdet'\n"
        "model = dict(type='SCConvResNet', depth=50, out_indices=(3,))\n")
    cfg = Config.fromfile(str(cfg_file))
    init_default_scope(cfg.default_scope)
    model = MODELS.build(cfg.model)
    assert len(scconvs(model)) == 16


def test_stage_compiles_in_one_graph():
    model = build(depth=50)
    model.eval()
    compiled = torch.compile(model.layer2, backend='eager', fullgraph=True)
    x = torch.rand(1, 256, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model.layer2(x))


def assert_outputs_kept(change):
    """A trained-like SCConv-R50 in eval mode gives the same stage outputs
    after ``change(model)`` (in place) as before; return the model."""
    model = build(depth=50)
    randomise_running_stats(model)
    model.eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
        change(model)
        outs = model(x)
    for out, ref in zip(outs, expected):
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    return model


def test_switch_to_deploy_keeps_outputs():
    model = assert_outputs_kept(lambda m: m.switch_to_deploy())
    assert all(
        isinstance(b.norm2, torch.nn.Identity) for n in model.res_layers
        for b in getattr(model, n))


def test_scconv_resnet_compiles_whole_and_keeps_the_kernels():
    """mmdet's SCConvResNet on the kernel path (Triton's interpreter on the
    CPU): ``torch.compile(fullgraph=True)`` traces it without a graph break
    and the compiled backbone launches the kernels, with eager's outputs."""
    pytest.importorskip('triton')
    from test_compiled import assert_relative_error

    from mmdet_scconv.benchmark.host import count_host_work

    torch._dynamo.reset()
    model = build(depth=50, scconv_cfg=dict(impl='triton'))
    model.eval()
    x = torch.rand(1, 3, 32, 32)
    compiled = torch.compile(model, backend='aot_eager', fullgraph=True)
    with torch.no_grad():
        expected = model(x)
        compiled(x)
        work = count_host_work(lambda: compiled(x))
        actual = compiled(x)
    assert work.launches['_sru_squeeze_kernel'] == 16
    for a, e in zip(actual, expected):
        assert_relative_error(a, e, 1e-6, 'stage output')


@pytest.mark.parametrize('plugins', [None, 'after_conv2'])
def test_bottleneck_forward_is_mmdets(plugins):
    """SCConvBottleneck has no forward of its own: mmdet's
    ``Bottleneck.forward`` runs SCConv as ``conv2``, plugins included."""
    from mmdet.models.backbones.resnet import Bottleneck

    from mmdet_scconv.models.backbones.scconv_resnet import SCConvBottleneck
    assert SCConvBottleneck.forward is Bottleneck.forward
    plugin = dict(
        cfg=dict(type='ContextBlock', ratio=1. / 4),
        stages=(True, True, True, True),
        position=plugins)
    model = build(depth=50, plugins=[plugin] if plugins else None)
    block = model.layer2[0]  # strided, with a projection shortcut
    assert isinstance(block.conv2, SCConv)
    assert block(torch.rand(2, 256, 16, 16)).shape == (2, 512, 8, 8)


def test_backbone_compiles_itself_on_the_cpu(monkeypatch):
    """With compilation on (the product's default; the tests switch it off
    elsewhere), the backbone runs as one inductor graph with the reference
    modules' outputs."""
    from test_compiled import assert_relative_error

    from mmdet_scconv.layers import compiled, set_scconv_impl
    monkeypatch.setenv(compiled.COMPILE_ENV, '1')
    model = build(depth=50)
    model.eval()  # mmdet's ResNet.train returns None
    reference = set_scconv_impl(copy.deepcopy(model), 'reference')
    x = torch.rand(1, 3, 32, 32)
    before = torch._dynamo.utils.counters['stats']['unique_graphs']
    with torch.no_grad():
        outs = model(x)
        expected = reference(x)
    assert torch._dynamo.utils.counters['stats']['unique_graphs'] == before + 1
    for out, ref in zip(outs, expected):
        assert_relative_error(out, ref, 1e-4, 'stage output')


def test_export_form_keeps_the_backbone_running():
    """``to_export_form`` swaps every SCConv for its ONNX form, after which
    each bottleneck runs mmdet's own forward, with the same outputs."""
    from mmdet_scconv.layers.scconv import to_export_form
    model = assert_outputs_kept(to_export_form)
    assert not scconvs(model)

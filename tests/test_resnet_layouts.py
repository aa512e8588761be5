"""SCConvResNet accepts every layout mmdet's ResNet accepts, side by side:
the same outputs (exactly, with no stage on SCConv), frozen parameters and
norm modes."""
import pytest
import torch
from mmdet.registry import MODELS

import mmdet_scconv  # noqa: F401

LAYOUTS = [
    dict(num_stages=1, strides=(1, ), dilations=(1, ), out_indices=(0, )),
    dict(num_stages=2, strides=(1, 2), dilations=(1, 1), out_indices=(0, 1)),
    # C4, as Faster R-CNN's C4 configs use it.
    dict(
        num_stages=3,
        strides=(1, 2, 2),
        dilations=(1, 1, 1),
        out_indices=(2, )),
    # Dilated C5.
    dict(strides=(1, 2, 2, 1), dilations=(1, 1, 1, 2), out_indices=(1, 3)),
    dict(style='caffe', deep_stem=True, avg_down=True),
]
MODES = [
    dict(frozen_stages=-1, norm_eval=False),
    dict(frozen_stages=1, norm_eval=True),
    dict(frozen_stages='all', norm_eval=False),
]
CASES = [(50, layout, mode) for layout in LAYOUTS for mode in MODES]
CASES += [(101, LAYOUTS[2], MODES[1]), (152, LAYOUTS[3], MODES[2])]


def _stages(cfg):
    return cfg.get('num_stages', 4)


def _build(type_, cfg, **extra):
    model = MODELS.build(dict(type=type_, **cfg, **extra))
    model.train()
    return model


def _run(model, x):
    return [out.detach() for out in model(x)]


@pytest.mark.parametrize('depth,layout,mode', CASES)
def test_layout_side_by_side_with_resnet(depth, layout, mode):
    cfg = dict(depth=depth, **layout, **mode)
    if cfg['frozen_stages'] == 'all':
        cfg['frozen_stages'] = _stages(cfg)
    torch.manual_seed(0)
    resnet = _build('ResNet', cfg)
    scconv = _build('SCConvResNet', cfg)
    plain = _build(
        'SCConvResNet', cfg, stage_with_scconv=(False, ) * _stages(cfg))
    assert len(scconv.res_layers) == _stages(cfg)
    plain.load_state_dict(resnet.state_dict())
    x = torch.rand(2, 3, 64, 48)
    expected = _run(resnet, x)
    assert all(torch.equal(a, b) for a, b in zip(_run(plain, x), expected))
    outputs = _run(scconv, x)
    assert [o.shape for o in outputs] == [o.shape for o in expected]

    # Frozen parameters and norm modes: a module shared with ResNet is as
    # ResNet has it; SCConv's own modules are frozen (parameters and mode)
    # with their stage, and its GroupNorm, not a BatchNorm, ignores
    # norm_eval.
    resnet_modules = dict(resnet.named_modules())
    frozen = {'stem', 'conv1', 'norm1'} if cfg['frozen_stages'] >= 0 else set()
    frozen |= {f'layer{i}' for i in range(1, cfg['frozen_stages'] + 1)}
    for name, module in scconv.named_modules():
        if name in resnet_modules and '.conv2' not in name:
            assert module.training == resnet_modules[name].training, name
            params = [p.requires_grad for p in module.parameters(False)]
            assert params == [
                p.requires_grad for p in resnet_modules[name].parameters(False)
            ], name
        elif '.conv2' in name:
            stage_frozen = name.split('.')[0] in frozen
            assert module.training == (not stage_frozen), name
            for param in module.parameters(False):
                assert param.requires_grad == (not stage_frozen), name


def test_stage_with_scconv_defaults_to_every_stage():
    c4 = dict(depth=50, **LAYOUTS[2])
    assert _build('SCConvResNet', c4).stage_with_scconv == (True, ) * 3
    with pytest.raises(ValueError, match='num_stages=3'):
        _build('SCConvResNet', c4, stage_with_scconv=(True, ) * 4)

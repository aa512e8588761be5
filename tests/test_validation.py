"""Bad arguments fail at construction with a message naming the fix."""
import pytest
from mmdet.registry import MODELS

import mmdet_scconv  # noqa: F401
from mmdet_scconv.layers import CRU, SRU, SCConv

CASES = [
    # (factory, kwargs, fragments the message must contain)
    (SCConv, dict(in_channels=33,
                  out_channels=32), ['channels must be even', 'channels=33']),
    (SCConv, dict(in_channels=64, out_channels=64, gn_groups=24),
     ['gn_groups=24', 'channels (64)', '[1, 2, 4, 8, 16, 32, 64]']),
    (SCConv, dict(in_channels=64, out_channels=64,
                  alpha=1.0), ['alpha must be a number in (0, 1)', '1.0']),
    (SCConv, dict(in_channels=64, out_channels=64,
                  alpha=0), ['alpha must be a number in (0, 1)']),
    (SCConv, dict(in_channels=64, out_channels=64, squeeze_ratio=0),
     ['squeeze_ratio must be a positive int', '0']),
    (SCConv, dict(in_channels=64, out_channels=64,
                  squeeze_ratio=3), ['squeeze_ratio=3', 'upper split', '32']),
    (SCConv, dict(in_channels=64, out_channels=8),
     ['out_channels=8', 'must exceed the 16', 'reuses']),
    (SCConv, dict(in_channels=64, out_channels=64, gate='sigmoid'),
     ["gate must be one of ('soft', 'hard')", "'sigmoid'"]),
    (SCConv, dict(in_channels=64, out_channels=64,
                  groups=3), ['groups=3', 'squeezed upper channels (16)']),
    (SCConv, dict(in_channels=64, out_channels=66,
                  groups=4), ['groups=4', 'out_channels (66)']),
    (SCConv, dict(in_channels=64, out_channels=64,
                  kernel_size=2), ['kernel_size must be odd', '2']),
    (SCConv, dict(in_channels=64, out_channels=64, gate_threshold=1.5),
     ['gate_threshold must be a number in (0, 1)', '1.5']),
    (SCConv, dict(in_channels=64, out_channels=64,
                  padding=0), ['padding=0', 'same']),
    (SCConv, dict(in_channels=64, out_channels=64, bias=True), ['bias=False']),
    (SCConv, dict(in_channels=64, out_channels=64,
                  stride=(1, 2)), ['square stride']),
    (SRU, dict(channels=30, gn_groups=4), ['gn_groups=4', 'channels (30)']),
    (CRU, dict(in_channels=64, out_channels=64, alpha=0.01),
     ['alpha=0.01', '0 upper', 'both must be at least 1']),
]


@pytest.mark.parametrize('factory,kwargs,fragments', CASES)
def test_layer_arguments(factory, kwargs, fragments):
    with pytest.raises(ValueError) as error:
        factory(**kwargs)
    for fragment in fragments:
        assert fragment in str(error.value)


BACKBONE_CASES = [
    (dict(depth=34), ValueError, ['depth [50, 101, 152]', 'depth=34']),
    (dict(depth=50, scconv_cfg=dict(alpah=0.5)), ValueError,
     ["unknown key(s) ['alpah']", "'alpha'"]),
    (dict(depth=50, scconv_cfg=dict(stride=2)), ValueError,
     ["unknown key(s) ['stride']", 'come from the ResNet stage']),
    (dict(depth=50, scconv_cfg=[('alpha', 0.5)]), TypeError,
     ['scconv_cfg must be a dict']),
    (dict(depth=50, stage_with_scconv=(True, True)), ValueError,
     ['stage_with_scconv needs one entry per stage', 'num_stages=4']),
    (dict(depth=50, scconv_cfg=dict(gn_groups=48)), ValueError,
     ['gn_groups=48', 'channels (64)']),
    (dict(
        depth=50,
        dcn=dict(type='DCN', deform_groups=1),
        stage_with_dcn=(False, True, False, False)), ValueError,
     ['both DCN and SCConv']),
]


@pytest.mark.parametrize('cfg,error_type,fragments', BACKBONE_CASES)
def test_backbone_arguments(cfg, error_type, fragments):
    with pytest.raises(error_type) as error:
        MODELS.build(dict(type='SCConvResNet', **cfg))
    for fragment in fragments:
        assert fragment in str(error.value)

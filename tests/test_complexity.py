"""Backbone parameter and FLOP counts against the paper's ratios."""
import pytest

import mmdet_scconv  # noqa: F401
from mmdet_scconv.analysis import compare_backbones, format_comparison


def test_scconv_r50_cuts_params_and_flops_like_the_paper():
    (resnet, scconv), = compare_backbones((50, ), (224, 224))
    # Paper: 16.78M vs 25.56M with the 2.05M fc -> 14.73M vs 23.51M without.
    assert resnet.params == 23_508_032
    assert scconv.params / resnet.params == pytest.approx(0.62, abs=0.01)
    assert 14.23e6 <= scconv.params <= 14.73e6
    # Paper: 2.70G vs 4.09G.
    assert scconv.flops / resnet.flops == pytest.approx(0.66, abs=0.015)
    table = format_comparison([(resnet, scconv)], (224, 224))
    assert 'SCConvResNet-50' in table and '0.616' in table

"""SRU, CRU and SCConv against the spec's equations (torch only)."""
import pytest
import torch
import torch.nn as nn
from spec_reference import eq11_params, spec_cru, spec_pool, spec_sru

from mmdet_scconv.benchmark.exactness import randomised as randomise
from mmdet_scconv.layers import CRU, SRU, SCConv


def randomise_running_stats(model):
    """Non-trivial BatchNorm running statistics, as a trained model has."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model


def cru_weights(cru):
    return {
        name: getattr(cru, name).weight.detach().double()
        for name in ('squeeze_up', 'squeeze_low', 'gwc', 'pwc_up', 'pwc_low')
    }


@pytest.mark.parametrize('gate', ['soft', 'hard'])
@pytest.mark.parametrize('gn_groups', [1, 4, 16])
def test_sru_matches_spec(gate, gn_groups):
    sru = randomise(SRU(32, gn_groups=gn_groups, gate=gate)).double()
    x = torch.randn(2, 32, 7, 9, dtype=torch.float64)
    expected = spec_sru(
        x, sru.gn.weight.detach(), sru.gn.bias.detach(), gn_groups, gate=gate)
    torch.testing.assert_close(sru(x), expected, rtol=1e-10, atol=1e-10)


def test_sru_gates_differ_and_use_both_sides_of_threshold():
    sru = randomise(SRU(16, gn_groups=4)).double()
    x = torch.randn(1, 16, 8, 8, dtype=torch.float64)
    r = sru.reweights(x)
    assert (r > 0.5).any() and (r <= 0.5).any()
    hard = SRU(16, gn_groups=4, gate='hard').double()
    hard.load_state_dict(sru.state_dict())
    assert not torch.allclose(sru(x), hard(x))


@pytest.mark.parametrize('threshold', [0.3, 0.7])
def test_sru_threshold(threshold):
    sru = randomise(SRU(8, gn_groups=2, gate_threshold=threshold)).double()
    x = torch.randn(1, 8, 5, 5, dtype=torch.float64)
    expected = spec_sru(
        x,
        sru.gn.weight.detach(),
        sru.gn.bias.detach(),
        2,
        threshold=threshold)
    torch.testing.assert_close(sru(x), expected)


@pytest.mark.parametrize('alpha', [0.5, 0.75])
@pytest.mark.parametrize('in_out', [(32, 32), (32, 48), (64, 24)])
@pytest.mark.parametrize('stride,dilation', [(1, 1), (2, 1), (1, 2)])
def test_cru_matches_spec(alpha, in_out, stride, dilation):
    c_in, c_out = in_out
    cru = randomise(CRU(c_in, c_out, 3, stride, dilation, alpha)).double()
    x = torch.randn(2, c_in, 9, 6, dtype=torch.float64)
    expected = spec_cru(x, cru_weights(cru), alpha, 3, stride, dilation)
    torch.testing.assert_close(cru(x), expected, rtol=1e-10, atol=1e-10)


def test_fuse_softmax_is_per_channel_across_branches():
    """beta1 + beta2 = 1 for every channel (not a softmax over 2C)."""
    cru = randomise(CRU(16, 16)).double()
    x = torch.randn(1, 16, 6, 6, dtype=torch.float64)
    y = cru(x)
    # Y lies between Y1 and Y2 channel-wise: Y = Y2 + beta1 (Y1 - Y2).
    w = cru_weights(cru)
    x_up = torch.nn.functional.conv2d(x[:, :8], w['squeeze_up'])
    x_low = torch.nn.functional.conv2d(x[:, 8:], w['squeeze_low'])
    y1 = cru.gwc(x_up) + cru.pwc_up(x_up)
    y2 = torch.cat([cru.pwc_low(x_low), x_low], 1)
    beta1 = (y - y2) / (y1 - y2)
    per_channel = beta1.flatten(2)
    assert torch.allclose(
        per_channel, per_channel[..., :1].expand_as(per_channel), atol=1e-8)
    expected = torch.sigmoid(y1.mean((2, 3)) - y2.mean((2, 3)))
    torch.testing.assert_close(per_channel[..., 0], expected)


@pytest.mark.parametrize('gate', ['soft', 'hard'])
@pytest.mark.parametrize('alpha', [0.5, 0.75])
def test_scconv_is_cru_after_sru(gate, alpha):
    m = randomise(
        SCConv(32, 48, alpha=alpha, gn_groups=8, gate=gate,
               stride=2)).double()
    x = torch.randn(2, 32, 11, 7, dtype=torch.float64)
    mid = spec_sru(
        x, m.sru.gn.weight.detach(), m.sru.gn.bias.detach(), 8, gate=gate)
    expected = spec_cru(mid, cru_weights(m.cru), alpha, 3, stride=2)
    torch.testing.assert_close(m(x), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize('size', [(1, 1), (5, 8), (7, 7), (16, 15), (33, 20)])
@pytest.mark.parametrize('stride', [1, 2, 3])
@pytest.mark.parametrize('dilation', [1, 2, 3])
@pytest.mark.parametrize('kernel_size', [1, 3, 5])
def test_output_size_matches_conv2d(size, stride, dilation, kernel_size):
    m = SCConv(16, 24, kernel_size, stride, dilation, gn_groups=4)
    conv = nn.Conv2d(
        16,
        24,
        kernel_size,
        stride,
        padding=dilation * (kernel_size // 2),
        dilation=dilation)
    x = torch.randn(1, 16, *size)
    assert m(x).shape == conv(x).shape


def test_pool_matches_mean_of_valid_positions():
    x = torch.randn(2, 3, 7, 5, dtype=torch.float64)
    cru = CRU(16, 16, stride=2).double()
    torch.testing.assert_close(cru.downsample(x), spec_pool(x, 2))


@pytest.mark.parametrize('alpha', [0.5, 0.75])
@pytest.mark.parametrize('c1,c2', [(64, 64), (128, 128), (512, 512),
                                   (64, 128)])
def test_parameter_count_is_eq11(alpha, c1, c2):
    cru = CRU(c1, c2, alpha=alpha)
    convs = sum(p.numel() for p in cru.parameters())
    assert convs == eq11_params(c1, c2, alpha, 2, 2, 3)


def test_eq11_ratio_for_half_split():
    c = 256
    m = SCConv(c, c)
    cru_params = sum(p.numel() for p in m.cru.parameters())
    assert cru_params / c**2 == pytest.approx(1.8125)
    assert sum(p.numel() for p in m.sru.parameters()) == 2 * c


def test_soft_gate_sends_gradients_to_gamma_and_beta():
    m = randomise(SCConv(16, 16, gn_groups=4))
    m(torch.randn(2, 16, 6, 6)).square().sum().backward()
    assert m.sru.gn.weight.grad.abs().sum() > 0
    assert m.sru.gn.bias.grad.abs().sum() > 0


def test_hard_gate_sends_no_gradient_to_gamma():
    m = randomise(SCConv(16, 16, gn_groups=4, gate='hard'))
    x = torch.randn(2, 16, 6, 6, requires_grad=True)
    m(x).square().sum().backward()
    assert m.sru.gn.weight.grad is None or not m.sru.gn.weight.grad.any()
    assert x.grad.abs().sum() > 0


def test_submodule_names_are_the_checkpoint_format():
    keys = set(SCConv(16, 16, gn_groups=4).state_dict())
    assert keys == {
        'sru.gn.weight', 'sru.gn.bias', 'cru.squeeze_up.weight',
        'cru.squeeze_low.weight', 'cru.gwc.weight', 'cru.pwc_up.weight',
        'cru.pwc_low.weight'
    }

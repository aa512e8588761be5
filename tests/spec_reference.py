"""SCConv written again from the spec's formulas, independently of the package.

Plain float64 tensor algebra with explicit weights; used by the tests as the
ground truth for the package's modules.
"""
import torch
import torch.nn.functional as F


def spec_group_norm(x, gamma, beta, groups, eps=1e-5):
    """Eq. 1: GN(X) = gamma * (X - mu) / sqrt(var + eps) + beta."""
    n, c, h, w = x.shape
    xg = x.reshape(n, groups, -1)
    mu = xg.mean(-1, keepdim=True)
    var = ((xg - mu)**2).mean(-1, keepdim=True)
    x_hat = ((xg - mu) / torch.sqrt(var + eps)).reshape(n, c, h, w)
    return gamma.view(1, c, 1, 1) * x_hat + beta.view(1, c, 1, 1)


def spec_sru(x, gamma, beta, groups, threshold=0.5, gate='soft'):
    """Eq. 1-4 of the spec."""
    c = x.shape[1]
    w_gamma = gamma / gamma.sum()
    r = 1 / (1 + torch.exp(
        -spec_group_norm(x, gamma, beta, groups) * w_gamma.view(1, c, 1, 1)))
    above = r > threshold
    if gate == 'soft':
        w1, w2 = r.clone(), r.clone()
        w1[above] = 1
        w2[above] = 0
    else:
        w1 = above.double()
        w2 = 1 - w1
    x1, x2 = w1 * x, w2 * x
    half = c // 2
    return torch.cat(
        [x1[:, :half] + x2[:, half:], x1[:, half:] + x2[:, :half]], dim=1)


def spec_pool(x, stride):
    """Mean over each stride x stride window of valid positions."""
    if stride == 1:
        return x
    n, c, h, w = x.shape
    ho, wo = -(-h // stride), -(-w // stride)
    out = x.new_zeros(n, c, ho, wo)
    for i in range(ho):
        for j in range(wo):
            out[:, :, i, j] = x[:, :, i * stride:(i + 1) * stride,
                                j * stride:(j + 1) * stride].mean((2, 3))
    return out


def spec_cru(x, w, alpha, kernel_size, stride=1, dilation=1, groups=2):
    """Eq. 5-9 of the spec, with the package's stride design.

    ``w`` maps names to weights: squeeze_up, squeeze_low, gwc, pwc_up,
    pwc_low.
    """
    c_in = x.shape[1]
    up = int(alpha * c_in)
    x_up = F.conv2d(x[:, :up], w['squeeze_up'])
    x_low = F.conv2d(x[:, up:], w['squeeze_low'])
    pad = dilation * (kernel_size // 2)
    y1 = F.conv2d(
        x_up,
        w['gwc'],
        stride=stride,
        padding=pad,
        dilation=dilation,
        groups=groups) + F.conv2d(spec_pool(x_up, stride), w['pwc_up'])
    x_low = spec_pool(x_low, stride)
    y2 = torch.cat([F.conv2d(x_low, w['pwc_low']), x_low], dim=1)
    s1, s2 = y1.mean((2, 3)), y2.mean((2, 3))
    beta1 = torch.exp(s1) / (torch.exp(s1) + torch.exp(s2))
    beta2 = torch.exp(s2) / (torch.exp(s1) + torch.exp(s2))
    return beta1[..., None, None] * y1 + beta2[..., None, None] * y2


def eq11_params(c1, c2, alpha, r, g, k):
    """Eq. 11: CRU convolution parameters."""
    return (alpha**2 * c1**2 / r + k**2 * (alpha * c1 / r) * (c2 / g) +
            (alpha * c1 / r) * c2 + (1 - alpha)**2 * c1**2 / r +
            ((1 - alpha) * c1 / r) * (c2 - (1 - alpha) * c1 / r))

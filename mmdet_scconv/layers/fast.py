"""The fast SCConv forward: the same equations in fewer passes over memory.

Against the reference modules (``SRU.forward`` then ``CRU.forward``):

* SRU: GroupNorm is never materialised. Its statistics give a per-(sample,
  channel) scale ``a`` and shift ``b`` with ``GN(X) * W_gamma = a*X + b``, so
  the reweights are one fused multiply-add and a sigmoid. The gated halves
  are combined straight into the two halves of the output: no ``W1*X``,
  ``W2*X`` tensors, no chunk/cat copies.
* CRU fuse: ``GAP(Y2) = cat(PWC2(GAP(X_low)), GAP(X_low))`` because a 1x1
  convolution without bias commutes with the spatial mean; the mean is taken
  over the narrow squeezed tensor instead of Y2. ``Y = Y2 + beta1 (Y1 - Y2)``
  is written slice by slice into the output, so Y2 is never concatenated.

Everything is differentiable with autograd; the reference path stays the
ground truth (``tests/test_fast.py`` compares both).
"""
import torch
import torch.nn.functional as F

from ._numerics import at_least_fp32
from .sru import normalised_gamma


def sru_fast(sru, x: torch.Tensor) -> torch.Tensor:
    """:class:`SRU` forward in fewer passes (same result)."""
    n, c, h, w = x.shape
    groups = sru.gn.num_groups
    compute = at_least_fp32(x.dtype)
    var, mean = torch.var_mean(
        x.reshape(n, groups, -1).to(compute), dim=2, unbiased=False)
    rstd = torch.rsqrt(var + sru.gn.eps)  # (n, groups)
    per_group = c // groups
    rstd = rstd.repeat_interleave(per_group, dim=1)  # (n, c)
    mean = mean.repeat_interleave(per_group, dim=1)
    w_gamma = normalised_gamma(sru.gn.weight)
    gamma = sru.gn.weight.to(compute)
    beta = sru.gn.bias.to(compute)
    scale = gamma * rstd * w_gamma  # (n, c)
    shift = (beta - gamma * mean * rstd) * w_gamma
    r = torch.sigmoid(
        torch.addcmul(shift[..., None, None], x.to(compute),
                      scale[..., None, None]))
    informative = r > sru.gate_threshold
    half = c // 2
    if sru.gate == 'soft':
        # W2*X = R*X below the threshold, 0 above; W1*X = X above, R*X below.
        weighted = (r * x).to(x.dtype)
        x2 = weighted.masked_fill(informative, 0)
        x1 = torch.where(informative, x, weighted)
    else:
        x1 = x.masked_fill(~informative, 0)
        x2 = x - x1
    return torch.cat([x1[:, :half] + x2[:, half:], x1[:, half:] + x2[:, :half]],
                     dim=1)


def cru_fast(cru, x: torch.Tensor) -> torch.Tensor:
    """:class:`CRU` forward in fewer passes (same result)."""
    x_up, x_low = torch.split(x, [cru.up_channels, cru.low_channels], dim=1)
    x_up = cru.squeeze_up(x_up)
    x_low = cru.downsample(cru.squeeze_low(x_low))
    y1 = cru.gwc(x_up)
    y1 = y1 + cru.pwc_up(cru.downsample(x_up))
    low_projected = cru.pwc_low(x_low)

    compute = at_least_fp32(y1.dtype)
    s1 = y1.mean((2, 3), dtype=compute)
    low_mean = x_low.mean((2, 3), dtype=compute)
    s2 = torch.cat([
        F.linear(low_mean, cru.pwc_low.weight.flatten(1).to(compute)),
        low_mean
    ], dim=1)
    beta1 = torch.sigmoid(s1 - s2).to(y1.dtype)[..., None, None]

    split = low_projected.shape[1]
    # Y = Y2 + beta1 * (Y1 - Y2), branch by branch of Y2 = cat(P, X_low).
    return torch.cat([
        torch.lerp(low_projected, y1[:, :split], beta1[:, :split]),
        torch.lerp(x_low, y1[:, split:], beta1[:, split:])
    ], dim=1)


def scconv_fast(scconv, x: torch.Tensor) -> torch.Tensor:
    """:class:`SCConv` forward through :func:`sru_fast` and :func:`cru_fast`."""
    return cru_fast(scconv.cru, sru_fast(scconv.sru, x))

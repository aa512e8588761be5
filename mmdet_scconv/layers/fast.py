"""The fast SCConv forward: the same equations in fewer passes over memory.

Against the reference modules (``SRU.forward`` then ``CRU.forward``):

* SRU: ``GN(X) * W_gamma`` is one GroupNorm call whose affine is
  ``(gamma * W_gamma, beta * W_gamma)``, so the scaling costs no pass of its
  own; the gates never materialise ``W1`` and ``W2``.
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


def _needs_autograd(module, x):
    return torch.is_grad_enabled() and (
        x.requires_grad or any(p.requires_grad for p in module.parameters()))


def reweights(sru, x: torch.Tensor) -> torch.Tensor:
    """Eq. 1-3 in one GroupNorm call and a sigmoid.

    ``GN(X) * W_gamma`` is GroupNorm with the affine
    ``(gamma * W_gamma, beta * W_gamma)``: one fused statistics-and-normalise
    kernel, no separate scaling pass.
    """
    w_gamma = normalised_gamma(sru.gn.weight)
    compute = w_gamma.dtype
    z = F.group_norm(x.to(compute), sru.gn.num_groups,
                     sru.gn.weight.to(compute) * w_gamma,
                     sru.gn.bias.to(compute) * w_gamma, sru.gn.eps)
    return z.sigmoid_()


def _sru_inference(sru, x, r):
    """In-place SRU for inference: no autograd, so buffers are reused."""
    informative = r > sru.gate_threshold
    half = x.shape[1] // 2
    if sru.gate == 'soft':
        weighted = r.mul_(x).to(x.dtype)
        x1 = torch.where(informative, x, weighted)
        x2 = weighted.masked_fill_(informative, 0)
    else:
        x1 = x.masked_fill(~informative, 0)
        x2 = torch.sub(x, x1)
    x1[:, :half] += x2[:, half:]
    x1[:, half:] += x2[:, :half]
    return x1


def sru_fast(sru, x: torch.Tensor) -> torch.Tensor:
    """:class:`SRU` forward in fewer passes (same result)."""
    r = reweights(sru, x)
    if not _needs_autograd(sru, x):
        return _sru_inference(sru, x, r)
    informative = r > sru.gate_threshold
    half = x.shape[1] // 2
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
    if _needs_autograd(cru, x):
        y1 = y1 + cru.pwc_up(cru.downsample(x_up))
    else:
        y1 += cru.pwc_up(cru.downsample(x_up))
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
    if not _needs_autograd(cru, x):
        # Y = beta1 Y1 + beta2 Y2, written over Y1 branch by branch of
        # Y2 = cat(P, X_low).
        beta2 = 1 - beta1
        y1.mul_(beta1)
        y1[:, :split].addcmul_(low_projected, beta2[:, :split])
        y1[:, split:].addcmul_(x_low, beta2[:, split:])
        return y1
    # Y = Y2 + beta1 * (Y1 - Y2), branch by branch of Y2 = cat(P, X_low).
    return torch.cat([
        torch.lerp(low_projected, y1[:, :split], beta1[:, :split]),
        torch.lerp(x_low, y1[:, split:], beta1[:, split:])
    ], dim=1)


def scconv_fast(scconv, x: torch.Tensor) -> torch.Tensor:
    """:class:`SCConv` forward through :func:`sru_fast` and :func:`cru_fast`."""
    return cru_fast(scconv.cru, sru_fast(scconv.sru, x))

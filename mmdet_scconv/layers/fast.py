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


def sru_halves(sru, x: torch.Tensor, inplace: bool):
    """The two channel halves of the SRU output (Eq. 4), as two tensors.

    With ``h = threshold(R, t, 0)`` (``R`` where ``R > t``, else 0) and
    ``[R > t] = ceil(h)`` (``h`` lies in (t, 1] or is 0):

    * soft: ``W2 = R - h``, ``W1 = W2 + ceil(h)``, so with ``Q = W2 * X``
      and ``G = ceil(h) * X`` the output is ``Q_a + Q_b + G_a`` and
      ``Q_a + Q_b + G_b``;
    * hard: ``W1 = ceil(h)``, ``W2 = 1 - W1``: ``G_a + X_b - G_b`` and
      ``G_b + X_a - G_a``.

    ``threshold`` and ``ceil`` are plain vectorised arithmetic, far cheaper
    on the CPU than boolean-mask ``where``/``masked_fill``, and give the
    reference's gradients (``threshold`` passes 1 above ``t``, ``ceil`` 0).

    Args:
        sru (SRU): The module whose parameters are used.
        x (Tensor): Input.
        inplace (bool): Reuse buffers (only when autograd is off).
    """
    # The hard gate's 0/1 weights carry no gradient to the GroupNorm.
    with torch.set_grad_enabled(torch.is_grad_enabled()
                                and sru.gate == 'soft'):
        r = reweights(sru, x)
    h = F.threshold(r, sru.gate_threshold, 0.0)
    half = x.shape[1] // 2
    if sru.gate == 'soft':
        low_weighted = r.sub_(h).mul_(x) if inplace else (r - h) * x
        shared = low_weighted[:, :half] + low_weighted[:, half:]
    informative_x = h.ceil_().mul_(x) if inplace else h.ceil() * x
    upper_g, lower_g = informative_x[:, :half], informative_x[:, half:]
    if sru.gate == 'soft':
        upper, lower = shared + upper_g, shared + lower_g
    else:
        upper = upper_g + (x[:, half:] - lower_g)
        lower = lower_g + (x[:, :half] - upper_g)
    return upper.to(x.dtype), lower.to(x.dtype)


def sru_fast(sru, x: torch.Tensor) -> torch.Tensor:
    """:class:`SRU` forward in fewer passes (same result)."""
    return torch.cat(sru_halves(sru, x, not _needs_autograd(sru, x)), dim=1)


def cru_fast(cru, x: torch.Tensor) -> torch.Tensor:
    """:class:`CRU` forward in fewer passes (same result)."""
    return cru_from_split(
        cru, *torch.split(x, [cru.up_channels, cru.low_channels], dim=1))


def cru_from_split(cru, x_up: torch.Tensor,
                   x_low: torch.Tensor) -> torch.Tensor:
    """:func:`cru_fast` on the input already split into its upper
    ``int(alpha*C)`` and lower channels (separate tensors need no copy
    before the squeeze convolutions)."""
    inplace = not _needs_autograd(cru, x_up)
    x_up = cru.squeeze_up(x_up)
    x_low = cru.downsample(cru.squeeze_low(x_low))
    y1 = cru.gwc(x_up)
    if inplace:
        y1 += cru.pwc_up(cru.downsample(x_up))
    else:
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
    if inplace:
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
    """:class:`SCConv` forward: the SRU halves go straight into the CRU when
    the CRU splits at the half (``alpha=0.5``), with no concatenation."""
    inplace = not _needs_autograd(scconv, x)
    upper, lower = sru_halves(scconv.sru, x, inplace)
    if scconv.cru.up_channels == upper.shape[1]:
        return cru_from_split(scconv.cru, upper, lower)
    return cru_fast(scconv.cru, torch.cat([upper, lower], dim=1))

"""The fast SCConv forward: the same equations in fewer passes over memory.

Against the reference modules (``SRU.forward`` then ``CRU.forward``):

* SRU: ``GN(X) * W_gamma`` is one GroupNorm call whose affine is
  ``(gamma * W_gamma, beta * W_gamma)``, so the scaling costs no pass of its
  own; the gates are threshold/ceil arithmetic and never materialise ``W1``
  and ``W2``; for training a hand-written backward saves only the input and
  the GroupNorm statistics; the output comes as two halves that the CRU
  takes without a concatenation or split copy.
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


def gn_affine(sru):
    """``(gamma * W_gamma, beta * W_gamma)``: the affine that makes one
    GroupNorm call compute ``GN(X) * W_gamma`` (Eq. 1-3 before the
    sigmoid), so the scaling costs no pass of its own."""
    w_gamma = normalised_gamma(sru.gn.weight)
    compute = w_gamma.dtype
    return (sru.gn.weight.to(compute) * w_gamma,
            sru.gn.bias.to(compute) * w_gamma)


def gate_halves(r, x, threshold, gate):
    """The two channel halves of the SRU output (Eq. 4) from reweights ``r``.

    With ``h = threshold(R, t, 0)`` (``R`` where ``R > t``, else 0) and
    ``[R > t] = ceil(h)`` (``h`` lies in (t, 1] or is 0):

    * soft: ``W2 = R - h``, ``W1 = W2 + ceil(h)``, so with ``Q = W2 * X``
      and ``G = ceil(h) * X`` the output is ``Q_a + Q_b + G_a`` and
      ``Q_a + Q_b + G_b``;
    * hard: ``W1 = ceil(h)``, ``W2 = 1 - W1``: ``G_a + X_b - G_b`` and
      ``G_b + X_a - G_a``.

    ``threshold`` and ``ceil`` are plain vectorised arithmetic, far cheaper
    on the CPU than boolean-mask ``where``/``masked_fill``.

    No autograd runs through it (inference, or inside
    :class:`SRUFunction`), so it reuses the buffers of ``r``.

    Args:
        r (Tensor): Reweights, at least fp32; overwritten.
        x (Tensor): SRU input.
        threshold (float): The gate threshold ``t``.
        gate (str): ``'soft'`` or ``'hard'``.
    """
    h = F.threshold(r, threshold, 0.0)
    half = x.shape[1] // 2
    if gate == 'soft':
        low_weighted = r.sub_(h).mul_(x)
        shared = low_weighted[:, :half] + low_weighted[:, half:]
    informative_x = h.ceil_().mul_(x)
    upper_g, lower_g = informative_x[:, :half], informative_x[:, half:]
    if gate == 'soft':
        upper, lower = shared + upper_g, shared + lower_g
    else:
        upper = upper_g + (x[:, half:] - lower_g)
        lower = lower_g + (x[:, :half] - upper_g)
    return upper.to(x.dtype), lower.to(x.dtype)


class SRUFunction(torch.autograd.Function):
    """The SRU with a hand-written backward that saves only the input and
    the GroupNorm statistics: the reweights and gates are recomputed, not
    kept, so the SRU adds almost no activation memory.

    Inputs: ``x``, the GroupNorm affine ``weight``/``bias`` of
    :func:`gn_affine`, ``groups``, ``eps``, ``threshold``, ``gate``.
    Outputs: the two channel halves of the SRU output.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, groups, eps, threshold, gate):
        n, c = x.shape[:2]
        with torch.autocast(x.device.type, enabled=False):
            xc = x.to(weight.dtype)
            z, mean, rstd = torch.ops.aten.native_group_norm(
                xc, weight, bias, n, c, x[0, 0].numel(), groups, eps)
            outputs = gate_halves(z.sigmoid_(), xc, threshold, gate)
        ctx.save_for_backward(x, weight, bias, mean, rstd)
        ctx.options = (groups, eps, threshold, gate)
        return tuple(o.to(x.dtype) for o in outputs)

    @staticmethod
    def backward(ctx, grad_upper, grad_lower):
        x, weight, bias, mean, rstd = ctx.saved_tensors
        groups, eps, threshold, gate = ctx.options
        n, c = x.shape[:2]
        with torch.autocast(x.device.type, enabled=False):
            xc = x.to(weight.dtype)
            # z = (x - mean) * rstd * weight + bias, per (sample, channel).
            per_group = c // groups
            rstd_c = rstd.repeat_interleave(per_group, dim=1)
            scale = rstd_c * weight
            shift = bias - mean.repeat_interleave(per_group, dim=1) * scale
            r = torch.sigmoid(
                torch.addcmul(shift[..., None, None], xc,
                              scale[..., None, None]))
            informative = F.threshold(r, threshold, 0.0).ceil_()
            g_own = torch.cat([grad_upper, grad_lower], 1).to(xc.dtype)
            g_other = torch.cat([grad_lower, grad_upper], 1).to(xc.dtype)
            if gate == 'hard':
                # out_a = m_a x_a + (1 - m_b) x_b (and symmetrically).
                grad_x = g_other + informative * (g_own - g_other)
                return grad_x.to(x.dtype), None, None, None, None, None, None
            g_sum = g_own + g_other
            not_informative = 1 - informative
            # dX direct: W1 g_own + W2 g_other = W2 (g_own + g_other) + m g_own
            w2 = r * not_informative
            grad_x = torch.addcmul(w2 * g_sum, informative, g_own)
            # dR = (1 - m) X (g_own + g_other); dZ = dR R (1 - R).
            grad_z = not_informative.mul_(xc).mul_(g_sum).mul_(
                r * (1 - r))
            grad_gn_x, grad_weight, grad_bias = (
                torch.ops.aten.native_group_norm_backward(
                    grad_z, xc, mean, rstd, weight, n, c, x[0, 0].numel(),
                    groups, [True, ctx.needs_input_grad[1],
                             ctx.needs_input_grad[2]]))
            grad_x = grad_x + grad_gn_x
        return (grad_x.to(x.dtype), grad_weight, grad_bias, None, None, None,
                None)


def sru_halves(sru, x: torch.Tensor, inplace: bool):
    """The SRU output's two channel halves: in place without autograd,
    through :class:`SRUFunction` with it."""
    weight, bias = gn_affine(sru)
    if inplace:
        z = F.group_norm(x.to(weight.dtype), sru.gn.num_groups, weight, bias,
                         sru.gn.eps)
        return gate_halves(z.sigmoid_(), x, sru.gate_threshold, sru.gate)
    if sru.gate == 'hard':  # no gradient reaches the GroupNorm
        weight, bias = weight.detach(), bias.detach()
    return SRUFunction.apply(x, weight, bias, sru.gn.num_groups, sru.gn.eps,
                             sru.gate_threshold, sru.gate)


def cru_fast(cru, x: torch.Tensor, out_affine=None) -> torch.Tensor:
    """:class:`CRU` forward in fewer passes (same result); see
    :func:`cru_from_split` for ``out_affine``."""
    return cru_from_split(
        cru, *torch.split(x, [cru.up_channels, cru.low_channels], dim=1),
        out_affine=out_affine)


def cru_from_split(cru, x_up: torch.Tensor, x_low: torch.Tensor,
                   out_affine=None) -> torch.Tensor:
    """:func:`cru_fast` on the input already split into its upper
    ``int(alpha*C)`` and lower channels (separate tensors need no copy
    before the squeeze convolutions).

    Args:
        out_affine (tuple[Tensor, Tensor], optional): A per-channel
            ``(scale, shift)`` applied to the output: a following BatchNorm
            folded in by :meth:`SCConv.fuse_norm`. Without autograd it costs
            no pass of its own.
    """
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
        # s (beta1 Y1 + beta2 Y2) + t, written over Y1 branch by branch of
        # Y2 = cat(P, X_low).
        beta2 = 1 - beta1
        if out_affine is None:
            y1.mul_(beta1)
        else:
            scale, shift = (v.to(y1.dtype)[:, None, None] for v in out_affine)
            beta1, beta2 = beta1 * scale, beta2 * scale
            torch.addcmul(shift, y1, beta1, out=y1)
        y1[:, :split].addcmul_(low_projected, beta2[:, :split])
        y1[:, split:].addcmul_(x_low, beta2[:, split:])
        return y1
    # Y = Y2 + beta1 * (Y1 - Y2), branch by branch of Y2 = cat(P, X_low).
    y = torch.cat([
        torch.lerp(low_projected, y1[:, :split], beta1[:, :split]),
        torch.lerp(x_low, y1[:, split:], beta1[:, split:])
    ], dim=1)
    return y if out_affine is None else apply_affine(y, out_affine)


def apply_affine(y: torch.Tensor, affine) -> torch.Tensor:
    """``scale * y + shift`` per channel."""
    scale, shift = (v.to(y.dtype)[:, None, None] for v in affine)
    return torch.addcmul(shift, y, scale)


def scconv_fast(scconv, x: torch.Tensor) -> torch.Tensor:
    """:class:`SCConv` forward: the SRU halves go straight into the CRU when
    the CRU splits at the half (``alpha=0.5``), with no concatenation; a
    BatchNorm folded in by :meth:`SCConv.fuse_norm` rides on the final
    combine."""
    inplace = not _needs_autograd(scconv, x)
    upper, lower = sru_halves(scconv.sru, x, inplace)
    affine = scconv.out_affine
    if scconv.cru.up_channels == upper.shape[1]:
        return cru_from_split(scconv.cru, upper, lower, affine)
    return cru_fast(scconv.cru, torch.cat([upper, lower], dim=1), affine)

"""The SRU (Eq. 1-4) as its two output halves, forward and backward, as
the PyTorch side of :mod:`.scconv`'s ops.

Both take the GroupNorm's own ``gamma`` and ``beta``: the reweighting
``W_gamma = gamma / sum(gamma)`` (Eq. 2) and its gradient happen inside the
op, never as parameter-sized ops of their own on the host. The forward
keeps the GroupNorm mean and rstd (:func:`stats_tensor`), from which the
backward recomputes the reweights, never stored.
"""
import torch

from ..sru import GAMMA_SUM_EPS, normalised_gamma, safe_sum


def gn_affine(gamma, beta, gate='soft'):
    """``(gamma * W_gamma, beta * W_gamma)``: the affine that makes one
    GroupNorm call compute ``GN(X) * W_gamma`` (Eq. 1-3 before the
    sigmoid), so the scaling costs no pass of its own. Detached for the hard
    gate, whose 0/1 weights carry no gradient to the GroupNorm."""
    w_gamma = normalised_gamma(gamma)
    compute = w_gamma.dtype
    weight = gamma.to(compute) * w_gamma
    bias = beta.to(compute) * w_gamma
    if gate == 'hard':
        return weight.detach(), bias.detach()
    return weight, bias


def informative_mask(r, threshold, inplace=False):
    """``[R > t]`` as 0/1 in ``r``'s dtype, as ``sign(max(R - t, 0))``: plain
    vectorised arithmetic, cheaper on the CPU than a comparison (a bool
    tensor to convert), ``threshold`` or ``where``. Exact: in floating point
    ``R - t > 0`` exactly when ``R > t``. With ``inplace`` it is written over
    ``r``."""
    difference = r.sub_(threshold) if inplace else torch.sub(r, threshold)
    return difference.clamp_min_(0.0).sign_()


def gated(r, x, threshold, gate):
    """The SRU output (Eq. 4) from reweights ``r``: one tensor whose channel
    halves (:func:`split_halves`) are ``X11 + X22`` and ``X12 + X21``.

    With the mask ``M = [R > t]`` (:func:`informative_mask`):

    * soft: ``W2 = max(R - M, 0)`` (``R`` where ``R <= t``, else 0) and
      ``W1 = W2 + M``, so with ``Q = W2 X`` and ``G = M X`` the output is
      ``Q_a + Q_b + G_a`` and ``Q_a + Q_b + G_b``;
    * hard: ``W1 = M``, ``W2 = 1 - W1``: ``G_a + X_b - G_b`` and
      ``G_b + X_a - G_a``.

    No autograd runs through it, so every result is written over ``r`` and
    the mask: it allocates at most the mask (on the CPU each fresh large
    allocation costs page faults), which it returns.

    Args:
        r (Tensor): Reweights, at least fp32; overwritten.
        x (Tensor): SRU input.
        threshold (float): The gate threshold ``t``.
        gate (str): ``'soft'`` or ``'hard'``.
    """
    # The hard gate needs no R beside its mask: that is written over it.
    mask = informative_mask(r, threshold, inplace=gate == 'hard')
    half = x.shape[1] // 2
    if gate == 'soft':
        low_weighted = r.sub_(mask).clamp_min_(0.0).mul_(x)
        shared = low_weighted[:, :half].add_(low_weighted[:, half:])
    output = mask.mul_(x)
    upper_g, lower_g = split_halves(output)
    if gate == 'soft':
        upper_g.add_(shared)
        lower_g.add_(shared)
    else:
        # With D = G_b - G_a: X_b - D and D + X_a.
        difference = lower_g.sub_(upper_g)
        torch.sub(x[:, half:], difference, out=upper_g)
        difference.add_(x[:, :half])
    return output


def split_halves(t):
    """The two channel halves of ``t`` (views)."""
    half = t.shape[1] // 2
    return t[:, :half], t[:, half:]


def gate_halves(r, x, threshold, gate):
    """:func:`gated`'s two halves, in ``x``'s dtype."""
    return split_halves(gated(r, x, threshold, gate).to(x.dtype))


def _gn_layout(x):
    """The layout aten's GroupNorm kernels accept: any dense layout on the
    CPU, NCHW-contiguous elsewhere (CUDA refuses channels-last)."""
    return x if x.device.type == 'cpu' else x.contiguous()


def sru_output(x, weight, bias, groups, eps, threshold, gate):
    """The SRU output (:func:`gated`) and the GroupNorm mean and rstd, in
    ``weight``'s dtype, from the affine of :func:`gn_affine`."""
    n, c = x.shape[:2]
    z, mean, rstd = torch.ops.aten.native_group_norm(
        _gn_layout(x.to(weight.dtype)), weight, bias, n, c, x[0, 0].numel(),
        groups, eps)
    return gated(z.sigmoid_(), x.to(weight.dtype), threshold, gate), mean, rstd


def sru_forward(x, weight, bias, groups, eps, threshold, gate):
    """:func:`sru_output` as its two halves (channel slices of one
    tensor), the mean and the rstd."""
    output, mean, rstd = sru_output(x, weight, bias, groups, eps, threshold,
                                    gate)
    return (*split_halves(output), mean, rstd)


def split_stats(stats, n, groups):
    """``(mean, rstd)``, each ``(N, groups)``, of a statistics tensor."""
    return stats[:n * groups].view(n, groups), stats[n * groups:2 * n *
                                                     groups].view(n, groups)


def recompute_reweights(x, weight, bias, stats, groups):
    """``R`` again from the saved GroupNorm statistics (no statistics pass):
    ``z = (x - mean) * rstd * weight + bias`` per (sample, channel)."""
    per_group = x.shape[1] // groups
    mean, rstd = split_stats(stats, x.shape[0], groups)
    scale = rstd.repeat_interleave(per_group, dim=1) * weight
    shift = bias - mean.repeat_interleave(per_group, dim=1) * scale
    return torch.sigmoid(
        torch.addcmul(shift[..., None, None], x, scale[..., None, None]))


def halves_from_stats(x, gamma, beta, stats, groups, threshold, gate):
    """The SRU halves of ``x`` from saved statistics (PyTorch), in at least
    fp32."""
    weight, bias = gn_affine(gamma, beta, gate)
    x = x.to(weight.dtype)
    r = recompute_reweights(x, weight, bias, stats, groups)
    return gate_halves(r, x, threshold, gate)


def gamma_grads(gamma, beta, grad_weight, grad_bias):
    """Gradients of the GroupNorm's ``gamma`` and ``beta`` from those of the
    affine ``(gamma^2 / s, beta gamma / s)`` of :func:`gn_affine` (``s =
    sum(gamma)``, kept away from zero, where it passes no gradient): the
    chain rule through Eq. 2, as the kernels' ``_backward_affine_kernel``
    takes it."""
    gamma, beta = gamma.float(), beta.float()
    total = gamma.sum()
    inverse = 1 / safe_sum(gamma)
    through_sum = (grad_weight * gamma * gamma +
                   grad_bias * beta * gamma).sum() * inverse * inverse
    through_sum = through_sum.where(total.abs() >= GAMMA_SUM_EPS, 0)
    grad_gamma = (2 * grad_weight * gamma + grad_bias * beta) * inverse
    return grad_gamma - through_sum, grad_bias * gamma * inverse


def sru_backward_torch(x, gamma, beta, stats, groups, threshold, gate,
                       grad_upper, grad_lower):
    """The PyTorch twin of the backward: ``(grad_x, grad_gamma,
    grad_beta)``, the last two None for the hard gate."""
    n, c = x.shape[:2]
    weight, bias = gn_affine(gamma, beta, gate)
    x = x.to(weight.dtype)
    r = recompute_reweights(x, weight, bias, stats, groups)
    informative = informative_mask(r, threshold)
    g_own = torch.cat([grad_upper, grad_lower], 1).to(x.dtype)
    g_other = torch.cat([grad_lower, grad_upper], 1).to(x.dtype)
    if gate == 'hard':
        # out_a = m_a x_a + (1 - m_b) x_b (and symmetrically).
        return g_other + informative * (g_own - g_other), None, None
    g_sum = g_own + g_other
    not_informative = 1 - informative
    # dX direct: W1 g_own + W2 g_other = W2 (g_own + g_other) + m g_own.
    grad_x = torch.addcmul(r * not_informative * g_sum, informative, g_own)
    # dR = (1 - m) X (g_own + g_other); dZ = dR R (1 - R).
    grad_z = not_informative.mul_(x).mul_(g_sum).mul_(r * (1 - r))
    mean, rstd = split_stats(stats, n, groups)
    grad_gn_x, grad_weight, grad_bias = (
        torch.ops.aten.native_group_norm_backward(
            _gn_layout(grad_z), _gn_layout(x), mean, rstd, weight, n, c,
            x[0, 0].numel(), groups, [True, True, True]))
    return (grad_x + grad_gn_x,
            *gamma_grads(gamma, beta, grad_weight, grad_bias))


def stats_tensor(mean, rstd):
    """One fp32 statistics tensor: the mean, then the rstd."""
    return torch.cat([mean.flatten(), rstd.flatten()]).float()

"""The SRU in Triton: GroupNorm statistics, then the gate and the
cross-reconstruction in one pass; the backward in two passes.

Same interface as the PyTorch functions in :mod:`..fast` (``weight`` and
``bias`` are the GroupNorm affine of :func:`..fast.gn_affine`), so either
backend serves :class:`..fast.SRUFunction`:

* forward: a per-(sample, pixel block, channel) partial mean and centred
  sum of squares (one read of ``x``, any layout), merged per group with
  Chan's formula (robust where the mean dwarfs the spread), then one kernel
  that reads ``x`` once and writes the two output halves;
* backward: one pass for the per-channel sums the GroupNorm gradient needs,
  one pass writing ``grad_x``; the reweights are recomputed from the saved
  statistics, never stored.
"""
import torch
import triton
import triton.language as tl

from ..sru import GAMMA_SUM_EPS
from ._layout import (dense, empty_like_layout, kernel_arg, next_power_of_2,
                      pixel_block, strides)
from ._tiles import load_tile, program_tile, store_tile

_TILE = 4096  # values per program tile


@triton.jit
def _partial_stats_kernel(x_ptr, part_ptr, C, HW, num_blocks, stride_n,
                          stride_c, stride_p, BLOCK_P: tl.constexpr,
                          BLOCK_C: tl.constexpr):
    n = tl.program_id(0)
    block = tl.program_id(1)
    p = block * BLOCK_P + tl.arange(0, BLOCK_P)
    c = tl.arange(0, BLOCK_C)
    mask = (p[:, None] < HW) & (c[None, :] < C)
    x = load_tile(x_ptr, n, p, c, mask, stride_n, stride_c, stride_p)
    count = tl.minimum(HW - block * BLOCK_P, BLOCK_P).to(tl.float32)
    mean = tl.sum(x, axis=0) / count
    centred = tl.where(mask, x - mean[None, :], 0.0)
    m2 = tl.sum(centred * centred, axis=0)
    out = part_ptr + ((n * num_blocks + block) * 2) * C + c
    tl.store(out, mean, mask=c < C)
    tl.store(out + C, m2, mask=c < C)


@triton.jit
def _group_stats_kernel(part_ptr, mean_ptr, rstd_ptr, C, HW, G, num_blocks,
                        eps, BLOCK_P: tl.constexpr, BLOCK_B: tl.constexpr,
                        BLOCK_CG: tl.constexpr):
    """Merge the partials of one (sample, group): Chan's parallel formula."""
    row = tl.program_id(0)  # n * G + g
    n = row // G
    group_channels = C // G
    c = (row % G) * group_channels + tl.arange(0, BLOCK_CG)
    c_mask = tl.arange(0, BLOCK_CG) < group_channels
    total = group_channels * HW
    weighted = tl.zeros((BLOCK_B, BLOCK_CG), tl.float32)
    for start in range(0, num_blocks, BLOCK_B):
        b = start + tl.arange(0, BLOCK_B)
        mask = (b[:, None] < num_blocks) & c_mask[None, :]
        count = tl.minimum(HW - b * BLOCK_P, BLOCK_P).to(tl.float32)
        means = tl.load(part_ptr + ((n * num_blocks + b[:, None]) * 2) * C +
                        c[None, :], mask=mask, other=0.0)
        weighted += tl.where(mask, means * count[:, None], 0.0)
    mean = tl.sum(tl.sum(weighted, axis=1), axis=0) / total
    spread = tl.zeros((BLOCK_B, BLOCK_CG), tl.float32)
    for start in range(0, num_blocks, BLOCK_B):
        b = start + tl.arange(0, BLOCK_B)
        mask = (b[:, None] < num_blocks) & c_mask[None, :]
        count = tl.minimum(HW - b * BLOCK_P, BLOCK_P).to(tl.float32)
        base = part_ptr + ((n * num_blocks + b[:, None]) * 2) * C + c[None, :]
        means = tl.load(base, mask=mask, other=0.0)
        m2 = tl.load(base + C, mask=mask, other=0.0)
        delta = means - mean
        spread += tl.where(mask, m2 + count[:, None] * delta * delta, 0.0)
    var = tl.sum(tl.sum(spread, axis=1), axis=0) / total
    tl.store(mean_ptr + row, mean)
    tl.store(rstd_ptr + row, 1.0 / tl.sqrt(var + eps))


@triton.jit
def _reweights(x, c, n, G, group_channels, weight_ptr, bias_ptr, mean_ptr,
               rstd_ptr, c_mask, inv_gamma_sum=1.0,
               NORMALISE: tl.constexpr = False):
    """``R = sigmoid(GN(x) * W_gamma)`` and the normalised ``x``.

    ``weight``/``bias`` are the affine of ``fast.gn_affine``, or with
    ``NORMALISE`` the GroupNorm's own ``gamma``/``beta``, scaled here by
    ``W_gamma = gamma * inv_gamma_sum``."""
    group = n * G + c // group_channels
    mean = tl.load(mean_ptr + group, mask=c_mask, other=0.0)
    rstd = tl.load(rstd_ptr + group, mask=c_mask, other=0.0)
    weight = tl.load(weight_ptr + c, mask=c_mask, other=0.0).to(tl.float32)
    bias = tl.load(bias_ptr + c, mask=c_mask, other=0.0).to(tl.float32)
    if NORMALISE:
        w_gamma = weight * inv_gamma_sum
        weight = weight * w_gamma
        bias = bias * w_gamma
    x_hat = (x - mean[None, :]) * rstd[None, :]
    r = tl.sigmoid(x_hat * weight[None, :] + bias[None, :])
    return r, x_hat, weight, rstd


@triton.jit
def _gate_weights(r, threshold, SOFT: tl.constexpr):
    """``(W1, W2)`` of Eq. 3/4: soft keeps ``R`` below the threshold."""
    informative = r > threshold
    if SOFT:
        return tl.where(informative, 1.0, r), tl.where(informative, 0.0, r)
    w1 = tl.where(informative, 1.0, 0.0)
    return w1, 1.0 - w1


@triton.jit
def _tile_indices(half, HW, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """This program's sample, pixels and upper-half channels, and masks
    (a two-axis grid: the channel block is always 0)."""
    n, p, c, mask = program_tile(HW, half, BLOCK_P, BLOCK_C)
    return n, p, c, c < half, mask


@triton.jit
def inv_gamma_sum(weight_ptr, C, gamma_eps, NORMALISE: tl.constexpr,
                  BLOCK_ALL_C: tl.constexpr):
    """``1 / sum(gamma)`` (Eq. 2), kept away from zero as
    ``sru.normalised_gamma`` does; 1 unless ``NORMALISE``."""
    inv = 1.0
    if NORMALISE:
        every_c = tl.arange(0, BLOCK_ALL_C)
        total = tl.sum(tl.load(weight_ptr + every_c, mask=every_c < C,
                               other=0.0).to(tl.float32), axis=0)
        total = tl.where(total >= 0, tl.maximum(total, gamma_eps),
                         tl.minimum(total, -gamma_eps))
        inv = 1.0 / total
    return inv


@triton.jit
def sru_tile(x_ptr, n, p, c, c_mask, mask, half, G, stride_n, stride_c,
             stride_p, weight_ptr, bias_ptr, mean_ptr, rstd_ptr, inv_sum,
             threshold, SOFT: tl.constexpr, NORMALISE: tl.constexpr):
    """The SRU output's two halves on channels ``c`` (of the upper half)
    and ``c + half``, fp32 (Eq. 1-4 for one tile)."""
    x_a = load_tile(x_ptr, n, p, c, mask, stride_n, stride_c, stride_p)
    x_b = load_tile(x_ptr, n, p, c + half, mask, stride_n, stride_c,
                    stride_p)
    group_channels = 2 * half // G
    r_a, _, _, _ = _reweights(x_a, c, n, G, group_channels, weight_ptr,
                              bias_ptr, mean_ptr, rstd_ptr, c_mask, inv_sum,
                              NORMALISE)
    r_b, _, _, _ = _reweights(x_b, c + half, n, G, group_channels, weight_ptr,
                              bias_ptr, mean_ptr, rstd_ptr, c_mask, inv_sum,
                              NORMALISE)
    w1_a, w2_a = _gate_weights(r_a, threshold, SOFT)
    w1_b, w2_b = _gate_weights(r_b, threshold, SOFT)
    return w1_a * x_a + w2_b * x_b, w1_b * x_b + w2_a * x_a


@triton.jit
def _apply_kernel(x_ptr, up_ptr, low_ptr, weight_ptr, bias_ptr, mean_ptr,
                  rstd_ptr, half, HW, G, stride_n, stride_c, stride_p,
                  out_stride_n, out_stride_c, out_stride_p, threshold,
                  gamma_eps, SOFT: tl.constexpr, NORMALISE: tl.constexpr,
                  BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
                  BLOCK_ALL_C: tl.constexpr):
    n, p, c, c_mask, mask = _tile_indices(half, HW, BLOCK_P, BLOCK_C)
    inv_sum = inv_gamma_sum(weight_ptr, 2 * half, gamma_eps, NORMALISE,
                            BLOCK_ALL_C)
    upper, lower = sru_tile(x_ptr, n, p, c, c_mask, mask, half, G, stride_n,
                            stride_c, stride_p, weight_ptr, bias_ptr,
                            mean_ptr, rstd_ptr, inv_sum, threshold, SOFT,
                            NORMALISE)
    store_tile(up_ptr, upper, n, p, c, mask, out_stride_n, out_stride_c,
               out_stride_p)
    store_tile(low_ptr, lower, n, p, c, mask, out_stride_n, out_stride_c,
               out_stride_p)


@triton.jit
def _grad_z(x, r, g_sum, threshold):
    """``dL/dz`` of the soft gate: ``(1 - m) x (g_own + g_other) R(1-R)``."""
    return tl.where(r > threshold, 0.0, x * g_sum * r * (1.0 - r))


@triton.jit
def _backward_tiles(x_ptr, gu_ptr, gl_ptr, weight_ptr, bias_ptr, mean_ptr,
                    rstd_ptr, half, HW, G, stride_n, stride_c, stride_p,
                    gu_stride_n, gu_stride_c, gu_stride_p, gl_stride_n,
                    gl_stride_c, gl_stride_p, BLOCK_P: tl.constexpr,
                    BLOCK_C: tl.constexpr):
    """What both backward passes load and recompute for their tile."""
    n, p, c, c_mask, mask = _tile_indices(half, HW, BLOCK_P, BLOCK_C)
    x_a = load_tile(x_ptr, n, p, c, mask, stride_n, stride_c, stride_p)
    x_b = load_tile(x_ptr, n, p, c + half, mask, stride_n, stride_c,
                    stride_p)
    g_up = load_tile(gu_ptr, n, p, c, mask, gu_stride_n, gu_stride_c,
                     gu_stride_p)
    g_low = load_tile(gl_ptr, n, p, c, mask, gl_stride_n, gl_stride_c,
                      gl_stride_p)
    group_channels = 2 * half // G
    r_a, xh_a, w_a, rstd_a = _reweights(x_a, c, n, G, group_channels,
                                        weight_ptr, bias_ptr, mean_ptr,
                                        rstd_ptr, c_mask)
    r_b, xh_b, w_b, rstd_b = _reweights(x_b, c + half, n, G, group_channels,
                                        weight_ptr, bias_ptr, mean_ptr,
                                        rstd_ptr, c_mask)
    return (n, p, c, c_mask, mask, x_a, x_b, g_up, g_low, r_a, xh_a, w_a,
            rstd_a, r_b, xh_b, w_b, rstd_b)


@triton.jit
def _backward_sums_kernel(x_ptr, gu_ptr, gl_ptr, weight_ptr, bias_ptr,
                          mean_ptr, rstd_ptr, part_ptr, half, HW, G,
                          stride_n, stride_c, stride_p, gu_stride_n,
                          gu_stride_c, gu_stride_p, gl_stride_n, gl_stride_c,
                          gl_stride_p, threshold, BLOCK_P: tl.constexpr,
                          BLOCK_C: tl.constexpr):
    """Per (sample, pixel block, channel): ``sum dz * x_hat`` and
    ``sum dz`` (soft gate only; the hard gate sends nothing to the GN)."""
    (n, p, c, c_mask, mask, x_a, x_b, g_up, g_low, r_a, xh_a, _, _, r_b,
     xh_b, _, _) = _backward_tiles(
         x_ptr, gu_ptr, gl_ptr, weight_ptr, bias_ptr, mean_ptr, rstd_ptr,
         half, HW, G, stride_n, stride_c, stride_p, gu_stride_n, gu_stride_c,
         gu_stride_p, gl_stride_n, gl_stride_c, gl_stride_p, BLOCK_P, BLOCK_C)
    g_sum = g_up + g_low
    dz_a = tl.where(mask, _grad_z(x_a, r_a, g_sum, threshold), 0.0)
    dz_b = tl.where(mask, _grad_z(x_b, r_b, g_sum, threshold), 0.0)
    out = part_ptr + ((n * tl.num_programs(1) + tl.program_id(1)) * 4 *
                      half) + c
    tl.store(out, tl.sum(dz_a * xh_a, axis=0), mask=c_mask)
    tl.store(out + half, tl.sum(dz_b * xh_b, axis=0), mask=c_mask)
    tl.store(out + 2 * half, tl.sum(dz_a, axis=0), mask=c_mask)
    tl.store(out + 3 * half, tl.sum(dz_b, axis=0), mask=c_mask)


@triton.jit
def _grad_x(x, r, x_hat, weight, rstd, g_own, g_other, c1, c2, threshold,
            SOFT: tl.constexpr):
    w1, w2 = _gate_weights(r, threshold, SOFT)
    grad = w1 * g_own + w2 * g_other
    if SOFT:
        dz = _grad_z(x, r, g_own + g_other, threshold)
        grad += rstd[None, :] * (dz * weight[None, :] - c1[None, :] -
                                 x_hat * c2[None, :])
    return grad


@triton.jit
def _backward_input_kernel(x_ptr, gu_ptr, gl_ptr, gx_ptr, weight_ptr,
                           bias_ptr, mean_ptr, rstd_ptr, coef_ptr, half, HW,
                           G, stride_n, stride_c, stride_p, gu_stride_n,
                           gu_stride_c, gu_stride_p, gl_stride_n,
                           gl_stride_c, gl_stride_p, threshold,
                           SOFT: tl.constexpr, BLOCK_P: tl.constexpr,
                           BLOCK_C: tl.constexpr):
    """``grad_x``: the gate's direct term plus (soft) the GroupNorm's,
    ``rstd (dz w - c1 - x_hat c2)``, with ``c1, c2`` per (sample, group)
    in ``coef_ptr`` as rows ``[c1; c2]``."""
    (n, p, c, c_mask, mask, x_a, x_b, g_up, g_low, r_a, xh_a, w_a, rstd_a,
     r_b, xh_b, w_b, rstd_b) = _backward_tiles(
         x_ptr, gu_ptr, gl_ptr, weight_ptr, bias_ptr, mean_ptr, rstd_ptr,
         half, HW, G, stride_n, stride_c, stride_p, gu_stride_n, gu_stride_c,
         gu_stride_p, gl_stride_n, gl_stride_c, gl_stride_p, BLOCK_P, BLOCK_C)
    group_channels = 2 * half // G
    group_a = n * G + c // group_channels
    group_b = n * G + (c + half) // group_channels
    rows = tl.num_programs(0) * G
    c1_a = tl.load(coef_ptr + group_a, mask=c_mask, other=0.0)
    c1_b = tl.load(coef_ptr + group_b, mask=c_mask, other=0.0)
    c2_a = tl.load(coef_ptr + rows + group_a, mask=c_mask, other=0.0)
    c2_b = tl.load(coef_ptr + rows + group_b, mask=c_mask, other=0.0)
    # Channel a feeds the upper half as W1 x_a, the lower one as W2 x_a.
    gx_a = _grad_x(x_a, r_a, xh_a, w_a, rstd_a, g_up, g_low, c1_a, c2_a,
                   threshold, SOFT)
    gx_b = _grad_x(x_b, r_b, xh_b, w_b, rstd_b, g_low, g_up, c1_b, c2_b,
                   threshold, SOFT)
    store_tile(gx_ptr, gx_a, n, p, c, mask, stride_n, stride_c, stride_p)
    store_tile(gx_ptr, gx_b, n, p, c + half, mask, stride_n, stride_c,
               stride_p)


def _grid(x, block_p):
    return x.shape[0], triton.cdiv(x.shape[2] * x.shape[3], block_p)


def group_stats(x, groups, eps):
    """GroupNorm mean and rstd of ``x``, shape ``(N, groups)``, fp32."""
    n, c, h, w = x.shape
    block_c = next_power_of_2(c)
    block_p = pixel_block(block_c, _TILE)
    num_blocks = triton.cdiv(h * w, block_p)
    partials = torch.empty((n, num_blocks, 2, c), dtype=torch.float32,
                           device=x.device)
    _partial_stats_kernel[_grid(x, block_p)](
        x, partials, c, h * w, num_blocks, *strides(x), BLOCK_P=block_p,
        BLOCK_C=block_c)
    mean = torch.empty((n, groups), dtype=torch.float32, device=x.device)
    rstd = torch.empty_like(mean)
    block_cg = next_power_of_2(c // groups)
    _group_stats_kernel[(n * groups, )](
        partials, mean, rstd, c, h * w, groups, num_blocks, eps,
        BLOCK_P=block_p, BLOCK_B=max(16, 4096 // block_cg),
        BLOCK_CG=block_cg)
    return mean, rstd


def halves(x, weight, bias, mean, rstd, groups, threshold, gate,
           normalise=False):
    """The two SRU output halves of ``x`` (its dtype and layout) from the
    GroupNorm statistics and affine (see :func:`forward`)."""
    x = dense(x)
    half = x.shape[1] // 2
    upper = empty_like_layout(x, half)
    lower = empty_like_layout(x, half)
    block_c = next_power_of_2(half)
    block_p = pixel_block(block_c, _TILE // 2)
    _apply_kernel[_grid(x, block_p)](
        x, upper, lower, kernel_arg(weight, torch.float32),
        kernel_arg(bias, torch.float32), mean, rstd, half,
        x.shape[2] * x.shape[3], groups, *strides(x), *strides(upper),
        threshold, GAMMA_SUM_EPS, SOFT=gate == 'soft', NORMALISE=normalise,
        BLOCK_P=block_p, BLOCK_C=block_c,
        BLOCK_ALL_C=next_power_of_2(x.shape[1]))
    return upper, lower


def forward(x, weight, bias, groups, eps, threshold, gate, normalise=False):
    """SRU halves and GroupNorm statistics (``fast._sru_forward``'s
    interface; the halves come in ``x``'s dtype).

    Args:
        normalise (bool): ``weight``/``bias`` are the GroupNorm's own
            ``gamma``/``beta`` and the kernel applies ``W_gamma`` itself
            (inference: no small ops before the kernel). Default: False,
            the affine of ``fast.gn_affine``.
    """
    x = dense(x)
    mean, rstd = group_stats(x, groups, eps)
    upper, lower = halves(x, weight, bias, mean, rstd, groups, threshold,
                          gate, normalise)
    return upper, lower, mean, rstd


def backward(x, weight, bias, mean, rstd, groups, threshold, gate,
                 grad_upper, grad_lower, needs_affine_grad):
    """``(grad_x, grad_weight, grad_bias)`` (``fast._sru_backward``'s
    interface; affine gradients are None for the hard gate or where
    ``needs_affine_grad`` says so)."""
    x, grad_upper, grad_lower = dense(x), dense(grad_upper), dense(grad_lower)
    n, c, h, w = x.shape
    weight, bias = (kernel_arg(t, torch.float32) for t in (weight, bias))
    block_c = next_power_of_2(c // 2)
    block_p = pixel_block(block_c, _TILE // 4)
    grid = _grid(x, block_p)
    soft = gate == 'soft'
    tensors = (x, grad_upper, grad_lower)
    layout = [s for t in tensors for s in strides(t)]
    # The hard gate sends nothing to the GroupNorm: zero coefficients.
    coefficients = torch.zeros((2, n * groups), dtype=torch.float32,
                               device=x.device)
    grad_weight = grad_bias = None
    if soft:
        partials = torch.empty((n, grid[1], 2, c), dtype=torch.float32,
                               device=x.device)
        _backward_sums_kernel[grid](
            *tensors, weight, bias, mean, rstd, partials, c // 2, h * w,
            groups, *layout, threshold, BLOCK_P=block_p, BLOCK_C=block_c)
        sums = partials.sum(1)  # (N, 2, C): sum dz * x_hat, sum dz
        # c1 = group mean of dz * w, c2 = group mean of dz * w * x_hat.
        per_group = (sums * weight).view(n, 2, groups, -1).sum(-1)
        per_group /= (c // groups) * h * w
        coefficients = per_group.flip(1).transpose(0, 1).reshape(2, -1)
        if needs_affine_grad[0]:
            grad_weight = sums[:, 0].sum(0)
        if needs_affine_grad[1]:
            grad_bias = sums[:, 1].sum(0)
    grad_x = torch.empty_like(x)
    _backward_input_kernel[grid](
        *tensors, grad_x, weight, bias, mean, rstd, coefficients.contiguous(),
        c // 2, h * w, groups, *layout, threshold, SOFT=soft,
        BLOCK_P=block_p, BLOCK_C=block_c)
    return grad_x, grad_weight, grad_bias

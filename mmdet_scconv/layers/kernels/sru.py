"""The SRU in Triton: GroupNorm statistics, then the gate and the
cross-reconstruction in one pass; the backward in three launches.

The SRU's side of the registered ops of :mod:`..ops.scconv` (whose PyTorch
math, :mod:`..ops.sru`, computes the same). They take the GroupNorm's own
``gamma`` and ``beta`` and apply ``W_gamma`` (Eq. 2) themselves, forward and
backward, so no parameter-sized op runs on the host:

* forward: a per-(sample, pixel block, channel) partial mean and centred
  sum of squares (one read of ``x``, any layout, into a reused scratch),
  merged per group with Chan's formula (robust where the mean dwarfs the
  spread) into one fp32 statistics tensor; :func:`sru_tile` then computes
  the output halves tile by tile inside the SRU+squeeze GEMM
  (:mod:`.sru_squeeze`);
* backward: one pass adding up the per-channel sums the GroupNorm gradient
  needs (into a reused zeroed scratch), one single-program kernel turning
  them into the per-group coefficients and the ``gamma``/``beta``
  gradients, one pass writing ``grad_x`` that also zeroes the sums again
  for their next user; the reweights are recomputed from the saved
  statistics, never stored. Behind the CRU's squeeze convolutions
  (:func:`backward_from_cru`) the passes read the CRU's input gradients
  as its convolutions leave them.
"""
import torch
import triton
import triton.language as tl

from ..sru import GAMMA_SUM_EPS
from ._layout import dense, kernel_arg, next_power_of_2, pixel_block, strides
from ._tiles import (dot_options, load_tile, load_unpooled, program_tile,
                     store_tile, zero_share)
from ._workspace import scratch, zeroed_on_error

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
def _group_stats_kernel(part_ptr, stats_ptr, C, HW, G, NG, num_blocks, eps,
                        zero_numel, BLOCK_P: tl.constexpr,
                        BLOCK_B: tl.constexpr, BLOCK_CG: tl.constexpr,
                        BLOCK_ZERO: tl.constexpr):
    """Merge the partials of one (sample, group) with Chan's parallel
    formula into the mean at ``stats[row]`` and the rstd at
    ``stats[NG + row]``; zero this program's share of the ``zero_numel``
    values after them (a consumer's accumulators: no launch of their own).
    """
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
        means = tl.load(
            part_ptr + ((n * num_blocks + b[:, None]) * 2) * C + c[None, :],
            mask=mask,
            other=0.0)
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
    tl.store(stats_ptr + row, mean)
    tl.store(stats_ptr + NG + row, 1.0 / tl.sqrt(var + eps))
    zero_share(stats_ptr + 2 * NG, zero_numel, row, NG, BLOCK_ZERO)


@triton.jit
def _reweights(x, c, n, G, group_channels, weight_ptr, bias_ptr, stats_ptr, NG,
               c_mask, inv_gamma_sum):
    """``R = sigmoid(GN(x) * W_gamma)`` (Eq. 1-3), the normalised ``x``,
    the affine ``(gamma W_gamma, beta W_gamma)`` that gives ``GN(x) *
    W_gamma`` and the rstd; ``weight``/``bias`` are the GroupNorm's own
    ``gamma``/``beta``, ``W_gamma = gamma * inv_gamma_sum``."""
    group = n * G + c // group_channels
    mean = tl.load(stats_ptr + group, mask=c_mask, other=0.0)
    rstd = tl.load(stats_ptr + NG + group, mask=c_mask, other=0.0)
    weight = tl.load(weight_ptr + c, mask=c_mask, other=0.0).to(tl.float32)
    bias = tl.load(bias_ptr + c, mask=c_mask, other=0.0).to(tl.float32)
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
def inv_gamma_sum(weight_ptr, C, gamma_eps, BLOCK_ALL_C: tl.constexpr):
    """``1 / sum(gamma)`` (Eq. 2), kept away from zero as
    ``sru.normalised_gamma`` does."""
    every_c = tl.arange(0, BLOCK_ALL_C)
    total = tl.sum(
        tl.load(weight_ptr + every_c, mask=every_c < C,
                other=0.0).to(tl.float32),
        axis=0)
    total = tl.where(total >= 0, tl.maximum(total, gamma_eps),
                     tl.minimum(total, -gamma_eps))
    return 1.0 / total


@triton.jit
def sru_tile(x_ptr, n, p, c, c_mask, mask, half, G, stride_n, stride_c,
             stride_p, weight_ptr, bias_ptr, stats_ptr, NG, inv_sum, threshold,
             SOFT: tl.constexpr):
    """The SRU output's two halves on channels ``c`` (of the upper half)
    and ``c + half``, fp32 (Eq. 1-4 for one tile)."""
    x_a = load_tile(x_ptr, n, p, c, mask, stride_n, stride_c, stride_p)
    x_b = load_tile(x_ptr, n, p, c + half, mask, stride_n, stride_c, stride_p)
    group_channels = 2 * half // G
    r_a, _, _, _ = _reweights(x_a, c, n, G, group_channels, weight_ptr,
                              bias_ptr, stats_ptr, NG, c_mask, inv_sum)
    r_b, _, _, _ = _reweights(x_b, c + half, n, G, group_channels, weight_ptr,
                              bias_ptr, stats_ptr, NG, c_mask, inv_sum)
    w1_a, w2_a = _gate_weights(r_a, threshold, SOFT)
    w1_b, w2_b = _gate_weights(r_b, threshold, SOFT)
    return w1_a * x_a + w2_b * x_b, w1_b * x_b + w2_a * x_a


@triton.jit
def _grad_z(x, r, g_sum, threshold):
    """``dL/dz`` of the soft gate: ``(1 - m) x (g_own + g_other) R(1-R)``."""
    return tl.where(r > threshold, 0.0, x * g_sum * r * (1.0 - r))


@triton.jit
def _through_squeeze(g, w_ptr, o, o_mask, c, c_mask, half,
                     DOT_DTYPE: tl.constexpr, PRECISION: tl.constexpr):
    """The gradient of an SRU half from its squeeze convolution's output
    gradient ``g`` (pixels x outputs ``o``): ``g @ W[o, c]``, rounded to
    the convolution's dtype as its input gradient would be."""
    w = tl.load(
        w_ptr + o[:, None] * half + c[None, :],
        mask=o_mask[:, None] & c_mask[None, :],
        other=0.0)
    product = tl.dot(
        g.to(DOT_DTYPE), w.to(DOT_DTYPE), input_precision=PRECISION)
    return product.to(DOT_DTYPE).to(tl.float32)


@triton.jit
def _backward_tiles(x_ptr, gu_ptr, gl_ptr, pu_ptr, pr_ptr, w_up_ptr, w_low_ptr,
                    weight_ptr, bias_ptr, stats_ptr, NG, half, SQ, H, W, Wo, G,
                    stride_n, stride_c, stride_p, gu_sn, gu_sc, gu_sp, gl_sn,
                    gl_sc, gl_sp, pu_sn, pu_sc, pu_sp, pr_sn, pr_sc, pr_sp,
                    gamma_eps, STRIDE: tl.constexpr, DOT_DTYPE: tl.constexpr,
                    PRECISION: tl.constexpr, BLOCK_P: tl.constexpr,
                    BLOCK_C: tl.constexpr, BLOCK_O: tl.constexpr,
                    BLOCK_ALL_C: tl.constexpr):
    """What both backward passes load and recompute for their tile: the
    gradients of the two SRU halves, from the CRU's, of its squeezed inputs
    (``SQ`` channels; squeeze weights ``w_up``/``w_low``), in the pieces its
    convolutions leave them: ``X_up``'s is ``gu`` (the grouped
    convolution's) plus ``unpool(pu)`` (``PWC1``'s), ``X_low``'s is
    ``unpool(gl + pr)`` (``PWC2``'s and the reused branch's); ``unpool``
    undoes ``STRIDE``'s pooling (:func:`load_unpooled`), and the sums are
    taken back through the squeeze weights here and returned too."""
    HW = H * W
    n, p, c, c_mask, mask = _tile_indices(half, HW, BLOCK_P, BLOCK_C)
    x_a = load_tile(x_ptr, n, p, c, mask, stride_n, stride_c, stride_p)
    x_b = load_tile(x_ptr, n, p, c + half, mask, stride_n, stride_c, stride_p)
    o = tl.arange(0, BLOCK_O)
    o_mask = o < SQ
    squeezed_mask = (p < HW)[:, None] & o_mask[None, :]
    g_up_sq = load_tile(
        gu_ptr, n, p, o, squeezed_mask, gu_sn, gu_sc, gu_sp) + load_unpooled(
            pu_ptr, n, p, o, squeezed_mask, H, W, Wo, pu_sn, pu_sc, pu_sp,
            STRIDE)
    g_low_sq = load_unpooled(gl_ptr, n, p, o, squeezed_mask, H, W, Wo, gl_sn,
                             gl_sc, gl_sp, STRIDE) + load_unpooled(
                                 pr_ptr, n, p, o, squeezed_mask, H, W, Wo,
                                 pr_sn, pr_sc, pr_sp, STRIDE)
    g_up = _through_squeeze(g_up_sq, w_up_ptr, o, o_mask, c, c_mask, half,
                            DOT_DTYPE, PRECISION)
    g_low = _through_squeeze(g_low_sq, w_low_ptr, o, o_mask, c, c_mask, half,
                             DOT_DTYPE, PRECISION)
    group_channels = 2 * half // G
    inv_sum = inv_gamma_sum(weight_ptr, 2 * half, gamma_eps, BLOCK_ALL_C)
    r_a, xh_a, w_a, rstd_a = _reweights(x_a, c, n, G, group_channels,
                                        weight_ptr, bias_ptr, stats_ptr, NG,
                                        c_mask, inv_sum)
    r_b, xh_b, w_b, rstd_b = _reweights(x_b, c + half, n, G, group_channels,
                                        weight_ptr, bias_ptr, stats_ptr, NG,
                                        c_mask, inv_sum)
    return (n, p, c, c_mask, mask, x_a, x_b, g_up, g_low, r_a, xh_a, w_a,
            rstd_a, r_b, xh_b, w_b, rstd_b, g_up_sq, g_low_sq)


@triton.jit
def _backward_sums_kernel(
        x_ptr, gu_ptr, gl_ptr, pu_ptr, pr_ptr, w_up_ptr, w_low_ptr, weight_ptr,
        bias_ptr, stats_ptr, NG, sums_ptr, sums_offset, half, SQ, H, W, Wo, G,
        stride_n, stride_c, stride_p, gu_sn, gu_sc, gu_sp, gl_sn, gl_sc, gl_sp,
        pu_sn, pu_sc, pu_sp, pr_sn, pr_sc, pr_sp, threshold, gamma_eps,
        STRIDE: tl.constexpr, DOT_DTYPE: tl.constexpr, PRECISION: tl.constexpr,
        BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_O: tl.constexpr,
        BLOCK_ALL_C: tl.constexpr):
    """Adds per (sample, channel) ``sum dz * x_hat`` and ``sum dz`` into
    ``sums`` from ``sums_offset`` on (``(N, 2, C)``, zeroed; soft gate
    only: the hard gate sends nothing to the GroupNorm)."""
    (n, p, c, c_mask, mask, x_a, x_b, g_up, g_low, r_a,
     xh_a, _, _, r_b, xh_b, _, _, _, _) = _backward_tiles(
         x_ptr, gu_ptr, gl_ptr, pu_ptr, pr_ptr, w_up_ptr, w_low_ptr,
         weight_ptr, bias_ptr, stats_ptr, NG, half, SQ, H, W, Wo, G, stride_n,
         stride_c, stride_p, gu_sn, gu_sc, gu_sp, gl_sn, gl_sc, gl_sp, pu_sn,
         pu_sc, pu_sp, pr_sn, pr_sc, pr_sp, gamma_eps, STRIDE, DOT_DTYPE,
         PRECISION, BLOCK_P, BLOCK_C, BLOCK_O, BLOCK_ALL_C)
    g_sum = g_up + g_low
    dz_a = tl.where(mask, _grad_z(x_a, r_a, g_sum, threshold), 0.0)
    dz_b = tl.where(mask, _grad_z(x_b, r_b, g_sum, threshold), 0.0)
    out = sums_ptr + sums_offset + n * 4 * half + c
    tl.atomic_add(out, tl.sum(dz_a * xh_a, axis=0), mask=c_mask)
    tl.atomic_add(out + half, tl.sum(dz_b * xh_b, axis=0), mask=c_mask)
    tl.atomic_add(out + 2 * half, tl.sum(dz_a, axis=0), mask=c_mask)
    tl.atomic_add(out + 3 * half, tl.sum(dz_b, axis=0), mask=c_mask)


@triton.jit
def _backward_affine_kernel(sums_ptr, sums_offset, weight_ptr, bias_ptr,
                            coef_ptr, grad_weight_ptr, grad_bias_ptr, N, C, G,
                            HW, gamma_eps, BLOCK_C: tl.constexpr):
    """One program: from the ``(N, 2, C)`` sums of
    :func:`_backward_sums_kernel`, the per (sample, group) coefficients
    ``c1`` (group mean of ``dz w``) and ``c2`` (of ``dz w x_hat``) at
    ``coef`` as rows ``[c1; c2]``, and the gradients of the GroupNorm's own
    ``gamma`` and ``beta`` through the affine ``(gamma W_gamma, beta
    W_gamma)``, ``W_gamma = gamma / s`` (Eq. 2; ``s = sum(gamma)``, kept
    away from zero, where it passes no gradient)."""
    sums_ptr += sums_offset
    c = tl.arange(0, BLOCK_C)
    c_mask = c < C
    gamma = tl.load(weight_ptr + c, mask=c_mask, other=0.0).to(tl.float32)
    beta = tl.load(bias_ptr + c, mask=c_mask, other=0.0).to(tl.float32)
    total = tl.sum(gamma, axis=0)
    clamped = tl.abs(total) < gamma_eps
    total = tl.where(total >= 0, tl.maximum(total, gamma_eps),
                     tl.minimum(total, -gamma_eps))
    inv = 1.0 / total
    weight = gamma * gamma * inv
    group_channels = C // G
    group_of = c // group_channels
    grad_weight = tl.zeros((BLOCK_C, ), tl.float32)
    grad_bias = tl.zeros((BLOCK_C, ), tl.float32)
    for n in range(N):
        dz_xhat = tl.load(sums_ptr + n * 2 * C + c, mask=c_mask, other=0.0)
        dz = tl.load(sums_ptr + n * 2 * C + C + c, mask=c_mask, other=0.0)
        grad_weight += dz_xhat
        grad_bias += dz
        for g in range(G):
            in_group = c_mask & (group_of == g)
            count = group_channels * HW
            c1 = tl.sum(tl.where(in_group, dz * weight, 0.0), axis=0) / count
            c2 = tl.sum(
                tl.where(in_group, dz_xhat * weight, 0.0), axis=0) / count
            tl.store(coef_ptr + n * G + g, c1)
            tl.store(coef_ptr + N * G + n * G + g, c2)
    # d(gamma^2 / s) and d(beta gamma / s) with respect to gamma and beta.
    through_sum = tl.sum(
        grad_weight * gamma * gamma + grad_bias * beta * gamma,
        axis=0) * inv * inv
    through_sum = tl.where(clamped, 0.0, through_sum)
    grad_gamma = (2.0 * grad_weight * gamma + grad_bias * beta) * inv - (
        through_sum)
    tl.store(grad_weight_ptr + c, grad_gamma, mask=c_mask)
    tl.store(grad_bias_ptr + c, grad_bias * gamma * inv, mask=c_mask)


@triton.jit
def _grad_x(x, r, x_hat, weight, rstd, g_own, g_other, c1, c2, threshold,
            SOFT: tl.constexpr):
    w1, w2 = _gate_weights(r, threshold, SOFT)
    grad = w1 * g_own + w2 * g_other
    if SOFT:
        dz = _grad_z(x, r, g_own + g_other, threshold)
        grad += rstd[None, :] * (
            dz * weight[None, :] - c1[None, :] - x_hat * c2[None, :])
    return grad


@triton.jit
def _add_weight_grad(dw_ptr, g, half_tile, c, c_mask, SQ, half,
                     DOT_DTYPE: tl.constexpr, PRECISION: tl.constexpr,
                     BLOCK_O: tl.constexpr):
    """``dW[o, c] += sum_p g[p, o] half[p, c]``: a squeeze convolution's
    weight gradient, this tile's share."""
    o = tl.arange(0, BLOCK_O)
    share = tl.dot(
        tl.trans(g.to(DOT_DTYPE)),
        half_tile.to(DOT_DTYPE),
        input_precision=PRECISION)
    tl.atomic_add(
        dw_ptr + o[:, None] * half + c[None, :],
        share,
        mask=(o < SQ)[:, None] & c_mask[None, :])


@triton.jit
def _backward_input_kernel(
        x_ptr, gu_ptr, gl_ptr, pu_ptr, pr_ptr, gx_ptr, w_up_ptr, w_low_ptr,
        dw_up_ptr, dw_low_ptr, weight_ptr, bias_ptr, stats_ptr, NG, coef_ptr,
        zero_ptr, zero_numel, half, SQ, H, W, Wo, G, stride_n, stride_c,
        stride_p, gu_sn, gu_sc, gu_sp, gl_sn, gl_sc, gl_sp, pu_sn, pu_sc,
        pu_sp, pr_sn, pr_sc, pr_sp, threshold, gamma_eps, SOFT: tl.constexpr,
        STRIDE: tl.constexpr, DOT_DTYPE: tl.constexpr, PRECISION: tl.constexpr,
        BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_O: tl.constexpr,
        BLOCK_ALL_C: tl.constexpr):
    """``grad_x``: the gate's direct term plus (soft) the GroupNorm's,
    ``rstd (dz w - c1 - x_hat c2)``, with ``c1, c2`` per (sample, group)
    in ``coef_ptr`` as rows ``[c1; c2]``, and the squeeze convolutions'
    weight gradients (added into ``dw_up``,
    ``dw_low``), from the SRU halves recomputed here. The last kernel of
    the backward: it zeroes the ``zero_numel`` accumulators at
    ``zero_ptr`` that earlier ones read (:mod:`._workspace`)."""
    (n, p, c, c_mask, mask, x_a, x_b, g_up, g_low, r_a, xh_a, w_a, rstd_a, r_b,
     xh_b, w_b, rstd_b, g_up_sq, g_low_sq) = _backward_tiles(
         x_ptr, gu_ptr, gl_ptr, pu_ptr, pr_ptr, w_up_ptr, w_low_ptr,
         weight_ptr, bias_ptr, stats_ptr, NG, half, SQ, H, W, Wo, G, stride_n,
         stride_c, stride_p, gu_sn, gu_sc, gu_sp, gl_sn, gl_sc, gl_sp, pu_sn,
         pu_sc, pu_sp, pr_sn, pr_sc, pr_sp, gamma_eps, STRIDE, DOT_DTYPE,
         PRECISION, BLOCK_P, BLOCK_C, BLOCK_O, BLOCK_ALL_C)
    w1_a, w2_a = _gate_weights(r_a, threshold, SOFT)
    w1_b, w2_b = _gate_weights(r_b, threshold, SOFT)
    upper = tl.where(mask, w1_a * x_a + w2_b * x_b, 0.0)
    lower = tl.where(mask, w1_b * x_b + w2_a * x_a, 0.0)
    _add_weight_grad(dw_up_ptr, g_up_sq, upper, c, c_mask, SQ, half, DOT_DTYPE,
                     PRECISION, BLOCK_O)
    _add_weight_grad(dw_low_ptr, g_low_sq, lower, c, c_mask, SQ, half,
                     DOT_DTYPE, PRECISION, BLOCK_O)
    c1_a = tl.zeros((BLOCK_C, ), tl.float32)
    c1_b = c1_a
    c2_a = c1_a
    c2_b = c1_a
    if SOFT:
        group_channels = 2 * half // G
        group_a = n * G + c // group_channels
        group_b = n * G + (c + half) // group_channels
        c1_a = tl.load(coef_ptr + group_a, mask=c_mask, other=0.0)
        c1_b = tl.load(coef_ptr + group_b, mask=c_mask, other=0.0)
        c2_a = tl.load(coef_ptr + NG + group_a, mask=c_mask, other=0.0)
        c2_b = tl.load(coef_ptr + NG + group_b, mask=c_mask, other=0.0)
    # Channel a feeds the upper half as W1 x_a, the lower one as W2 x_a.
    gx_a = _grad_x(x_a, r_a, xh_a, w_a, rstd_a, g_up, g_low, c1_a, c2_a,
                   threshold, SOFT)
    gx_b = _grad_x(x_b, r_b, xh_b, w_b, rstd_b, g_low, g_up, c1_b, c2_b,
                   threshold, SOFT)
    store_tile(gx_ptr, gx_a, n, p, c, mask, stride_n, stride_c, stride_p)
    store_tile(gx_ptr, gx_b, n, p, c + half, mask, stride_n, stride_c,
               stride_p)
    zero_share(zero_ptr, zero_numel,
               tl.program_id(0) * tl.num_programs(1) + tl.program_id(1),
               tl.num_programs(0) * tl.num_programs(1), 256)


def _grid(x, block_p):
    return x.shape[0], triton.cdiv(x.shape[2] * x.shape[3], block_p)


def group_stats(x, groups, eps, extra=0, reuse=False):
    """GroupNorm statistics of ``x`` in an fp32 tensor of ``2 N groups +
    extra`` values: the mean at ``[0, NG)``, the rstd at ``[NG, 2 NG)``
    (``NG = N groups``, sample-major) and ``extra`` zeros after them, for a
    later kernel's accumulators.

    Args:
        x (Tensor): ``(N, C, H, W)``, dense.
        groups (int), eps (float): The GroupNorm's.
        extra (int): Zeroed values to append. Default: 0.
        reuse (bool): Write into a reused scratch buffer
            (:mod:`._workspace`) instead of a fresh tensor, for a caller
            that neither returns nor keeps it. Default: False.
    """
    n, c, h, w = x.shape
    block_c = next_power_of_2(c)
    block_p = pixel_block(block_c, _TILE)
    num_blocks = triton.cdiv(h * w, block_p)
    partials = scratch('sru.partials', (n, num_blocks, 2, c), torch.float32,
                       x.device)
    _partial_stats_kernel[_grid(x, block_p)](
        x,
        partials,
        c,
        h * w,
        num_blocks,
        *strides(x),
        BLOCK_P=block_p,
        BLOCK_C=block_c)
    size = (2 * n * groups + extra, )
    stats = (
        scratch('sru.stats', size, torch.float32, x.device)
        if reuse else torch.empty(size, dtype=torch.float32, device=x.device))
    block_cg = next_power_of_2(c // groups)
    _group_stats_kernel[(n * groups, )](
        partials,
        stats,
        c,
        h * w,
        groups,
        n * groups,
        num_blocks,
        eps,
        extra,
        BLOCK_P=block_p,
        BLOCK_B=max(16, 4096 // block_cg),
        BLOCK_CG=block_cg,
        BLOCK_ZERO=256)
    return stats


def backward_from_cru(x, gamma, beta, stats, groups, threshold, gate,
                      cru_grads, squeeze_weights, dtype, stride, accumulators):
    """The SRU's backward (``(grad_x, grad_gamma, grad_beta)``, with respect
    to the GroupNorm's own ``gamma`` and ``beta``; the affine gradients are
    None for the hard gate) from the gradients of the CRU's squeezed inputs
    (``alpha=0.5``) as its convolutions leave them: the kernels add them up
    and take them back through the squeeze weights themselves, and add up
    the weights' gradients from the SRU halves they recompute, so neither
    the halves nor the sums are ever written.

    Args:
        cru_grads (tuple[Tensor]): ``X_up``'s gradient from the grouped
            convolution (full resolution), then those of the pooled
            ``pool(X_up)`` from ``PWC1``, ``pool(X_low)`` from ``PWC2`` and
            from the reused branch.
        squeeze_weights (tuple[Tensor, Tensor]): ``w_up``, ``w_low``.
        dtype (torch.dtype): The squeeze convolutions' dtype.
        stride (int): The CRU's pooling stride.
        accumulators (Tensor): A zeroed fp32 scratch (:mod:`._workspace`)
            with ``2 N C`` values from ``2 N C_out`` on for the GroupNorm
            sums (soft gate); earlier kernels' accumulators before them.
            The last kernel zeroes all of it.

    Returns:
        tuple: ``(grad_x, grad_gamma, grad_beta, grad_w_up, grad_w_low)``,
        the weights' gradients fp32.
    """
    x = dense(x)
    grad_up, pooled_up, grad_low, reused = (dense(g) for g in cru_grads)
    n, c, h, w = x.shape
    gamma, beta = kernel_arg(gamma), kernel_arg(beta)
    block_c = max(16, next_power_of_2(c // 2))
    block_p = pixel_block(block_c, _TILE // 4)
    grid = _grid(x, block_p)
    soft = gate == 'soft'
    w_up, w_low = (kernel_arg(w) for w in squeeze_weights)
    out_channels, dot = w_up.shape[0], dot_options(dtype, x.device)
    grad_w_up, grad_w_low = (
        torch.zeros(t.shape, dtype=torch.float32, device=x.device)
        for t in (w_up, w_low))
    pointers = (x, grad_up, grad_low, pooled_up, reused)
    layout = [s for t in pointers for s in strides(t)]
    sizes = (c // 2, out_channels, h, w, pooled_up.shape[-1], groups, *layout)
    settings = dict(
        STRIDE=stride,
        **dot,
        BLOCK_P=block_p,
        BLOCK_C=block_c,
        BLOCK_O=max(16, next_power_of_2(out_channels)),
        BLOCK_ALL_C=next_power_of_2(c))
    zero_numel = accumulators.numel()
    sums_offset = zero_numel - 2 * n * c
    grad_gamma = grad_beta = None
    coefficients = stats  # the hard gate never reads them
    with zeroed_on_error(accumulators):
        if soft:
            _backward_sums_kernel[grid](*pointers, w_up, w_low, gamma, beta,
                                        stats, n * groups, accumulators,
                                        sums_offset, *sizes, threshold,
                                        GAMMA_SUM_EPS, **settings)
            coefficients = scratch('sru.coefficients', (2, n * groups),
                                   torch.float32, x.device)
            grad_gamma = torch.empty(c, dtype=torch.float32, device=x.device)
            grad_beta = torch.empty_like(grad_gamma)
            _backward_affine_kernel[(1, )](
                accumulators,
                sums_offset,
                gamma,
                beta,
                coefficients,
                grad_gamma,
                grad_beta,
                n,
                c,
                groups,
                h * w,
                GAMMA_SUM_EPS,
                BLOCK_C=next_power_of_2(c))
        grad_x = torch.empty_like(x)
        _backward_input_kernel[grid](
            *pointers,
            grad_x,
            w_up,
            w_low,
            grad_w_up,
            grad_w_low,
            gamma,
            beta,
            stats,
            n * groups,
            coefficients,
            accumulators,
            zero_numel,
            *sizes,
            threshold,
            GAMMA_SUM_EPS,
            SOFT=soft,
            **settings)
    return grad_x, grad_gamma, grad_beta, grad_w_up, grad_w_low

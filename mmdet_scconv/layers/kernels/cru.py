"""The whole CRU after its squeeze convolutions in two Triton launches and
no convolution call, and the gradients of its two branches: the CRU's side
of the registered ops of :mod:`..ops.scconv`.

From the squeezed ``X_up`` and ``X_low`` (full resolution):

* :func:`pooled_sums` reads both once and adds up what the pooled
  statistics ``S1 = GAP(Y1)`` and ``S2 = GAP(Y2)`` need. Both are linear in
  the inputs: ``GAP(PWC(X)) = W GAP(X)`` for a 1x1 convolution without bias,
  and ``sum(GWC(X_up))[o] = sum_{c, tap} W[o, c, tap] T[c, tap]`` where
  ``T[c, tap]`` sums ``X_up[c]`` over the input pixels that tap reads (a
  lattice set by the stride, the dilation and the padding). So no
  convolution output is needed for them, and the sums of the pooled
  (strided) pointwise inputs come from the full-resolution ones, each pixel
  weighted by one over the size of its pooling window. The deploy form's
  squeeze GEMM adds them up itself as it stores ``X_up`` and ``X_low``
  (:func:`add_tile_sums`), and this pass is skipped.
* :func:`cru_forward` computes, tile by tile of output pixels and channels,
  ``Y1 = GWC(X_up) + PWC1(pool(X_up))`` (the grouped convolution as an
  implicit GEMM over its taps), ``Y2 = cat(PWC2(pool(X_low)), pool(X_low))``
  and writes ``Y = Y2 + beta1 (Y1 - Y2)``, with a folded BatchNorm's scale
  and shift if any. ``pool`` is :meth:`CRU.downsample` (a ``stride x
  stride`` mean, ceil mode, padding excluded) taken on the fly.

Against cuDNN's convolutions and the fuse kernels this writes only the
output: no ``GWC``/``PWC`` output, no pooled tensor and no ``Y1`` goes
through memory, and one layer's CRU after the squeeze is two kernels (and
the zeroing of their small sums buffer) instead of three convolutions,
their weight casts, a sum and two fuse kernels.

* :func:`branch_grads` is the backward's share: it computes the branches
  once more for ``dL/dbeta1`` (storing the pooled inputs of a strided CRU
  as it goes) and writes ``dY1`` and ``dY2``; the convolutions' gradients
  are cuDNN's (:mod:`..ops.cru`).
"""
import torch
import triton
import triton.language as tl

from ..cru import strided_size
from ._layout import (dense, empty_like_layout, kernel_arg, layout_of,
                      next_power_of_2, strides, sums_length)
from ._tiles import (dot_block_k, dot_options, load_tile, pool_weight,
                     program_tile, store_tile)
from ._workspace import scratch

_SUMS_BLOCK_P = 32
_BLOCK_P = 64
_MAX_BLOCK_C = 128


@triton.jit
def _on_lattice(h, out_size, offset, STRIDE: tl.constexpr):
    """Whether some output row ``r < out_size`` reads input row ``h`` through
    a tap at ``offset``: ``h = r * STRIDE + offset``."""
    t = h - offset
    return (t >= 0) & (t % STRIDE == 0) & (t // STRIDE < out_size)


@triton.jit
def sums_rows(sums_ptr, n, C_up, C_low, KERNEL: tl.constexpr):
    """Sample ``n``'s tap sums and pooled sums in a :func:`pooled_sums`
    buffer."""
    taps_row = sums_ptr + n * (C_up * (KERNEL * KERNEL + 1) + C_low)
    return taps_row, taps_row + C_up * KERNEL * KERNEL


@triton.jit
def add_tile_sums(x, p, c, c_mask, taps_row, pooled_row, H, W, Ho, Wo, pad,
                  dilation, TAPS: tl.constexpr, KERNEL: tl.constexpr,
                  STRIDE: tl.constexpr):
    """Add a tile's share of :func:`pooled_sums` (``x``: pixels ``p`` of the
    full-resolution input, zero where out of range; channels ``c``): the
    pooled sums at ``pooled_row``, and with ``TAPS`` the tap sums at
    ``taps_row``."""
    h = p // W
    w = p % W
    weight = pool_weight(h, H, STRIDE) * pool_weight(w, W, STRIDE)
    tl.atomic_add(
        pooled_row + c, tl.sum(x * weight[:, None], axis=0), mask=c_mask)
    if TAPS:
        for i in tl.static_range(KERNEL):
            rows = _on_lattice(h, Ho, i * dilation - pad, STRIDE)
            for j in tl.static_range(KERNEL):
                read = rows & _on_lattice(w, Wo, j * dilation - pad, STRIDE)
                tl.atomic_add(
                    taps_row + c * (KERNEL * KERNEL) + i * KERNEL + j,
                    tl.sum(tl.where(read[:, None], x, 0.0), axis=0),
                    mask=c_mask)


@triton.jit
def _pooled_sums_kernel(up_ptr, low_ptr, sums_ptr, C_up, C_low, H, W, Ho, Wo,
                        pad, dilation, up_sn, up_sc, up_sp, low_sn, low_sc,
                        low_sp, KERNEL: tl.constexpr, STRIDE: tl.constexpr,
                        BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """Axis 2 walks ``X_up``'s channel blocks (tap and pooled sums), then
    ``X_low``'s (pooled sums)."""
    n = tl.program_id(0)
    p = tl.program_id(1) * BLOCK_P + tl.arange(0, BLOCK_P)
    p_mask = (p < H * W)[:, None]
    taps_row, pooled_row = sums_rows(sums_ptr, n, C_up, C_low, KERNEL)
    up_blocks = tl.cdiv(C_up, BLOCK_C)
    c_block = tl.program_id(2)
    if c_block < up_blocks:
        c = c_block * BLOCK_C + tl.arange(0, BLOCK_C)
        c_mask = c < C_up
        x = load_tile(up_ptr, n, p, c, p_mask & c_mask[None, :], up_sn, up_sc,
                      up_sp)
        add_tile_sums(x, p, c, c_mask, taps_row, pooled_row, H, W, Ho, Wo, pad,
                      dilation, True, KERNEL, STRIDE)
    else:
        c = (c_block - up_blocks) * BLOCK_C + tl.arange(0, BLOCK_C)
        c_mask = c < C_low
        x = load_tile(low_ptr, n, p, c, p_mask & c_mask[None, :], low_sn,
                      low_sc, low_sp)
        add_tile_sums(x, p, c, c_mask, taps_row, pooled_row + C_up, H, W, Ho,
                      Wo, pad, dilation, False, KERNEL, STRIDE)


@triton.jit
def _pooled_tile(ptr, n, ho, wo, p_mask, c, c_mask, H, W, stride_n, stride_c,
                 stride_p, STRIDE: tl.constexpr):
    """``pool(X)`` at output pixels ``(ho, wo)``: the mean of the
    ``STRIDE x STRIDE`` window inside the input (fp32)."""
    if STRIDE == 1:
        pooled = load_tile(ptr, n, ho * W + wo, c,
                           p_mask[:, None] & c_mask[None, :], stride_n,
                           stride_c, stride_p)
    else:
        total = tl.zeros((ho.shape[0], c.shape[0]), tl.float32)
        for di in tl.static_range(STRIDE):
            for dj in tl.static_range(STRIDE):
                h = ho * STRIDE + di
                w = wo * STRIDE + dj
                inside = p_mask & (h < H) & (w < W)
                total += load_tile(ptr, n, h * W + w, c,
                                   inside[:, None] & c_mask[None, :], stride_n,
                                   stride_c, stride_p)
        pooled = total * (pool_weight(ho * STRIDE, H, STRIDE) *
                          pool_weight(wo * STRIDE, W, STRIDE))[:, None]
    return pooled


@triton.jit
def _pointwise(x_ptr, w_ptr, sums_ptr, n, ho, wo, p_mask, o, o_mask, K, H, W,
               x_sn, x_sc, x_sp, acc, s, STRIDE: tl.constexpr,
               DOT_DTYPE: tl.constexpr, PRECISION: tl.constexpr,
               BLOCK_K: tl.constexpr):
    """A 1x1 convolution of ``pool(X)``, tile and pooled sums: ``acc +=
    pool(X)[n, p, :] @ W[o, :]^T`` and ``s += W[o, :] @ sums`` (``W`` is
    ``(outputs, K)``, ``sums`` the pixel sums of ``pool(X)``)."""
    for start in range(0, K, BLOCK_K):
        k = start + tl.arange(0, BLOCK_K)
        k_mask = k < K
        x = _pooled_tile(x_ptr, n, ho, wo, p_mask, k, k_mask, H, W, x_sn, x_sc,
                         x_sp, STRIDE)
        w = tl.load(
            w_ptr + o[None, :] * K + k[:, None],
            mask=k_mask[:, None] & o_mask[None, :],
            other=0.0)
        acc = tl.dot(
            x.to(DOT_DTYPE), w.to(DOT_DTYPE), acc, input_precision=PRECISION)
        total = tl.load(sums_ptr + k, mask=k_mask, other=0.0)
        s += tl.sum(w * total[:, None], axis=0)
    return acc, s


@triton.jit
def _grouped_conv(x_ptr, w_ptr, taps_row, n, ho, wo, p_mask, o, o_mask, C,
                  C_in, H, W, pad, dilation, groups, x_sn, x_sc, x_sp, w_so,
                  w_sc, w_sh, w_sw, acc, s, KERNEL: tl.constexpr,
                  STRIDE: tl.constexpr, DOT_DTYPE: tl.constexpr,
                  PRECISION: tl.constexpr, BLOCK_C: tl.constexpr,
                  BLOCK_K: tl.constexpr):
    """The grouped ``KERNEL x KERNEL`` convolution's tile as an implicit
    GEMM, and its pixel sums: ``s += sum_{c, tap} W[o, c, tap] T[c, tap]``
    (``T`` at ``taps_row``, see :func:`pooled_sums`).
    Each tap multiplies the shifted input by a block-diagonal weight; only
    the input channels of the groups of this program's outputs are read.
    The weight is read through its strides (``w_s*``), in any layout."""
    group_in = C_in // groups
    group_out = C // groups
    first_out = tl.program_id(2) * BLOCK_C
    last_out = tl.minimum(C, first_out + BLOCK_C) - 1
    k_start = (first_out // group_out) * group_in
    k_end = (last_out // group_out + 1) * group_in
    group = o // group_out
    taps = KERNEL * KERNEL
    for tap in range(taps):
        h = ho * STRIDE + (tap // KERNEL) * dilation - pad
        w = wo * STRIDE + (tap % KERNEL) * dilation - pad
        inside = p_mask & (h >= 0) & (h < H) & (w >= 0) & (w < W)
        for start in range(k_start, k_end, BLOCK_K):
            k = start + tl.arange(0, BLOCK_K)
            k_mask = k < k_end
            x = load_tile(x_ptr, n, h * W + w, k,
                          inside[:, None] & k_mask[None, :], x_sn, x_sc, x_sp)
            in_group = (k[:, None] // group_in) == group[None, :]
            weight = tl.load(
                w_ptr + o[None, :] * w_so +
                (k[:, None] - group[None, :] * group_in) * w_sc +
                (tap // KERNEL) * w_sh + (tap % KERNEL) * w_sw,
                mask=in_group & k_mask[:, None] & o_mask[None, :],
                other=0.0)
            acc = tl.dot(
                x.to(DOT_DTYPE),
                weight.to(DOT_DTYPE),
                acc,
                input_precision=PRECISION)
            total = tl.load(taps_row + k * taps + tap, mask=k_mask, other=0.0)
            s += tl.sum(weight * total[:, None], axis=0)
    return acc, s


@triton.jit
def _branches(up_ptr, low_ptr, w_gwc_ptr, w_up_ptr, w_low_ptr, sums_ptr, n, p,
              c, C, C_up, C_low, C_p, H, W, Wo, HWo, pad, dilation, groups,
              up_sn, up_sc, up_sp, low_sn, low_sc, low_sp, w_so, w_sc, w_sh,
              w_sw, KERNEL: tl.constexpr, STRIDE: tl.constexpr,
              DOT_DTYPE: tl.constexpr, PRECISION: tl.constexpr,
              BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
              BLOCK_K: tl.constexpr):
    """The tiles of ``Y1`` and ``Y2`` at output pixels ``p``, channels
    ``c``, and ``beta1`` of those channels."""
    p_mask = p < HWo
    c_mask = c < C
    in_p = c < C_p
    ho = p // Wo
    wo = p % Wo
    zeros = tl.zeros((BLOCK_P, BLOCK_C), tl.float32)
    taps_row, pooled_row = sums_rows(sums_ptr, n, C_up, C_low, KERNEL)
    # Y1 = GWC(X_up) + PWC1(pool(X_up)), and its pixel sums S1.
    y1, s1 = _grouped_conv(up_ptr, w_gwc_ptr, taps_row, n, ho, wo, p_mask, c,
                           c_mask, C, C_up, H, W, pad, dilation, groups, up_sn,
                           up_sc, up_sp, w_so, w_sc, w_sh, w_sw, zeros,
                           tl.zeros((BLOCK_C, ), tl.float32), KERNEL, STRIDE,
                           DOT_DTYPE, PRECISION, BLOCK_C, BLOCK_K)
    y1, s1 = _pointwise(up_ptr, w_up_ptr, pooled_row, n, ho, wo, p_mask, c,
                        c_mask, C_up, H, W, up_sn, up_sc, up_sp, y1, s1,
                        STRIDE, DOT_DTYPE, PRECISION, BLOCK_K)
    # Y2 = cat(PWC2(pool(X_low)), pool(X_low)), and S2, branch by branch.
    low_sums = pooled_row + C_up
    y2, s2 = _pointwise(
        low_ptr, w_low_ptr, low_sums, n, ho, wo, p_mask, c, c_mask & in_p,
        C_low, H, W, low_sn, low_sc, low_sp, zeros,
        tl.load(low_sums + c - C_p, mask=c_mask & ~in_p,
                other=0.0), STRIDE, DOT_DTYPE, PRECISION, BLOCK_K)
    y2 += _pooled_tile(low_ptr, n, ho, wo, p_mask, c - C_p, c_mask & ~in_p, H,
                       W, low_sn, low_sc, low_sp, STRIDE)
    return y1, y2, tl.sigmoid((s1 - s2) / HWo)


@triton.jit
def _cru_kernel(up_ptr, low_ptr, w_gwc_ptr, w_up_ptr, w_low_ptr, sums_ptr,
                sums_offset, scale_ptr, shift_ptr, out_ptr, C, C_up, C_low,
                C_p, H, W, Wo, HWo, pad, dilation, groups, up_sn, up_sc, up_sp,
                low_sn, low_sc, low_sp, w_so, w_sc, w_sh, w_sw, out_sn, out_sc,
                out_sp, KERNEL: tl.constexpr, STRIDE: tl.constexpr,
                HAS_AFFINE: tl.constexpr, DOT_DTYPE: tl.constexpr,
                PRECISION: tl.constexpr, BLOCK_P: tl.constexpr,
                BLOCK_C: tl.constexpr, BLOCK_K: tl.constexpr):
    n, p, c, mask = program_tile(HWo, C, BLOCK_P, BLOCK_C)
    c_mask = c < C
    y1, y2, beta1 = _branches(up_ptr, low_ptr, w_gwc_ptr, w_up_ptr, w_low_ptr,
                              sums_ptr + sums_offset, n, p, c, C, C_up, C_low,
                              C_p, H, W, Wo, HWo, pad, dilation, groups, up_sn,
                              up_sc, up_sp, low_sn, low_sc, low_sp, w_so, w_sc,
                              w_sh, w_sw, KERNEL, STRIDE, DOT_DTYPE, PRECISION,
                              BLOCK_P, BLOCK_C, BLOCK_K)
    y = y2 + beta1[None, :] * (y1 - y2)
    if HAS_AFFINE:
        scale = tl.load(scale_ptr + c, mask=c_mask, other=0.0)
        shift = tl.load(shift_ptr + c, mask=c_mask, other=0.0)
        y = y * scale[None, :] + shift[None, :]
    store_tile(out_ptr, y, n, p, c, mask, out_sn, out_sc, out_sp)


@triton.jit
def _store_pooled(x_ptr, out_ptr, n, p, ho, wo, p_mask, C_in, H, W, x_sn, x_sc,
                  x_sp, out_sn, out_sc, out_sp, STRIDE: tl.constexpr,
                  BLOCK_K: tl.constexpr):
    """Store ``pool(X)`` at output pixels ``p`` (``(ho, wo)``), every
    channel."""
    for start in range(0, C_in, BLOCK_K):
        k = start + tl.arange(0, BLOCK_K)
        k_mask = k < C_in
        pooled = _pooled_tile(x_ptr, n, ho, wo, p_mask, k, k_mask, H, W, x_sn,
                              x_sc, x_sp, STRIDE)
        store_tile(out_ptr, pooled, n, p, k, p_mask[:, None] & k_mask[None, :],
                   out_sn, out_sc, out_sp)


@triton.jit
def _grad_beta_kernel(up_ptr, low_ptr, w_gwc_ptr, w_up_ptr, w_low_ptr,
                      sums_ptr, sums_offset, grad_ptr, out_ptr, pooled_up_ptr,
                      pooled_low_ptr, C, C_up, C_low, C_p, H, W, Wo, HWo, pad,
                      dilation, groups, up_sn, up_sc, up_sp, low_sn, low_sc,
                      low_sp, w_so, w_sc, w_sh, w_sw, g_sn, g_sc, g_sp, pu_sn,
                      pu_sc, pu_sp, pl_sn, pl_sc, pl_sp, KERNEL: tl.constexpr,
                      STRIDE: tl.constexpr, DOT_DTYPE: tl.constexpr,
                      PRECISION: tl.constexpr, BLOCK_P: tl.constexpr,
                      BLOCK_C: tl.constexpr, BLOCK_K: tl.constexpr):
    """``dL/dbeta1[n, c] = sum_p dY (Y1 - Y2)`` with the branches computed
    again (they were never stored), added into ``out[0]``; ``beta1`` itself
    stored in ``out[1]`` (both ``(N, C)``). With a stride, the first
    channel block also stores ``pool(X_up)`` and ``pool(X_low)`` (the
    pointwise convolutions' inputs, for their gradients)."""
    n, p, c, mask = program_tile(HWo, C, BLOCK_P, BLOCK_C)
    y1, y2, beta1 = _branches(up_ptr, low_ptr, w_gwc_ptr, w_up_ptr, w_low_ptr,
                              sums_ptr + sums_offset, n, p, c, C, C_up, C_low,
                              C_p, H, W, Wo, HWo, pad, dilation, groups, up_sn,
                              up_sc, up_sp, low_sn, low_sc, low_sp, w_so, w_sc,
                              w_sh, w_sw, KERNEL, STRIDE, DOT_DTYPE, PRECISION,
                              BLOCK_P, BLOCK_C, BLOCK_K)
    grad = load_tile(grad_ptr, n, p, c, mask, g_sn, g_sc, g_sp)
    tl.atomic_add(
        out_ptr + n * C + c, tl.sum(grad * (y1 - y2), axis=0), mask=c < C)
    if tl.program_id(1) == 0:
        tl.store(
            out_ptr + tl.num_programs(0) * C + n * C + c, beta1, mask=c < C)
    if STRIDE > 1:
        if tl.program_id(2) == 0:
            ho = p // Wo
            wo = p % Wo
            p_mask = p < HWo
            _store_pooled(up_ptr, pooled_up_ptr, n, p, ho, wo, p_mask, C_up, H,
                          W, up_sn, up_sc, up_sp, pu_sn, pu_sc, pu_sp, STRIDE,
                          BLOCK_K)
            _store_pooled(low_ptr, pooled_low_ptr, n, p, ho, wo, p_mask, C_low,
                          H, W, low_sn, low_sc, low_sp, pl_sn, pl_sc, pl_sp,
                          STRIDE, BLOCK_K)


@triton.jit
def _branch_grads_kernel(grad_ptr, beta_ptr, y1_ptr, p_ptr, reuse_ptr, C, C_p,
                         HWo, g_sn, g_sc, g_sp, y1_sn, y1_sc, y1_sp, p_sn,
                         p_sc, p_sp, r_sn, r_sc, r_sp, BLOCK_P: tl.constexpr,
                         BLOCK_C: tl.constexpr):
    """The gradients of the two branches from the output's:
    ``dY1 = beta1 dY + ds`` and ``dY2 = beta2 dY - ds`` with ``ds =
    dL/dbeta1 beta1 beta2 / HW`` (the pooled statistics spread it evenly);
    ``dY2`` split into its ``PWC2`` channels and its reused ``X_low``.
    ``beta`` holds ``dL/dbeta1`` and ``beta1`` (:func:`_grad_beta_kernel`).
    """
    n, p, c, mask = program_tile(HWo, C, BLOCK_P, BLOCK_C)
    c_mask = c < C
    grad = load_tile(grad_ptr, n, p, c, mask, g_sn, g_sc, g_sp)
    grad_beta = tl.load(beta_ptr + n * C + c, mask=c_mask, other=0.0)
    beta1 = tl.load(
        beta_ptr + tl.num_programs(0) * C + n * C + c, mask=c_mask, other=0.0)
    ds = (grad_beta * beta1 * (1.0 - beta1) / HWo)[None, :]
    store_tile(y1_ptr, beta1[None, :] * grad + ds, n, p, c, mask, y1_sn, y1_sc,
               y1_sp)
    grad_y2 = (1.0 - beta1[None, :]) * grad - ds
    in_p = (c < C_p)[None, :]
    store_tile(p_ptr, grad_y2, n, p, c, mask & in_p, p_sn, p_sc, p_sp)
    store_tile(reuse_ptr, grad_y2, n, p, c - C_p, mask & ~in_p, r_sn, r_sc,
               r_sp)


def _block(channels, limit=_MAX_BLOCK_C):
    return max(16, min(next_power_of_2(channels), limit))


def pooled_sums(x_up, x_low, kernel_size, stride, dilation):
    """What the CRU's pooled statistics need (:func:`sums_length`), fp32,
    from one read of each squeezed input."""
    n, c_up, h, w = x_up.shape
    c_low = x_low.shape[1]
    sums = torch.zeros(
        sums_length(n, c_up, c_low, kernel_size),
        dtype=torch.float32,
        device=x_up.device)
    block_c = _block(max(c_up, c_low), 64)
    grid = (n, triton.cdiv(h * w, _SUMS_BLOCK_P),
            triton.cdiv(c_up, block_c) + triton.cdiv(c_low, block_c))
    _pooled_sums_kernel[grid](
        x_up,
        x_low,
        sums,
        c_up,
        c_low,
        h,
        w,
        *geometry(h, w, kernel_size, stride, dilation),
        *strides(x_up),
        *strides(x_low),
        KERNEL=kernel_size,
        STRIDE=stride,
        BLOCK_P=_SUMS_BLOCK_P,
        BLOCK_C=block_c)
    return sums


def geometry(h, w, kernel_size, stride, dilation):
    """``(Ho, Wo, pad, dilation)`` of the grouped convolution."""
    return (strided_size(h, stride), strided_size(w, stride),
            dilation * (kernel_size // 2), dilation)


def cru_launch(channels, c_up, c_low, groups, dtype) -> dict:
    """Default launch settings of :func:`cru_forward`'s kernel (and the
    backward's), for operands in ``dtype``."""
    block_c = _block(channels)
    # A block inside one group of the grouped convolution reads only that
    # group's input channels.
    group_out = channels // groups
    if group_out % 16 == 0 and next_power_of_2(group_out) == group_out:
        block_c = min(block_c, group_out)
    return dict(
        BLOCK_P=_BLOCK_P,
        BLOCK_C=block_c,
        BLOCK_K=_block(
            max(c_up // groups, c_low), dot_block_k(dtype, block_c)),
        # Two (pixels x block_c) fp32 accumulators.
        num_warps=8 if block_c >= 64 else 4)


class _Problem:
    """One CRU's kernel arguments shared by :func:`cru_forward` and
    :func:`cru_backward`: the squeezed inputs, the weights as kernel
    arguments, the sums, the geometry and the launch settings."""

    def __init__(self,
                 x_up,
                 x_low,
                 weights,
                 stride,
                 dilation,
                 groups,
                 dtype,
                 sums=None,
                 sums_offset=0,
                 launch=None):
        self.x_up, self.x_low = dense(x_up), dense(x_low)
        self.dtype = dtype or x_up.dtype
        n, c_up, h, w = self.x_up.shape
        w_gwc = weights[0]
        channels, _, kernel_size, _ = w_gwc.shape
        c_low, c_p = self.x_low.shape[1], weights[2].shape[0]
        if sums is None:
            sums = pooled_sums(self.x_up, self.x_low, kernel_size, stride,
                               dilation)
        self.sums, self.sums_offset = sums, sums_offset
        ho, wo, pad, _ = geometry(h, w, kernel_size, stride, dilation)
        self.out_shape = (n, channels, ho, wo)
        self.settings = dict(
            cru_launch(channels, c_up, c_low, groups, self.dtype), **launch
            or {})
        self.grid = (n, triton.cdiv(ho * wo, self.settings['BLOCK_P']),
                     triton.cdiv(channels, self.settings['BLOCK_C']))
        # The grouped weight is read through its strides (a channels-last
        # model's is not contiguous); the 1x1 weights always are.
        self.inputs = (self.x_up, self.x_low, w_gwc,
                       *[kernel_arg(t)
                         for t in weights[1:]], sums, sums_offset)
        self.sizes = (channels, c_up, c_low, c_p, h, w, wo, ho * wo, pad,
                      dilation, groups, *strides(self.x_up),
                      *strides(self.x_low), *w_gwc.stride())
        self.constants = dict(
            KERNEL=kernel_size,
            STRIDE=stride,
            **dot_options(self.dtype, self.x_up.device),
            **self.settings)

    def empty_output(self, channels=None):
        n, out_channels, ho, wo = self.out_shape
        return empty_like_layout(
            self.x_up, channels or out_channels, self.dtype, size=(ho, wo))


def cru_forward(x_up,
                x_low,
                gwc_weight,
                pwc_up_weight,
                pwc_low_weight,
                stride,
                dilation,
                groups,
                out_affine=None,
                dtype=None,
                sums=None,
                sums_offset=0,
                launch=None):
    """:class:`CRU` from its squeezed inputs (Eq. 6-10), without autograd
    (the registered ops of :mod:`..ops.scconv` train through it).

    Args:
        x_up, x_low (Tensor): ``squeeze_up`` and ``squeeze_low`` outputs,
            full resolution, same layout.
        gwc_weight (Tensor): ``(C, C_up / groups, k, k)``, any layout.
        pwc_up_weight (Tensor): ``(C, C_up, 1, 1)``.
        pwc_low_weight (Tensor): ``(C - C_low, C_low, 1, 1)``.
        stride (int), dilation (int), groups (int): The CRU's; the grouped
            convolution pads ``dilation * (k // 2)``.
        out_affine (tuple[Tensor, Tensor], optional): A folded BatchNorm's
            per-channel fp32 ``(scale, shift)``.
        dtype (torch.dtype, optional): The convolutions' dtype (autocast's):
            operands are rounded to it, accumulation is fp32. Default:
            ``x_up.dtype``.
        sums (Tensor, optional): The inputs' :func:`pooled_sums`, from
            ``sums_offset`` on, if the kernel that wrote the inputs already
            added them up (the SRU+squeeze GEMM does); else a pass of its
            own adds them up.
        sums_offset (int): See ``sums``. Default: 0.
        launch (dict, optional): Launch settings over those of
            :func:`cru_launch` (``BLOCK_P``, ``BLOCK_C``, ``BLOCK_K`` of
            at least 16, ``num_warps``, ``num_stages``), for tuning
            (``tools/analysis_tools/tune_kernels.py``).

    Returns:
        Tensor: ``(N, C, ceil(H / stride), ceil(W / stride))`` in ``x_up``'s
        layout and ``dtype``.
    """
    problem = _Problem(x_up, x_low,
                       (gwc_weight, pwc_up_weight, pwc_low_weight), stride,
                       dilation, groups, dtype, sums, sums_offset, launch)
    out = problem.empty_output()
    # Without an affine the kernel never touches these pointers.
    scale, shift = out_affine or (problem.sums, problem.sums)
    _cru_kernel[problem.grid](
        *problem.inputs,
        scale,
        shift,
        out,
        *problem.sizes,
        *strides(out),
        HAS_AFFINE=out_affine is not None,
        **problem.constants)
    return out


def branch_grads(grad,
                 x_up,
                 x_low,
                 gwc_weight,
                 pwc_up_weight,
                 pwc_low_weight,
                 stride,
                 dilation,
                 groups,
                 dtype=None,
                 sums=None,
                 sums_offset=0,
                 accumulators=None):
    """The gradients of the CRU's two branches from its output's, in two
    launches: ``dL/dbeta1`` (the branches computed once more), then
    ``dY1`` and ``dY2`` (:func:`_branch_grads_kernel`); and the pointwise
    convolutions' inputs. All of them go into reused scratch
    (:mod:`._workspace`): they are the CRU backward's own, read by its
    convolutions' gradients and never returned.

    Args:
        grad (Tensor): ``dL/dY``, the output's shape.
        accumulators (Tensor, optional): A zeroed fp32 scratch of at least
            ``2 N C`` values whose first ``2 N C`` take ``dL/dbeta1`` and
            ``beta1``; its user's last kernel zeroes them. Default: fresh
            zeros.
        Others: as :func:`cru_forward` (``sums`` as the forward had them).

    Returns:
        tuple[Tensor]: ``dY1`` (``C`` channels), and ``dY2`` as its
        ``PWC2`` channels and its reused ``X_low`` channels, in ``dtype``
        and ``grad``'s layout; then ``pool(X_up)`` and ``pool(X_low)``
        (``x_up`` and ``x_low`` themselves at stride 1).
    """
    problem = _Problem(x_up, x_low,
                       (gwc_weight, pwc_up_weight, pwc_low_weight), stride,
                       dilation, groups, dtype, sums, sums_offset)
    grad = dense(grad)
    n, channels, ho, wo = problem.out_shape
    beta = accumulators if accumulators is not None else torch.zeros(
        2 * n * channels, dtype=torch.float32, device=grad.device)
    pooled = (problem.x_up, problem.x_low)
    if stride > 1:
        pooled = tuple(
            scratch(f'cru.pooled_{name}', (
                n, t.shape[1], ho,
                wo), problem.dtype, grad.device, layout_of(problem.x_up))
            for name, t in (('up', problem.x_up), ('low', problem.x_low)))
    _grad_beta_kernel[problem.grid](*problem.inputs, grad, beta, *pooled,
                                    *problem.sizes, *strides(grad),
                                    *strides(pooled[0]), *strides(pooled[1]),
                                    **problem.constants)
    c_p = pwc_low_weight.shape[0]
    outputs = [
        scratch(f'cru.grad_{name}', (n, c, ho, wo), problem.dtype, grad.device,
                layout_of(grad))
        for name, c in (('y1', channels), ('pwc2', c_p), ('reused',
                                                          channels - c_p))
    ]
    block_c = problem.settings['BLOCK_C']
    _branch_grads_kernel[(n, triton.cdiv(ho * wo, _BLOCK_P),
                          triton.cdiv(channels, block_c))](
                              grad,
                              beta,
                              *outputs,
                              channels,
                              c_p,
                              ho * wo,
                              *strides(grad),
                              *[s for out in outputs for s in strides(out)],
                              BLOCK_P=_BLOCK_P,
                              BLOCK_C=block_c)
    return (*outputs, *pooled)

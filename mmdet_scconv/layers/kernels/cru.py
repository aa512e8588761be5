"""The CRU fuse in Triton (inference): pooled statistics, the two-branch
softmax and the weighted sum, without materialising ``Y1``'s sum or the
concatenated ``Y2 = cat(P, X_low)``.

* :func:`channel_sums` adds the per-(sample, channel) sums of ``GWC``,
  ``PWC1`` and ``X_low`` into one ``(N, C + C_low)`` buffer in one launch
  (``Y1``'s two summands land on the same columns, so ``GWC + PWC1`` is
  never added up in memory);
* :func:`fuse` reads ``GWC``, ``PWC1``, ``P`` and ``X_low`` once and writes
  ``Y = Y2 + beta1 (Y1 - Y2)`` (with a folded BatchNorm's scale and shift,
  if any): one pass over the output.
"""
import torch
import triton
import triton.language as tl

from ._layout import dense, empty_like_layout, next_power_of_2, strides

_BLOCK_P = 32
_MAX_BLOCK_C = 128


@triton.jit
def _sum_tile(x_ptr, out_ptr, n, c_block, C, HW, out_offset, out_row,
              stride_n, stride_c, stride_p, BLOCK_P: tl.constexpr,
              BLOCK_C: tl.constexpr):
    """Add one tile's per-channel sums into ``out[n, out_offset + c]``."""
    p = tl.program_id(1) * BLOCK_P + tl.arange(0, BLOCK_P)
    c = c_block * BLOCK_C + tl.arange(0, BLOCK_C)
    mask = (p[:, None] < HW) & (c[None, :] < C)
    x = tl.load(x_ptr + n * stride_n + p[:, None] * stride_p +
                c[None, :] * stride_c, mask=mask, other=0.0).to(tl.float32)
    tl.atomic_add(out_ptr + n * out_row + out_offset + c, tl.sum(x, axis=0),
                  mask=c < C)


@triton.jit
def _channel_sums_kernel(gwc_ptr, pwc_ptr, low_ptr, out_ptr, C, C_low, HW,
                         gwc_sn, gwc_sc, gwc_sp, pwc_sn, pwc_sc, pwc_sp,
                         low_sn, low_sc, low_sp, BLOCK_P: tl.constexpr,
                         BLOCK_C: tl.constexpr):
    """One launch for the three sums: ``GWC`` and ``PWC1`` both into
    ``Y1``'s columns, ``X_low`` after them. Axis 2 walks the channel blocks
    of the three tensors in turn."""
    n = tl.program_id(0)
    c_block = tl.program_id(2)
    y1_blocks = tl.cdiv(C, BLOCK_C)
    out_row = C + C_low
    if c_block < y1_blocks:
        _sum_tile(gwc_ptr, out_ptr, n, c_block, C, HW, 0, out_row, gwc_sn,
                  gwc_sc, gwc_sp, BLOCK_P, BLOCK_C)
    elif c_block < 2 * y1_blocks:
        _sum_tile(pwc_ptr, out_ptr, n, c_block - y1_blocks, C, HW, 0,
                  out_row, pwc_sn, pwc_sc, pwc_sp, BLOCK_P, BLOCK_C)
    else:
        _sum_tile(low_ptr, out_ptr, n, c_block - 2 * y1_blocks, C_low, HW, C,
                  out_row, low_sn, low_sc, low_sp, BLOCK_P, BLOCK_C)


@triton.jit
def _fuse_kernel(gwc_ptr, pwc_ptr, p_ptr, low_ptr, out_ptr, sums_ptr,
                 projected_ptr, scale_ptr, shift_ptr, C, C_p, HW, inv_hw,
                 gwc_sn, gwc_sc, gwc_sp, pwc_sn, pwc_sc, pwc_sp, p_sn, p_sc,
                 p_sp, low_sn, low_sc, low_sp, out_sn, out_sc, out_sp,
                 HAS_AFFINE: tl.constexpr, BLOCK_P: tl.constexpr,
                 BLOCK_C: tl.constexpr):
    n = tl.program_id(0)
    p = tl.program_id(1) * BLOCK_P + tl.arange(0, BLOCK_P)
    c = tl.program_id(2) * BLOCK_C + tl.arange(0, BLOCK_C)
    c_mask = c < C
    in_p = c < C_p
    mask = (p[:, None] < HW) & c_mask[None, :]
    rows = p[:, None]
    y1 = (tl.load(gwc_ptr + n * gwc_sn + rows * gwc_sp + c[None, :] * gwc_sc,
                  mask=mask, other=0.0).to(tl.float32) +
          tl.load(pwc_ptr + n * pwc_sn + rows * pwc_sp + c[None, :] * pwc_sc,
                  mask=mask, other=0.0).to(tl.float32))
    from_p = tl.load(p_ptr + n * p_sn + rows * p_sp + c[None, :] * p_sc,
                     mask=mask & in_p[None, :], other=0.0)
    from_low = tl.load(
        low_ptr + n * low_sn + rows * low_sp + (c[None, :] - C_p) * low_sc,
        mask=mask & ~in_p[None, :], other=0.0)
    y2 = tl.where(in_p[None, :], from_p, from_low).to(tl.float32)
    # S1 = GAP(Y1); S2 = GAP(Y2) = cat(PWC2(GAP(X_low)), GAP(X_low)).
    s1 = tl.load(sums_ptr + n * (2 * C - C_p) + c, mask=c_mask, other=0.0)
    s2_p = tl.load(projected_ptr + n * C_p + c, mask=in_p, other=0.0)
    s2_low = tl.load(sums_ptr + n * (2 * C - C_p) + C + c - C_p,
                     mask=c_mask & ~in_p, other=0.0)
    s2 = tl.where(in_p, s2_p, s2_low)
    beta1 = tl.sigmoid((s1 - s2) * inv_hw)
    y = y2 + beta1[None, :] * (y1 - y2)
    if HAS_AFFINE:
        scale = tl.load(scale_ptr + c, mask=c_mask, other=0.0)
        shift = tl.load(shift_ptr + c, mask=c_mask, other=0.0)
        y = y * scale[None, :] + shift[None, :]
    tl.store(out_ptr + n * out_sn + rows * out_sp + c[None, :] * out_sc,
             y.to(out_ptr.dtype.element_ty), mask=mask)


def _block_c(channels):
    return min(next_power_of_2(channels), _MAX_BLOCK_C)


def channel_sums(gwc_out, pwc_up_out, x_low):
    """Per-(sample, channel) pixel sums, fp32, shape ``(N, C + C_low)``:
    ``sum(GWC + PWC1)`` then ``sum(X_low)``."""
    n, channels, h, w = gwc_out.shape
    low = x_low.shape[1]
    sums = torch.zeros((n, channels + low), dtype=torch.float32,
                       device=gwc_out.device)
    block_c = _block_c(channels)
    grid = (n, triton.cdiv(h * w, _BLOCK_P),
            2 * triton.cdiv(channels, block_c) + triton.cdiv(low, block_c))
    _channel_sums_kernel[grid](
        gwc_out, pwc_up_out, x_low, sums, channels, low, h * w,
        *strides(gwc_out), *strides(pwc_up_out), *strides(x_low),
        BLOCK_P=_BLOCK_P, BLOCK_C=block_c)
    return sums


def fuse(gwc_out, pwc_up_out, projected, x_low, pwc_low_weight,
         out_affine=None):
    """``Y = beta1 * Y1 + beta2 * Y2`` of the CRU (Eq. 9-10), inference.

    Args:
        gwc_out, pwc_up_out (Tensor): The two summands of ``Y1``.
        projected (Tensor): ``P = PWC2(X_low)``, the first channels of Y2.
        x_low (Tensor): The squeezed (and pooled) lower part, the rest of Y2.
        pwc_low_weight (Tensor): ``PWC2``'s weight, for ``GAP(P)``.
        out_affine (tuple[Tensor, Tensor], optional): A folded BatchNorm's
            per-channel ``(scale, shift)``.

    Returns:
        Tensor: ``Y`` in ``gwc_out``'s layout and dtype.
    """
    tensors = [dense(t) for t in (gwc_out, pwc_up_out, projected, x_low)]
    gwc_out = tensors[0]
    channels, c_p = gwc_out.shape[1], projected.shape[1]
    sums = channel_sums(tensors[0], tensors[1], tensors[3])
    # A 1x1 convolution without bias commutes with the spatial sum.
    gap_p = torch.nn.functional.linear(
        sums[:, channels:], pwc_low_weight.detach().flatten(1).float())
    out = empty_like_layout(gwc_out, channels)
    scale, shift = ((t.detach().float().contiguous() for t in out_affine)
                    if out_affine is not None else (sums, sums))
    block_c = _block_c(channels)
    hw = out.shape[2] * out.shape[3]
    grid = (out.shape[0], triton.cdiv(hw, _BLOCK_P),
            triton.cdiv(channels, block_c))
    _fuse_kernel[grid](
        *tensors, out, sums, gap_p, scale, shift, channels, c_p, hw, 1.0 / hw,
        *[s for t in tensors for s in strides(t)], *strides(out),
        HAS_AFFINE=out_affine is not None, BLOCK_P=_BLOCK_P, BLOCK_C=block_c)
    return out

"""The CRU fuse in Triton: pooled statistics, the two-branch softmax and the
weighted sum, without materialising the concatenated ``Y2 = cat(P, X_low)``
(nor, at inference, ``Y1``'s sum).

* :func:`channel_sums` adds the per-(sample, channel) sums of ``GWC``,
  ``PWC1`` and ``X_low`` into one ``(N, C + C_low)`` buffer in one launch
  (``Y1``'s two summands land on the same columns, so ``GWC + PWC1`` is
  never added up in memory);
* :func:`fuse` reads ``GWC``, ``PWC1``, ``P`` and ``X_low`` once and writes
  ``Y = Y2 + beta1 (Y1 - Y2)`` (with a folded BatchNorm's scale and shift,
  if any): one pass over the output;
* :class:`CRUFuseFunction` is the same for training, with a backward of
  one reduction and one elementwise pass.
"""
import torch
import triton
import triton.language as tl

from ._layout import dense, empty_like_layout, next_power_of_2, strides
from ._tiles import load_tile, program_tile, store_tile

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
    x = load_tile(x_ptr, n, p, c, mask, stride_n, stride_c, stride_p)
    tl.atomic_add(out_ptr + n * out_row + out_offset + c, tl.sum(x, axis=0),
                  mask=c < C)


@triton.jit
def _channel_sums_kernel(gwc_ptr, pwc_ptr, low_ptr, out_ptr, C, C_low, HW,
                         gwc_sn, gwc_sc, gwc_sp, pwc_sn, pwc_sc, pwc_sp,
                         low_sn, low_sc, low_sp, HAS_PWC: tl.constexpr,
                         BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """One launch for the three sums: ``GWC`` and ``PWC1`` (if given; else
    ``gwc_ptr`` holds all of ``Y1``) both into ``Y1``'s columns, ``X_low``
    after them. Axis 2 walks the channel blocks of the tensors in turn."""
    n = tl.program_id(0)
    c_block = tl.program_id(2)
    y1_blocks = tl.cdiv(C, BLOCK_C)
    pwc_blocks = y1_blocks if HAS_PWC else 0
    out_row = C + C_low
    if c_block < y1_blocks:
        _sum_tile(gwc_ptr, out_ptr, n, c_block, C, HW, 0, out_row, gwc_sn,
                  gwc_sc, gwc_sp, BLOCK_P, BLOCK_C)
    elif c_block < y1_blocks + pwc_blocks:
        _sum_tile(pwc_ptr, out_ptr, n, c_block - y1_blocks, C, HW, 0,
                  out_row, pwc_sn, pwc_sc, pwc_sp, BLOCK_P, BLOCK_C)
    else:
        _sum_tile(low_ptr, out_ptr, n, c_block - y1_blocks - pwc_blocks,
                  C_low, HW, C, out_row, low_sn, low_sc, low_sp, BLOCK_P,
                  BLOCK_C)


@triton.jit
def _load_y2(p_ptr, low_ptr, n, p, c, mask, C_p, p_sn, p_sc, p_sp, low_sn,
             low_sc, low_sp):
    """A tile of ``Y2 = cat(P, X_low)`` without the concatenation."""
    in_p = (c < C_p)[None, :]
    from_p = load_tile(p_ptr, n, p, c, mask & in_p, p_sn, p_sc, p_sp)
    from_low = load_tile(low_ptr, n, p, c - C_p, mask & ~in_p, low_sn,
                         low_sc, low_sp)
    return tl.where(in_p, from_p, from_low)


@triton.jit
def _fuse_kernel(gwc_ptr, pwc_ptr, p_ptr, low_ptr, out_ptr, sums_ptr,
                 projected_ptr, scale_ptr, shift_ptr, beta_ptr, C, C_p, HW,
                 inv_hw, gwc_sn, gwc_sc, gwc_sp, pwc_sn, pwc_sc, pwc_sp, p_sn,
                 p_sc, p_sp, low_sn, low_sc, low_sp, out_sn, out_sc, out_sp,
                 HAS_PWC: tl.constexpr, HAS_AFFINE: tl.constexpr,
                 STORE_BETA: tl.constexpr, BLOCK_P: tl.constexpr,
                 BLOCK_C: tl.constexpr):
    n, p, c, mask = program_tile(HW, C, BLOCK_P, BLOCK_C)
    c_mask = c < C
    in_p = c < C_p
    y1 = load_tile(gwc_ptr, n, p, c, mask, gwc_sn, gwc_sc, gwc_sp)
    if HAS_PWC:
        y1 += load_tile(pwc_ptr, n, p, c, mask, pwc_sn, pwc_sc, pwc_sp)
    y2 = _load_y2(p_ptr, low_ptr, n, p, c, mask, C_p, p_sn, p_sc, p_sp,
                  low_sn, low_sc, low_sp)
    # S1 = GAP(Y1); S2 = GAP(Y2) = cat(PWC2(GAP(X_low)), GAP(X_low)).
    s1 = tl.load(sums_ptr + n * (2 * C - C_p) + c, mask=c_mask, other=0.0)
    s2_p = tl.load(projected_ptr + n * C_p + c, mask=in_p, other=0.0)
    s2_low = tl.load(sums_ptr + n * (2 * C - C_p) + C + c - C_p,
                     mask=c_mask & ~in_p, other=0.0)
    s2 = tl.where(in_p, s2_p, s2_low)
    beta1 = tl.sigmoid((s1 - s2) * inv_hw)
    if STORE_BETA:
        if tl.program_id(1) == 0:
            tl.store(beta_ptr + n * C + c, beta1, mask=c_mask)
    y = y2 + beta1[None, :] * (y1 - y2)
    if HAS_AFFINE:
        scale = tl.load(scale_ptr + c, mask=c_mask, other=0.0)
        shift = tl.load(shift_ptr + c, mask=c_mask, other=0.0)
        y = y * scale[None, :] + shift[None, :]
    store_tile(out_ptr, y, n, p, c, mask, out_sn, out_sc, out_sp)


def _block_c(channels):
    return min(next_power_of_2(channels), _MAX_BLOCK_C)


def channel_sums(gwc_out, pwc_up_out, x_low):
    """Per-(sample, channel) pixel sums, fp32, shape ``(N, C + C_low)``:
    ``sum(GWC + PWC1)`` then ``sum(X_low)``. ``pwc_up_out`` may be None,
    ``gwc_out`` then being all of ``Y1``."""
    n, channels, h, w = gwc_out.shape
    low = x_low.shape[1]
    sums = torch.zeros((n, channels + low), dtype=torch.float32,
                       device=gwc_out.device)
    has_pwc = pwc_up_out is not None
    block_c = _block_c(channels)
    grid = (n, triton.cdiv(h * w, _BLOCK_P),
            (1 + has_pwc) * triton.cdiv(channels, block_c) +
            triton.cdiv(low, block_c))
    pwc_up_out = gwc_out if pwc_up_out is None else pwc_up_out
    _channel_sums_kernel[grid](
        gwc_out, pwc_up_out, x_low, sums, channels, low, h * w,
        *strides(gwc_out), *strides(pwc_up_out), *strides(x_low),
        HAS_PWC=has_pwc, BLOCK_P=_BLOCK_P, BLOCK_C=block_c)
    return sums


def fuse(gwc_out, pwc_up_out, projected, x_low, pwc_low_weight,
         out_affine=None, with_beta=False):
    """``Y = beta1 * Y1 + beta2 * Y2`` of the CRU (Eq. 9-10).

    Args:
        gwc_out, pwc_up_out (Tensor): The two summands of ``Y1``;
            ``pwc_up_out`` may be None, ``gwc_out`` then being ``Y1``.
        projected (Tensor): ``P = PWC2(X_low)``, the first channels of Y2.
        x_low (Tensor): The squeezed (and pooled) lower part, the rest of Y2.
        pwc_low_weight (Tensor): ``PWC2``'s weight, for ``GAP(P)``.
        out_affine (tuple[Tensor, Tensor], optional): A folded BatchNorm's
            per-channel ``(scale, shift)``.
        with_beta (bool): Also return ``beta1`` (fp32, ``(N, C)``) and the
            channel sums, for the backward pass.

    Returns:
        Tensor: ``Y`` in ``gwc_out``'s layout and dtype (and ``beta1`` and
        the sums with ``with_beta``).
    """
    has_pwc = pwc_up_out is not None
    tensors = [dense(t) for t in (gwc_out, pwc_up_out if has_pwc else gwc_out,
                                  projected, x_low)]
    gwc_out = tensors[0]
    channels, c_p = gwc_out.shape[1], projected.shape[1]
    sums = channel_sums(tensors[0], tensors[1] if has_pwc else None,
                        tensors[3])
    # A 1x1 convolution without bias commutes with the spatial sum.
    gap_p = torch.nn.functional.linear(
        sums[:, channels:], pwc_low_weight.detach().flatten(1).float())
    out = empty_like_layout(gwc_out, channels)
    # Where a flag is off the kernel never touches that pointer: any tensor
    # stands in for it.
    scale, shift = ((t.detach().float().contiguous() for t in out_affine)
                    if out_affine is not None else (sums, sums))
    beta1 = (torch.empty((out.shape[0], channels), dtype=torch.float32,
                         device=out.device) if with_beta else sums)
    block_c = _block_c(channels)
    hw = out.shape[2] * out.shape[3]
    grid = (out.shape[0], triton.cdiv(hw, _BLOCK_P),
            triton.cdiv(channels, block_c))
    _fuse_kernel[grid](
        *tensors, out, sums, gap_p, scale, shift, beta1, channels, c_p, hw,
        1.0 / hw, *[s for t in tensors for s in strides(t)], *strides(out),
        HAS_PWC=has_pwc, HAS_AFFINE=out_affine is not None,
        STORE_BETA=with_beta, BLOCK_P=_BLOCK_P, BLOCK_C=block_c)
    return (out, beta1, sums) if with_beta else out


@triton.jit
def _grad_beta_kernel(grad_ptr, y1_ptr, p_ptr, low_ptr, out_ptr, C, C_p, HW,
                      g_sn, g_sc, g_sp, y1_sn, y1_sc, y1_sp, p_sn, p_sc, p_sp,
                      low_sn, low_sc, low_sp, BLOCK_P: tl.constexpr,
                      BLOCK_C: tl.constexpr):
    """``dL/dbeta1[n, c] = sum_p dY (Y1 - Y2)``, added into ``out``."""
    n, p, c, mask = program_tile(HW, C, BLOCK_P, BLOCK_C)
    grad = load_tile(grad_ptr, n, p, c, mask, g_sn, g_sc, g_sp)
    y1 = load_tile(y1_ptr, n, p, c, mask, y1_sn, y1_sc, y1_sp)
    y2 = _load_y2(p_ptr, low_ptr, n, p, c, mask, C_p, p_sn, p_sc, p_sp,
                  low_sn, low_sc, low_sp)
    tl.atomic_add(out_ptr + n * C + c, tl.sum(grad * (y1 - y2), axis=0),
                  mask=c < C)


@triton.jit
def _fuse_backward_kernel(grad_ptr, beta_ptr, ds_ptr, low_extra_ptr,
                          gy1_ptr, gp_ptr, glow_ptr, C, C_p, HW, inv_hw,
                          g_sn, g_sc, g_sp, y1_sn, y1_sc, y1_sp, p_sn, p_sc,
                          p_sp, low_sn, low_sc, low_sp, BLOCK_P: tl.constexpr,
                          BLOCK_C: tl.constexpr):
    """``dY1 = beta1 dY + ds / HW``; ``dP = beta2 dY`` and
    ``dX_low = beta2 dY + extra`` on their channels of ``Y2``."""
    n, p, c, mask = program_tile(HW, C, BLOCK_P, BLOCK_C)
    c_mask = c < C
    in_p = c < C_p
    grad = load_tile(grad_ptr, n, p, c, mask, g_sn, g_sc, g_sp)
    beta1 = tl.load(beta_ptr + n * C + c, mask=c_mask, other=0.0)
    ds = tl.load(ds_ptr + n * C + c, mask=c_mask, other=0.0)
    extra = tl.load(low_extra_ptr + n * (C - C_p) + c - C_p,
                    mask=c_mask & ~in_p, other=0.0)
    store_tile(gy1_ptr, beta1[None, :] * grad + (ds * inv_hw)[None, :], n, p,
               c, mask, y1_sn, y1_sc, y1_sp)
    grad_y2 = (1.0 - beta1[None, :]) * grad
    store_tile(gp_ptr, grad_y2, n, p, c, mask & in_p[None, :], p_sn, p_sc,
               p_sp)
    store_tile(glow_ptr, grad_y2 + extra[None, :], n, p, c - C_p,
               mask & ~in_p[None, :], low_sn, low_sc, low_sp)

class CRUFuseFunction(torch.autograd.Function):
    """:func:`fuse` for training: ``Y = Y2 + beta1 (Y1 - Y2)`` with a
    two-pass backward (one reduction for ``dL/dbeta1``, one elementwise
    pass writing the three input gradients).

    Inputs: ``y1``, ``projected`` (P), ``x_low``, ``pwc_low_weight``.
    Saves the three inputs, ``beta1`` and the channel sums (``(N, C)``
    each), as autograd would for the same ops.
    """

    @staticmethod
    def forward(ctx, y1, projected, x_low, pwc_low_weight):
        y1, projected, x_low = dense(y1), dense(projected), dense(x_low)
        y, beta1, sums = fuse(y1, None, projected, x_low, pwc_low_weight,
                              with_beta=True)
        ctx.save_for_backward(y1, projected, x_low, pwc_low_weight, beta1,
                              sums)
        return y

    @staticmethod
    def backward(ctx, grad):
        y1, projected, x_low, weight, beta1, sums = ctx.saved_tensors
        grad = dense(grad)
        n, channels, h, w = y1.shape
        c_p, hw = projected.shape[1], h * w
        block_c = _block_c(channels)
        grid = (n, triton.cdiv(hw, _BLOCK_P), triton.cdiv(channels, block_c))
        layout = [s for t in (grad, y1, projected, x_low) for s in strides(t)]
        grad_beta = torch.zeros((n, channels), dtype=torch.float32,
                                device=y1.device)
        _grad_beta_kernel[grid](grad, y1, projected, x_low, grad_beta,
                                channels, c_p, hw, *layout, BLOCK_P=_BLOCK_P,
                                BLOCK_C=block_c)
        # beta1 = sigmoid(S1 - S2): dS1 = ds, dS2 = -ds; S = sum / HW.
        ds = grad_beta * beta1 * (1 - beta1)
        weight2d = weight.flatten(1).float()
        # S2 = cat(W_p GAP(X_low), GAP(X_low)): what reaches GAP(X_low).
        low_extra = -(ds[:, c_p:] + ds[:, :c_p] @ weight2d) / hw
        grad_weight = None
        if ctx.needs_input_grad[3]:
            grad_weight = (-ds[:, :c_p].t() @ (sums[:, channels:] / hw)).view(
                weight.shape).to(weight.dtype)
        grad_y1 = torch.empty_like(y1)
        grad_p = torch.empty_like(projected)
        grad_low = torch.empty_like(x_low)
        _fuse_backward_kernel[grid](
            grad, beta1, ds, low_extra.contiguous(), grad_y1, grad_p,
            grad_low, channels, c_p, hw, 1.0 / hw, *layout,
            BLOCK_P=_BLOCK_P, BLOCK_C=block_c)
        return grad_y1, grad_p, grad_low, grad_weight

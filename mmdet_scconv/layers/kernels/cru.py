"""The CRU fuse for training in Triton: pooled statistics, the two-branch
softmax and the weighted sum, without materialising the concatenated
``Y2 = cat(P, X_low)``. (Inference runs the whole CRU after its squeeze
convolutions as one kernel: :mod:`.cru_infer`.)

* :func:`channel_sums` adds up the per-(sample, channel) sums of ``Y1`` and
  ``X_low`` into one ``(N, C + C_low)`` buffer in one launch;
* :func:`fuse` writes ``Y = Y2 + beta1 (Y1 - Y2)`` in one pass over the
  output;
* :class:`CRUFuseFunction` wraps it for autograd, with a backward of one
  reduction and one elementwise pass.
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
def _channel_sums_kernel(a_ptr, b_ptr, out_ptr, C_a, C_b, HW, a_sn, a_sc,
                         a_sp, b_sn, b_sc, b_sp, BLOCK_P: tl.constexpr,
                         BLOCK_C: tl.constexpr):
    """The sums of ``a`` and ``b`` side by side in each row of ``out``;
    axis 2 walks the channel blocks of ``a``, then those of ``b``."""
    n = tl.program_id(0)
    c_block = tl.program_id(2)
    a_blocks = tl.cdiv(C_a, BLOCK_C)
    if c_block < a_blocks:
        _sum_tile(a_ptr, out_ptr, n, c_block, C_a, HW, 0, C_a + C_b, a_sn,
                  a_sc, a_sp, BLOCK_P, BLOCK_C)
    else:
        _sum_tile(b_ptr, out_ptr, n, c_block - a_blocks, C_b, HW, C_a,
                  C_a + C_b, b_sn, b_sc, b_sp, BLOCK_P, BLOCK_C)


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
def _fuse_kernel(y1_ptr, p_ptr, low_ptr, out_ptr, sums_ptr, projected_ptr,
                 beta_ptr, C, C_p, HW, inv_hw, y1_sn, y1_sc, y1_sp, p_sn,
                 p_sc, p_sp, low_sn, low_sc, low_sp, out_sn, out_sc, out_sp,
                 BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    n, p, c, mask = program_tile(HW, C, BLOCK_P, BLOCK_C)
    c_mask = c < C
    in_p = c < C_p
    y1 = load_tile(y1_ptr, n, p, c, mask, y1_sn, y1_sc, y1_sp)
    y2 = _load_y2(p_ptr, low_ptr, n, p, c, mask, C_p, p_sn, p_sc, p_sp,
                  low_sn, low_sc, low_sp)
    # S1 = GAP(Y1); S2 = GAP(Y2) = cat(PWC2(GAP(X_low)), GAP(X_low)).
    s1 = tl.load(sums_ptr + n * (2 * C - C_p) + c, mask=c_mask, other=0.0)
    s2_p = tl.load(projected_ptr + n * C_p + c, mask=in_p, other=0.0)
    s2_low = tl.load(sums_ptr + n * (2 * C - C_p) + C + c - C_p,
                     mask=c_mask & ~in_p, other=0.0)
    beta1 = tl.sigmoid((s1 - tl.where(in_p, s2_p, s2_low)) * inv_hw)
    if tl.program_id(1) == 0:
        tl.store(beta_ptr + n * C + c, beta1, mask=c_mask)
    store_tile(out_ptr, y2 + beta1[None, :] * (y1 - y2), n, p, c, mask,
               out_sn, out_sc, out_sp)


def _block_c(channels):
    return min(next_power_of_2(channels), _MAX_BLOCK_C)


def channel_sums(a, b):
    """Per-(sample, channel) pixel sums of ``a`` and ``b`` (same ``N, H,
    W``), fp32, side by side: shape ``(N, C_a + C_b)``."""
    a, b = dense(a), dense(b)
    n, c_a, h, w = a.shape
    c_b = b.shape[1]
    sums = torch.zeros((n, c_a + c_b), dtype=torch.float32, device=a.device)
    block_c = _block_c(max(c_a, c_b))
    grid = (n, triton.cdiv(h * w, _BLOCK_P),
            triton.cdiv(c_a, block_c) + triton.cdiv(c_b, block_c))
    _channel_sums_kernel[grid](a, b, sums, c_a, c_b, h * w, *strides(a),
                               *strides(b), BLOCK_P=_BLOCK_P, BLOCK_C=block_c)
    return sums


def fuse(y1, projected, x_low, pwc_low_weight):
    """``Y = beta1 * Y1 + beta2 * Y2`` of the CRU (Eq. 9-10), from its
    materialised branches (the training forward).

    Args:
        y1 (Tensor): ``Y1 = GWC(X_up) + PWC1(X_up)``.
        projected (Tensor): ``P = PWC2(X_low)``, the first channels of Y2.
        x_low (Tensor): The squeezed (and pooled) lower part, the rest of Y2.
        pwc_low_weight (Tensor): ``PWC2``'s weight, for ``GAP(P)``.

    Returns:
        tuple[Tensor, Tensor, Tensor]: ``Y`` in ``y1``'s layout and dtype;
        ``beta1`` (fp32, ``(N, C)``) and the channel sums of ``Y1`` and
        ``X_low``, for the backward pass.
    """
    y1, projected, x_low = dense(y1), dense(projected), dense(x_low)
    channels, c_p = y1.shape[1], projected.shape[1]
    sums = channel_sums(y1, x_low)
    # A 1x1 convolution without bias commutes with the spatial sum.
    gap_p = torch.nn.functional.linear(
        sums[:, channels:], pwc_low_weight.detach().flatten(1).float())
    out = empty_like_layout(y1, channels)
    beta1 = torch.empty((out.shape[0], channels), dtype=torch.float32,
                        device=out.device)
    block_c = _block_c(channels)
    hw = out.shape[2] * out.shape[3]
    grid = (out.shape[0], triton.cdiv(hw, _BLOCK_P),
            triton.cdiv(channels, block_c))
    _fuse_kernel[grid](
        y1, projected, x_low, out, sums, gap_p, beta1, channels, c_p, hw,
        1.0 / hw, *[s for t in (y1, projected, x_low, out)
                    for s in strides(t)], BLOCK_P=_BLOCK_P, BLOCK_C=block_c)
    return out, beta1, sums


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
        y, beta1, sums = fuse(y1, projected, x_low, pwc_low_weight)
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

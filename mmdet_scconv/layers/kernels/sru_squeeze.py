"""The SRU and the CRU's two squeeze convolutions as one GEMM (``alpha=0.5``;
the deploy form's inference, and the training forward): the SRU output is
computed tile by tile as the GEMM's operand and never written to memory.

For a block of pixels the kernel walks the upper-half channels ``k`` in
chunks, computes both SRU output halves on them (GroupNorm from the saved
statistics, ``W_gamma``, gate, cross-reconstruction: :func:`.sru.sru_tile`)
and multiplies them into the two squeezed outputs::

    X_up_sq  += upper[:, k] @ W_up[:, k].T
    X_low_sq += lower[:, k] @ W_low[:, k].T

Against the separate kernels this saves writing and re-reading the SRU
output (as many channels as the input) and two convolution launches.
Operands are rounded to the convolution's dtype (the autocast dtype, or the
input's) as cuDNN's convolution would see them; accumulation is fp32.
"""
import triton
import triton.language as tl

from ..sru import GAMMA_SUM_EPS
from ._layout import (dense, empty_like_layout, kernel_arg, layout_of,
                      next_power_of_2, strides)
from ._tiles import dot_block_k, dot_options, store_tile
from ._workspace import scratch
from .cru import add_tile_sums, geometry, sums_length, sums_rows
from .sru import group_stats, inv_gamma_sum, sru_tile

_BLOCK_P = 64


@triton.jit
def _weight_tile(w_ptr, c, c_mask, out_channels, half, BLOCK_N: tl.constexpr):
    """``W[o, c]`` of a ``(out_channels, half)`` 1x1 weight as a
    ``(len(c), BLOCK_N)`` tile: the GEMM's right operand."""
    o = tl.arange(0, BLOCK_N)
    return tl.load(
        w_ptr + o[None, :] * half + c[:, None],
        mask=c_mask[:, None] & (o[None, :] < out_channels),
        other=0.0)


@triton.jit
def _sru_squeeze_kernel(x_ptr, w_up_ptr, w_low_ptr, up_ptr, low_ptr,
                        weight_ptr, bias_ptr, stats_ptr, NG, half,
                        out_channels, H, W, G, Ho, Wo, pad, dilation, stride_n,
                        stride_c, stride_p, out_sn, out_sc, out_sp, threshold,
                        gamma_eps, SOFT: tl.constexpr, ADD_SUMS: tl.constexpr,
                        KERNEL: tl.constexpr, STRIDE: tl.constexpr,
                        DOT_DTYPE: tl.constexpr, PRECISION: tl.constexpr,
                        BLOCK_P: tl.constexpr, BLOCK_K: tl.constexpr,
                        BLOCK_N: tl.constexpr, BLOCK_ALL_C: tl.constexpr):
    n = tl.program_id(0)
    p = tl.program_id(1) * BLOCK_P + tl.arange(0, BLOCK_P)
    HW = H * W
    inv_sum = inv_gamma_sum(weight_ptr, 2 * half, gamma_eps, BLOCK_ALL_C)
    acc_up = tl.zeros((BLOCK_P, BLOCK_N), tl.float32)
    acc_low = tl.zeros((BLOCK_P, BLOCK_N), tl.float32)
    for k in range(0, half, BLOCK_K):
        c = k + tl.arange(0, BLOCK_K)
        c_mask = c < half
        mask = (p[:, None] < HW) & c_mask[None, :]
        upper, lower = sru_tile(x_ptr, n, p, c, c_mask, mask, half, G,
                                stride_n, stride_c, stride_p, weight_ptr,
                                bias_ptr, stats_ptr, NG, inv_sum, threshold,
                                SOFT)
        w_up = _weight_tile(w_up_ptr, c, c_mask, out_channels, half, BLOCK_N)
        w_low = _weight_tile(w_low_ptr, c, c_mask, out_channels, half, BLOCK_N)
        acc_up = tl.dot(
            upper.to(DOT_DTYPE),
            w_up.to(DOT_DTYPE),
            acc_up,
            input_precision=PRECISION)
        acc_low = tl.dot(
            lower.to(DOT_DTYPE),
            w_low.to(DOT_DTYPE),
            acc_low,
            input_precision=PRECISION)
    o = tl.arange(0, BLOCK_N)
    out_mask = (p[:, None] < HW) & (o[None, :] < out_channels)
    store_tile(up_ptr, acc_up, n, p, o, out_mask, out_sn, out_sc, out_sp)
    store_tile(low_ptr, acc_low, n, p, o, out_mask, out_sn, out_sc, out_sp)
    if ADD_SUMS:
        # The CRU's pooled sums of what was stored (rounded to its dtype).
        taps_row, pooled_row = sums_rows(stats_ptr + 2 * NG, n, out_channels,
                                         out_channels, KERNEL)
        o_mask = o < out_channels
        stored = tl.where(out_mask, acc_up.to(up_ptr.dtype.element_ty), 0.0)
        add_tile_sums(
            stored.to(tl.float32), p, o, o_mask, taps_row, pooled_row, H, W,
            Ho, Wo, pad, dilation, True, KERNEL, STRIDE)
        stored = tl.where(out_mask, acc_low.to(low_ptr.dtype.element_ty), 0.0)
        add_tile_sums(
            stored.to(tl.float32), p, o, o_mask, taps_row,
            pooled_row + out_channels, H, W, Ho, Wo, pad, dilation, False,
            KERNEL, STRIDE)


def squeeze_launch(half, out_channels, dtype) -> dict:
    """Default launch settings of :func:`sru_squeeze`'s GEMM kernel for
    ``half`` input channels per half, ``out_channels`` per squeeze and
    operands in ``dtype``."""
    block_n = max(16, next_power_of_2(out_channels))
    return dict(
        BLOCK_P=_BLOCK_P,
        BLOCK_K=max(16,
                    min(dot_block_k(dtype, block_n), next_power_of_2(half))),
        # Two (pixels x outputs) fp32 accumulators: more warps hold
        # them in registers once they are wide (stage 3/4 of a
        # ResNet).
        num_warps=8 if block_n >= 64 else 4)


def sru_squeeze(x,
                gamma,
                beta,
                w_up,
                w_low,
                groups,
                eps,
                threshold,
                gate,
                dtype=None,
                cru_geometry=None,
                reuse=False,
                launch=None):
    """``(squeeze_up(upper), squeeze_low(lower))`` of the SRU output of
    ``x``, and the GroupNorm statistics. No autograd (the registered op
    ``mmdet_scconv::scconv`` of :mod:`..ops.scconv` trains through it).

    Args:
        x (Tensor): SCConv input, ``C`` channels (even).
        gamma, beta (Tensor): The SRU GroupNorm's own affine (the kernel
            applies ``W_gamma``).
        w_up, w_low (Tensor): The squeeze weights, ``(C_out, C/2, 1, 1)``.
        groups (int), eps (float): The GroupNorm's.
        threshold (float), gate (str): The SRU gate's.
        dtype (torch.dtype, optional): The convolutions' dtype (autocast's);
            default ``x.dtype``. fp32 products use TF32 where
            ``torch.backends.cudnn.allow_tf32`` lets cuDNN do so.
        cru_geometry (tuple, optional): ``(kernel_size, stride, dilation)``
            of the CRU that takes both outputs: the kernel then also adds
            up the CRU's pooled statistics of both (``cru.pooled_sums``)
            into the statistics tensor, after the GroupNorm's, so that
            ``cru.cru_forward`` needs no pass of its own for them.
        reuse (bool): All three outputs in reused scratch buffers
            (:mod:`._workspace`), for a caller that consumes them at once
            and never returns them (inference). Default: False.
        launch (dict, optional): Launch settings over those of
            :func:`squeeze_launch` (``BLOCK_P``, ``BLOCK_K`` of at least 16,
            ``num_warps``, ``num_stages``), for tuning
            (``tools/analysis_tools/tune_kernels.py``).

    Returns:
        tuple[Tensor, Tensor, Tensor]: Both squeezed tensors in ``x``'s
        layout and ``dtype``, then the statistics (``sru.group_stats``,
        with the CRU's sums at ``2 N groups`` if ``cru_geometry`` is given).
    """
    x = dense(x)
    dtype = dtype or x.dtype
    n, c, h, w = x.shape
    half, out_channels = c // 2, w_up.shape[0]
    kernel_size, stride, dilation = cru_geometry or (1, 1, 1)
    sums = (
        sums_length(n, out_channels, out_channels, kernel_size)
        if cru_geometry else 0)
    stats = group_stats(x, groups, eps, extra=sums, reuse=reuse)
    if reuse:
        up, low = (
            scratch(name, (n, out_channels, h, w), dtype, x.device,
                    layout_of(x)) for name in ('squeeze.up', 'squeeze.low'))
    else:
        up = empty_like_layout(x, out_channels, dtype)
        low = empty_like_layout(x, out_channels, dtype)
    settings = dict(squeeze_launch(half, out_channels, dtype), **launch or {})
    _sru_squeeze_kernel[(n, triton.cdiv(h * w, settings['BLOCK_P']))](
        x,
        kernel_arg(w_up),
        kernel_arg(w_low),
        up,
        low,
        kernel_arg(gamma),
        kernel_arg(beta),
        stats,
        n * groups,
        half,
        out_channels,
        h,
        w,
        groups,
        *geometry(h, w, kernel_size, stride, dilation),
        *strides(x),
        *strides(up),
        threshold,
        GAMMA_SUM_EPS,
        SOFT=gate == 'soft',
        ADD_SUMS=cru_geometry is not None,
        KERNEL=kernel_size,
        STRIDE=stride,
        **dot_options(dtype, x.device),
        BLOCK_N=max(16, next_power_of_2(out_channels)),
        BLOCK_ALL_C=next_power_of_2(c),
        **settings)
    return up, low, stats

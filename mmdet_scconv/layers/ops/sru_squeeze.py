"""``mmdet_scconv::sru_squeeze``: the SRU followed by the CRU's two 1x1 squeeze
convolutions, for a CRU that splits at the half (``alpha=0.5``).

One registered op with its backward op ``mmdet_scconv::sru_squeeze_backward``,
fake implementations and the autograd formula. ``kernels=True`` is one GEMM
kernel (:mod:`..kernels.sru_squeeze`) that computes the SRU output tile by
tile as its operand and never writes it, and also adds up the pooled
statistics the CRU kernel needs; ``kernels=False`` is the PyTorch twin: the
SRU halves (:mod:`.sru`) through two convolutions.

The squeeze convolutions would save the SRU output (as many channels as the
input) for their weight gradients; the backward recomputes it from the
input and the GroupNorm statistics instead, so the op saves only the input,
the statistics and the weights. The convolutions run in ``dtype``
(autocast's), as they would outside.
"""
import torch
import torch.nn.functional as F

from ..kernels._layout import empty_like_layout, sums_length
from ._common import cast, conv_grads, in_layout_of, zeros_for_none
from .sru import (gn_affine, halves_from_stats, sru_backward, sru_forward,
                  stats_tensor)


def _twin(x, gamma, beta, w_up, w_low, groups, eps, threshold, gate, dtype):
    weight, bias = gn_affine(gamma, beta, gate)
    upper, lower, mean, rstd = sru_forward(x, weight, bias, groups, eps,
                                           threshold, gate)
    return (F.conv2d(cast(upper, dtype), cast(w_up, dtype)),
            F.conv2d(cast(lower, dtype),
                     cast(w_low, dtype)), stats_tensor(mean, rstd))


@torch.library.custom_op('mmdet_scconv::sru_squeeze', mutates_args=())
def sru_squeeze(
        x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor,
        w_up: torch.Tensor, w_low: torch.Tensor, groups: int, eps: float,
        threshold: float, gate: str, dtype: torch.dtype, cru_kernel_size: int,
        cru_stride: int, cru_dilation: int,
        kernels: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``squeeze_up(upper)``, ``squeeze_low(lower)`` of the SRU output of
    ``x`` and its statistics.

    Args:
        x (Tensor): ``(N, C, H, W)``, ``C`` even.
        gamma, beta (Tensor): The SRU GroupNorm's own affine.
        w_up, w_low (Tensor): The squeeze weights, ``(C_sq, C / 2, 1, 1)``.
        groups (int), eps (float): The GroupNorm's.
        threshold (float), gate (str): The SRU gate's.
        dtype (torch.dtype): The convolutions' dtype (autocast's, or
            ``x``'s).
        cru_kernel_size (int), cru_stride (int), cru_dilation (int): The
            CRU's grouped convolution: on the kernels the statistics tensor
            also carries the CRU's pooled sums of both outputs (after the
            GroupNorm's ``2 N groups`` values), which ``mmdet_scconv::cru``
            then takes instead of a pass of its own.
        kernels (bool): Run the Triton kernel, else the PyTorch twin.

    Returns:
        tuple[Tensor, Tensor, Tensor]: Both squeezed tensors (``x``'s
        layout, ``dtype``) and the fp32 statistics.
    """
    if kernels:
        from ..kernels import sru_squeeze as squeeze_kernels
        return squeeze_kernels.sru_squeeze(
            x,
            gamma,
            beta,
            w_up,
            w_low,
            groups,
            eps,
            threshold,
            gate,
            dtype,
            cru_geometry=(cru_kernel_size, cru_stride, cru_dilation))
    return _twin(x, gamma, beta, w_up, w_low, groups, eps, threshold, gate,
                 dtype)


@sru_squeeze.register_fake
def _(x, gamma, beta, w_up, w_low, groups, eps, threshold, gate, dtype,
      cru_kernel_size, cru_stride, cru_dilation, kernels):
    n = x.shape[0]
    squeezed = empty_like_layout(x, w_up.shape[0], dtype)
    extra = sums_length(n, w_up.shape[0], w_low.shape[0],
                        cru_kernel_size) if kernels else 0
    return squeezed, torch.empty_like(squeezed), x.new_empty(
        2 * n * groups + extra, dtype=torch.float32)


@torch.library.custom_op('mmdet_scconv::sru_squeeze_backward', mutates_args=())
def sru_squeeze_backward(x: torch.Tensor, gamma: torch.Tensor,
                         beta: torch.Tensor, w_up: torch.Tensor,
                         w_low: torch.Tensor, stats: torch.Tensor,
                         grad_up: torch.Tensor, grad_low: torch.Tensor,
                         groups: int, threshold: float, gate: str,
                         dtype: torch.dtype,
                         kernels: bool) -> list[torch.Tensor]:
    """The gradients of :func:`sru_squeeze`'s outputs: ``[grad_x,
    grad_w_up, grad_w_low]``, then ``grad_gamma, grad_beta`` for the soft
    gate."""
    if kernels:
        # The kernels take the gradients back through the squeeze weights
        # and add up the weights' gradients from the SRU halves they
        # recompute tile by tile: no halves, no convolution call.
        from ..kernels import sru as sru_kernels
        grad_x, grad_gamma, grad_beta, grad_w_up, grad_w_low = (
            sru_kernels.backward(
                x,
                gamma,
                beta,
                stats,
                groups,
                threshold,
                gate,
                grad_up,
                grad_low,
                squeeze=(w_up, w_low, dtype)))
        grads = [
            cast(grad_x, x.dtype), *[
                in_layout_of(cast(g, w.dtype), w)
                for g, w in ((grad_w_up, w_up), (grad_w_low, w_low))
            ]
        ]
        if gate == 'soft':
            grads += [
                cast(grad_gamma, gamma.dtype),
                cast(grad_beta, beta.dtype)
            ]
        return grads
    upper, lower = halves_from_stats(x, gamma, beta, stats, groups, threshold,
                                     gate)
    grad_upper, grad_w_up = conv_grads(grad_up, upper, w_up, dtype)
    grad_lower, grad_w_low = conv_grads(grad_low, lower, w_low, dtype)
    grads = sru_backward(x, gamma, beta, stats, grad_upper, grad_lower, groups,
                         threshold, gate, kernels)
    return [grads[0], grad_w_up, grad_w_low, *grads[1:]]


@sru_squeeze_backward.register_fake
def _(x, gamma, beta, w_up, w_low, stats, grad_up, grad_low, groups, threshold,
      gate, dtype, kernels):
    grads = [
        torch.empty_like(x),
        torch.empty_like(w_up),
        torch.empty_like(w_low)
    ]
    if gate == 'soft':
        grads += [torch.empty_like(gamma), torch.empty_like(beta)]
    return grads


def _setup_context(ctx, inputs, output):
    (x, gamma, beta, w_up, w_low, groups, eps, threshold, gate, dtype, _, _, _,
     kernels) = inputs
    ctx.save_for_backward(x, gamma, beta, w_up, w_low, output[2])
    ctx.options = (groups, threshold, gate, dtype, kernels)
    # The statistics get no gradient: autograd need not fill one with zeros.
    ctx.set_materialize_grads(False)


def _backward(ctx, grad_up, grad_low, _):
    x, w_up = ctx.saved_tensors[0], ctx.saved_tensors[3]
    grad_up, grad_low = zeros_for_none(
        (grad_up, grad_low), (x.shape[0], w_up.shape[0], *x.shape[2:]),
        ctx.options[3], x.device)
    grads = sru_squeeze_backward(*ctx.saved_tensors, grad_up, grad_low,
                                 *ctx.options)
    grad_x, grad_w_up, grad_w_low = grads[:3]
    grad_gamma, grad_beta = grads[3:] or (None, None)
    return (grad_x, grad_gamma, grad_beta, grad_w_up, grad_w_low, *[None] * 9)


sru_squeeze.register_autograd(_backward, setup_context=_setup_context)

"""``mmdet_scconv::scconv``: a whole SCConv layer (``alpha=0.5``) for
training: the SRU, the CRU's two squeeze convolutions and the CRU.

One registered op with its backward op ``mmdet_scconv::scconv_backward``,
fake implementations and the autograd formula. On the kernels:

* forward: as ``mmdet_scconv::scconv_inference`` (the GroupNorm statistics,
  the SRU+squeeze GEMM of :mod:`..kernels.sru_squeeze`, which never writes
  the SRU output and adds up the CRU's pooled sums, and the CRU kernel), but
  the squeezed tensors and the statistics are fresh tensors that the op
  returns beside its output, for autograd to save (they get no gradient);
* backward: the CRU's branch gradients (two launches,
  :func:`..kernels.cru.branch_grads`), its three convolutions' gradients
  (one ``convolution_backward`` each), then the SRU's backward kernels
  (:func:`..kernels.sru.backward_from_cru`), which add up the CRU's input
  gradients as the convolutions leave them (undoing the pooling on the
  fly), take them back through the squeeze weights and add up those
  weights' gradients from the SRU halves they recompute. No add, no
  unpooling, no SRU half and no squeeze convolution runs on its own; what
  only the backward reads lives in reused scratch, its accumulators in one
  zeroed buffer that the last kernel leaves zeroed
  (:mod:`..kernels._workspace`).

The squeeze convolutions would save the SRU output (as many channels as the
input) for their weight gradients; the backward recomputes it from the
input and the statistics instead. The PyTorch twin composes the twins of
``mmdet_scconv::sru`` and ``mmdet_scconv::cru`` with the squeeze
convolutions. The convolutions run in ``dtype`` (autocast's), as they would
outside.
"""
import torch
import torch.nn.functional as F

from ..kernels._layout import empty_like_layout, sums_length
from ._common import cast, conv_grads, in_layout_of
from .cru import (branch_grads, conv_grads_in_pieces, cru_grads, cru_twin,
                  strided_output)
from .sru import (gn_affine, halves_from_stats, sru_backward_torch,
                  sru_forward, stats_tensor)


def squeeze_twin(x, gamma, beta, w_up, w_low, groups, eps, threshold, gate,
                 dtype):
    """The squeeze convolutions' outputs of the SRU halves of ``x``, and the
    statistics (PyTorch)."""
    weight, bias = gn_affine(gamma, beta, gate)
    upper, lower, mean, rstd = sru_forward(x, weight, bias, groups, eps,
                                           threshold, gate)
    return (F.conv2d(cast(upper, dtype), cast(w_up, dtype)),
            F.conv2d(cast(lower, dtype),
                     cast(w_low, dtype)), stats_tensor(mean, rstd))


def _gwc_groups(w_squeeze_up, w_gwc):
    return w_squeeze_up.shape[0] // w_gwc.shape[1]


def layer_forward(x,
                  gamma,
                  beta,
                  w_squeeze_up,
                  w_squeeze_low,
                  w_gwc,
                  w_pwc_up,
                  w_pwc_low,
                  groups,
                  eps,
                  threshold,
                  gate,
                  stride,
                  dilation,
                  dtype,
                  kernels,
                  affine=None,
                  reuse=False):
    """The body of :func:`scconv` and of ``mmdet_scconv::scconv_inference``:
    ``(y, up, low, stats)`` with the arguments of :func:`scconv`.

    Args:
        affine (tuple[Tensor, Tensor], optional): A folded BatchNorm's fp32
            ``(scale, shift)``, applied to ``y``. Default: None.
        reuse (bool): On the kernels, the squeezed tensors and the
            statistics in reused scratch, for a caller that keeps only
            ``y``. Default: False.
    """
    gwc_groups = _gwc_groups(w_squeeze_up, w_gwc)
    if kernels:
        from ..kernels import cru as cru_kernels
        from ..kernels import sru_squeeze as squeeze_kernels
        up, low, stats = squeeze_kernels.sru_squeeze(
            x,
            gamma,
            beta,
            w_squeeze_up,
            w_squeeze_low,
            groups,
            eps,
            threshold,
            gate,
            dtype, (w_gwc.shape[-1], stride, dilation),
            reuse=reuse)
        y = cru_kernels.cru_forward(up, low, w_gwc, w_pwc_up, w_pwc_low,
                                    stride, dilation, gwc_groups, affine,
                                    dtype, stats, 2 * x.shape[0] * groups)
        return y, up, low, stats
    up, low, stats = squeeze_twin(x, gamma, beta, w_squeeze_up, w_squeeze_low,
                                  groups, eps, threshold, gate, dtype)
    y = cru_twin(up, low, w_gwc, w_pwc_up, w_pwc_low, affine, stride, dilation,
                 gwc_groups, dtype)
    return y, up, low, stats


@torch.library.custom_op('mmdet_scconv::scconv', mutates_args=())
def scconv(
    x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor,
    w_squeeze_up: torch.Tensor, w_squeeze_low: torch.Tensor,
    w_gwc: torch.Tensor, w_pwc_up: torch.Tensor, w_pwc_low: torch.Tensor,
    groups: int, eps: float, threshold: float, gate: str, stride: int,
    dilation: int, dtype: torch.dtype, kernels: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """SCConv's output, and what its backward needs.

    Args:
        x (Tensor): ``(N, C, H, W)``, ``C`` even.
        gamma, beta (Tensor): The SRU GroupNorm's own affine.
        w_squeeze_up, w_squeeze_low (Tensor): The CRU's squeeze weights,
            ``(C_sq, C / 2, 1, 1)``.
        w_gwc, w_pwc_up, w_pwc_low (Tensor): The CRU's other weights.
        groups (int), eps (float): The GroupNorm's.
        threshold (float), gate (str): The SRU gate's.
        stride (int), dilation (int): The CRU's.
        dtype (torch.dtype): The convolutions' dtype (autocast's, or
            ``x``'s).
        kernels (bool): Run the Triton kernels, else the PyTorch twins.

    Returns:
        tuple[Tensor]: The output (``x``'s layout, ``dtype``), both squeezed
        tensors and the fp32 statistics (the GroupNorm's mean and rstd,
        then on the kernels the CRU's pooled sums).
    """
    return layer_forward(x, gamma, beta, w_squeeze_up, w_squeeze_low, w_gwc,
                         w_pwc_up, w_pwc_low, groups, eps, threshold, gate,
                         stride, dilation, dtype, kernels)


@scconv.register_fake
def _(x, gamma, beta, w_squeeze_up, w_squeeze_low, w_gwc, w_pwc_up, w_pwc_low,
      groups, eps, threshold, gate, stride, dilation, dtype, kernels):
    n = x.shape[0]
    y = strided_output(x, w_gwc.shape[0], stride, dtype)
    squeezed = empty_like_layout(x, w_squeeze_up.shape[0], dtype)
    extra = sums_length(n, squeezed.shape[1], squeezed.shape[1],
                        w_gwc.shape[-1]) if kernels else 0
    return y, squeezed, torch.empty_like(squeezed), x.new_empty(
        2 * n * groups + extra, dtype=torch.float32)


@torch.library.custom_op('mmdet_scconv::scconv_backward', mutates_args=())
def scconv_backward(grad: torch.Tensor, x: torch.Tensor, gamma: torch.Tensor,
                    beta: torch.Tensor, w_squeeze_up: torch.Tensor,
                    w_squeeze_low: torch.Tensor, w_gwc: torch.Tensor,
                    w_pwc_up: torch.Tensor, w_pwc_low: torch.Tensor,
                    up: torch.Tensor, low: torch.Tensor, stats: torch.Tensor,
                    groups: int, threshold: float, gate: str, stride: int,
                    dilation: int, dtype: torch.dtype,
                    kernels: bool) -> list[torch.Tensor]:
    """The gradients of :func:`scconv`'s output: ``[grad_x,
    grad_w_squeeze_up, grad_w_squeeze_low, grad_w_gwc, grad_w_pwc_up,
    grad_w_pwc_low]``, then ``grad_gamma, grad_beta`` for the soft gate."""
    cru_args = (up, low, w_gwc, w_pwc_up, w_pwc_low, stats,
                2 * x.shape[0] * groups, stride, dilation,
                _gwc_groups(w_squeeze_up, w_gwc), dtype)
    if kernels:
        grad_x, grad_gamma, grad_beta, *grads = _kernels_backward(
            grad, x, gamma, beta, w_squeeze_up, w_squeeze_low, cru_args,
            groups, threshold, gate)
    else:
        grad_up, grad_low, *cru_weight_grads = cru_grads(
            grad, *cru_args, False)
        upper, lower = halves_from_stats(x, gamma, beta, stats, groups,
                                         threshold, gate)
        grad_upper, grad_w_up = conv_grads(grad_up, upper, w_squeeze_up, dtype)
        grad_lower, grad_w_low = conv_grads(grad_low, lower, w_squeeze_low,
                                            dtype)
        grad_x, grad_gamma, grad_beta = sru_backward_torch(
            x, gamma, beta, stats, groups, threshold, gate, grad_upper,
            grad_lower)
        grads = [grad_w_up, grad_w_low, *cru_weight_grads]
    grads = [cast(grad_x, x.dtype), *grads]
    if gate == 'soft':
        grads += [cast(grad_gamma, gamma.dtype), cast(grad_beta, beta.dtype)]
    return grads


def _kernels_backward(grad, x, gamma, beta, w_squeeze_up, w_squeeze_low,
                      cru_args, groups, threshold, gate):
    """The kernels' side of :func:`scconv_backward`: ``(grad_x, grad_gamma,
    grad_beta, *weight_grads)``."""
    from ..kernels import sru as sru_kernels
    from ..kernels._workspace import scratch, zeroed_on_error
    (up, low, w_gwc, w_pwc_up, w_pwc_low, stats, sums_offset, stride, dilation,
     gwc_groups, dtype) = cru_args
    n = x.shape[0]
    # The CRU's dL/dbeta1 and beta1, then the GroupNorm's sums.
    accumulators = scratch(
        'scconv.accumulators',
        (2 * n * (w_gwc.shape[0] + (x.shape[1] if gate == 'soft' else 0)), ),
        torch.float32,
        x.device,
        zeroed=True)
    with zeroed_on_error(accumulators):
        grad_y1, grad_p, grad_reused, pooled_up, pooled_low = branch_grads(
            grad, *cru_args, True, accumulators)
        (grad_up, grad_pooled_up, grad_pooled_low,
         *cru_weight_grads) = conv_grads_in_pieces(grad_y1, grad_p, up,
                                                   pooled_up, pooled_low,
                                                   w_gwc, w_pwc_up, w_pwc_low,
                                                   stride, dilation,
                                                   gwc_groups, dtype)
        (grad_x, grad_gamma, grad_beta,
         grad_w_up, grad_w_low) = sru_kernels.backward_from_cru(
             x, gamma, beta, stats, groups, threshold, gate,
             (grad_up, grad_pooled_up, grad_pooled_low, grad_reused),
             (w_squeeze_up, w_squeeze_low), dtype, stride, accumulators)
    squeeze_grads = [
        in_layout_of(cast(g, w.dtype), w)
        for g, w in ((grad_w_up, w_squeeze_up), (grad_w_low, w_squeeze_low))
    ]
    return (grad_x, grad_gamma, grad_beta, *squeeze_grads, *cru_weight_grads)


@scconv_backward.register_fake
def _(grad, x, gamma, beta, w_squeeze_up, w_squeeze_low, w_gwc, w_pwc_up,
      w_pwc_low, up, low, stats, groups, threshold, gate, stride, dilation,
      dtype, kernels):
    grads = [
        torch.empty_like(t)
        for t in (x, w_squeeze_up, w_squeeze_low, w_gwc, w_pwc_up, w_pwc_low)
    ]
    if gate == 'soft':
        grads += [torch.empty_like(gamma), torch.empty_like(beta)]
    return grads


def _setup_context(ctx, inputs, output):
    (x, gamma, beta, w_squeeze_up, w_squeeze_low, w_gwc, w_pwc_up, w_pwc_low,
     groups, _, threshold, gate, stride, dilation, dtype, kernels) = inputs
    ctx.save_for_backward(x, gamma, beta, w_squeeze_up, w_squeeze_low, w_gwc,
                          w_pwc_up, w_pwc_low, *output[1:])
    ctx.options = (groups, threshold, gate, stride, dilation, dtype, kernels)
    # Only the output gets a gradient: autograd need not fill the others'
    # with zeros.
    ctx.set_materialize_grads(False)


def _backward(ctx, grad, *_):
    if grad is None:
        return (None, ) * 16
    grads = scconv_backward(grad, *ctx.saved_tensors, *ctx.options)
    grad_x, *weight_grads = grads[:6]
    grad_gamma, grad_beta = grads[6:] or (None, None)
    return (grad_x, grad_gamma, grad_beta, *weight_grads, *[None] * 8)


scconv.register_autograd(_backward, setup_context=_setup_context)

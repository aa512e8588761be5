"""The CRU (Eq. 6-10) from its squeezed inputs, forward and backward, as
the PyTorch side of :mod:`.scconv`'s ops.

Backward: the branch gradients ``dY1 = beta1 dY + ds`` and ``dY2 = beta2 dY
- ds`` (``ds = dL/dbeta1 beta1 beta2 / HW``: the pooled statistics spread
``dL/dbeta1`` evenly; on the kernels two launches of
:func:`..kernels.cru.branch_grads`); the convolutions' input and weight
gradients come from one ``convolution_backward`` call each
(:func:`conv_grads_in_pieces`), shared by the PyTorch math and the kernels,
which hand them to the SRU's backward kernels unsummed.
"""
import torch
import torch.nn.functional as F

from .._numerics import at_least_fp32
from ..cru import downsample, strided_size
from ..kernels._layout import empty_like_layout
from ._common import cast, conv_grads


def branches(x_up, x_low, w_gwc, w_up, w_low, stride, dilation, groups, dtype):
    """``Y1 = GWC(X_up) + PWC1(pool(X_up))`` and ``Y2 = cat(PWC2(pool(X_low)),
    pool(X_low))`` in ``dtype`` (PyTorch)."""
    x_up, x_low = cast(x_up, dtype), cast(x_low, dtype)
    pooled_low = downsample(x_low, stride)
    y1 = F.conv2d(x_up, cast(w_gwc, dtype), None, stride,
                  dilation * (w_gwc.shape[-1] // 2), dilation, groups)
    y1 = y1 + F.conv2d(downsample(x_up, stride), cast(w_up, dtype))
    y2 = torch.cat([F.conv2d(pooled_low, cast(w_low, dtype)), pooled_low], 1)
    return y1, y2


def branch_weight(y1, y2):
    """``beta1 = sigmoid(S1 - S2)`` (the two-branch softmax, Eq. 8-9), at
    least fp32, ``(N, C, 1, 1)``."""
    compute = at_least_fp32(y1.dtype)
    return torch.sigmoid(
        y1.mean((2, 3), keepdim=True, dtype=compute) -
        y2.mean((2, 3), keepdim=True, dtype=compute))


def branch_grads(grad, x_up, x_low, w_gwc, w_up, w_low, stride, dilation,
                 groups, dtype):
    """``dY1``, ``dY2`` as its ``PWC2`` and reused channels, and the pooled
    inputs ``pool(X_up)``, ``pool(X_low)``: PyTorch's
    :func:`..kernels.cru.branch_grads`."""
    y1, y2 = branches(x_up, x_low, w_gwc, w_up, w_low, stride, dilation,
                      groups, dtype)
    beta1 = branch_weight(y1, y2)
    grad_beta = (grad * (y1 - y2)).sum((2, 3), keepdim=True, dtype=beta1.dtype)
    ds = grad_beta * beta1 * (1 - beta1) / y1[0, 0].numel()
    grad_y1 = (beta1 * grad + ds).to(dtype)
    grad_y2 = ((1 - beta1) * grad - ds).to(dtype)
    c_p = w_low.shape[0]
    return (grad_y1, grad_y2[:, :c_p], grad_y2[:, c_p:],
            downsample(cast(x_up, dtype),
                       stride), downsample(cast(x_low, dtype), stride))


def conv_grads_in_pieces(grad_y1, grad_p, x_up, pooled_up, pooled_low, w_gwc,
                         w_up, w_low, stride, dilation, groups, dtype):
    """The CRU's three convolutions' gradients (cuDNN's, one call each)
    from those of its branches: ``X_up``'s from the grouped convolution,
    ``pool(X_up)``'s from ``PWC1``, ``pool(X_low)``'s from ``PWC2`` (not
    yet added up nor unpooled), then the three weights'."""
    grad_up, grad_w_gwc = conv_grads(grad_y1, cast(x_up, dtype), w_gwc, dtype,
                                     stride, dilation * (w_gwc.shape[-1] // 2),
                                     dilation, groups)
    grad_pooled_up, grad_w_up = conv_grads(grad_y1, pooled_up, w_up, dtype)
    grad_pooled_low, grad_w_low = conv_grads(grad_p, pooled_low, w_low, dtype)
    return (grad_up, grad_pooled_up, grad_pooled_low, grad_w_gwc, grad_w_up,
            grad_w_low)


def _unpool(grad, x, stride):
    """The gradient of :func:`..cru.downsample` with respect to its input
    ``x``."""
    if stride == 1:
        return grad
    return torch.ops.aten.avg_pool2d_backward(grad, x, [stride, stride],
                                              [stride, stride], [0, 0], True,
                                              False, None)


def cru_twin(x_up, x_low, w_gwc, w_up, w_low, affine, stride, dilation, groups,
             dtype):
    """The CRU's output from its squeezed inputs in ``x_up``'s layout and
    ``dtype``, then ``affine`` (a folded BatchNorm's fp32 ``(scale,
    shift)``) if given."""
    y1, y2 = branches(x_up, x_low, w_gwc, w_up, w_low, stride, dilation,
                      groups, dtype)
    y = torch.lerp(y2, y1, branch_weight(y1, y2).to(dtype))
    if affine is not None:
        y = torch.addcmul(affine[1].to(dtype)[:, None, None], y,
                          affine[0].to(dtype)[:, None, None])
    return y.contiguous(memory_format=torch.channels_last) if (
        _channels_last(x_up)) else y.contiguous()


def _channels_last(x):
    return (not x.is_contiguous()) and x.is_contiguous(
        memory_format=torch.channels_last)


def strided_output(x, channels, stride, dtype):
    """An empty CRU output for input ``x``: ``channels`` at ``stride``, in
    ``x``'s layout and ``dtype`` (the ops' fake implementations)."""
    h, w = x.shape[-2:]
    size = (strided_size(h, stride), strided_size(w, stride))
    return empty_like_layout(x, channels, dtype, size=size)


def cru_grads(grad, x_up, x_low, w_gwc, w_up, w_low, stride, dilation, groups,
              dtype):
    """The gradients of :func:`cru_twin`'s output (without a folded
    affine): ``[grad_x_up, grad_x_low, grad_w_gwc, grad_w_up, grad_w_low]``.
    """
    grad_y1, grad_p, grad_reused, pooled_up, pooled_low = branch_grads(
        grad, x_up, x_low, w_gwc, w_up, w_low, stride, dilation, groups, dtype)
    (grad_up, grad_pooled_up, grad_pooled_low,
     *weight_grads) = conv_grads_in_pieces(grad_y1, grad_p, x_up, pooled_up,
                                           pooled_low, w_gwc, w_up, w_low,
                                           stride, dilation, groups, dtype)
    grad_up = grad_up + _unpool(grad_pooled_up, x_up, stride)
    grad_low = _unpool(grad_pooled_low + grad_reused, x_low, stride)
    return [
        cast(grad_up, x_up.dtype),
        cast(grad_low, x_low.dtype), *weight_grads
    ]

"""Helpers the ops' PyTorch sides share: casts that cost nothing when they
are no-ops, and convolution gradients from one aten call."""
import torch


def cast(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``t`` in ``dtype``, without a dispatcher call when it already is (a
    no-op ``to`` is still a trip through the dispatcher)."""
    return t if t.dtype == dtype else t.to(dtype)


def in_layout_of(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``t`` in ``like``'s memory layout (channels-last or contiguous),
    without a dispatcher call when it already is: a weight gradient in its
    parameter's layout, which autograd then stores as it is."""
    if like.is_contiguous():
        return t if t.is_contiguous() else t.contiguous()
    if t.is_contiguous(memory_format=torch.channels_last):
        return t
    return t.contiguous(memory_format=torch.channels_last)


def conv_grads(grad,
               x,
               weight,
               dtype,
               stride=1,
               padding=0,
               dilation=1,
               groups=1):
    """Input and weight gradients of ``conv2d(x, weight)`` (no bias) from
    one ``convolution_backward`` call, in ``dtype`` (the forward's, e.g.
    autocast's; the weight gradient comes back in ``weight``'s dtype).

    Returns:
        tuple[Tensor, Tensor]: The gradients of ``x`` and ``weight`` (in
        ``weight``'s layout).
    """
    grad_x, grad_w, _ = torch.ops.aten.convolution_backward(
        cast(grad, dtype), cast(x, dtype), cast(weight, dtype), None,
        [stride] * 2, [padding] * 2, [dilation] * 2, False, [0, 0], groups,
        [True, True, False])
    return grad_x, in_layout_of(cast(grad_w, weight.dtype), weight)

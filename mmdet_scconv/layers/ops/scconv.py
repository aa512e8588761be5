"""A whole SCConv layer (``alpha=0.5``) as registered ops: the SRU, the
CRU's two squeeze convolutions and the CRU.

* ``mmdet_scconv::scconv`` (training) returns the output and what its
  backward op ``mmdet_scconv::scconv_backward`` needs;
* ``mmdet_scconv::scconv_inference`` returns the output only, a folded
  BatchNorm included (the deploy form).

Each op's default implementation, for every device, is the PyTorch math
(:func:`torch_forward`, :func:`torch_backward`). The Triton kernels
(:func:`kernels_forward`, :func:`kernels_backward`) are registered with
``torch.library`` for CUDA and, where this process runs Triton's
interpreter (``TRITON_INTERPRET=1``), for the CPU; they import triton on
their first call, so the core imports without it. Before their first run on
a device and dtype they check themselves against the PyTorch math
(:mod:`..kernel_check`), so compiled models are checked too.

On the kernels the forward is four launches: the GroupNorm statistics (two),
the SRU+squeeze GEMM (:mod:`..kernels.sru_squeeze`, which never writes the
SRU output and adds up the CRU's pooled sums) and the CRU kernel. The
backward computes the CRU's branch gradients (two launches), its three
convolutions' gradients (one ``convolution_backward`` each) and hands them
unsummed to the SRU's backward kernels, which undo the pooling on the fly,
take them back through the squeeze weights and add up those weights'
gradients from the SRU halves they recompute. The squeeze convolutions
would save the SRU output for their weight gradients; the backward
recomputes it from the input and the statistics instead.

The statistics tensor holds the GroupNorm's mean and rstd (``N * groups``
each), then a slot for the CRU's pooled sums that the kernels fill (the
PyTorch math leaves it zero): the same length on every device.
"""
from typing import Optional

import torch
import torch.nn.functional as F

from .. import kernel_check
from ..kernels import triton_interpreted
from ..kernels._layout import empty_like_layout, sums_length
from ._common import cast, conv_grads, in_layout_of
from .cru import conv_grads_in_pieces, cru_grads, cru_twin, strided_output
from .sru import (gn_affine, halves_from_stats, sru_backward_torch,
                  sru_forward, stats_tensor)

#: Where the Triton kernels are registered: CUDA, and the CPU under
#: Triton's interpreter (how the tests run them without a GPU; see
#: :func:`register_cpu_kernels`).
KERNEL_DEVICES = []


def _gwc_groups(w_squeeze_up, w_gwc):
    return w_squeeze_up.shape[0] // w_gwc.shape[1]


def stats_length(n, groups, w_squeeze_up, w_gwc):
    """Values of the statistics tensor (see the module docstring)."""
    squeezed = w_squeeze_up.shape[0]
    return 2 * n * groups + sums_length(n, squeezed, squeezed, w_gwc.shape[-1])


def torch_forward(x, weights, options, affine=None):
    """``(y, up, low, stats)`` by PyTorch: the SRU halves through the
    squeeze convolutions (in ``dtype``), then the CRU, then ``affine`` (a
    folded BatchNorm's fp32 ``(scale, shift)``) if given.

    Args:
        x (Tensor): ``(N, C, H, W)``, ``C`` even.
        weights (tuple[Tensor]): ``(gamma, beta, w_squeeze_up,
            w_squeeze_low, w_gwc, w_pwc_up, w_pwc_low)``, as :func:`scconv`
            takes them.
        options (tuple): ``(groups, eps, threshold, gate, stride, dilation,
            dtype)``, likewise.
        affine (tuple[Tensor, Tensor], optional): See above.
    """
    gamma, beta, w_squeeze_up, w_squeeze_low, w_gwc, w_pwc_up, w_pwc_low = (
        weights)
    groups, eps, threshold, gate, stride, dilation, dtype = options
    weight, bias = gn_affine(gamma, beta, gate)
    upper, lower, mean, rstd = sru_forward(x, weight, bias, groups, eps,
                                           threshold, gate)
    up = F.conv2d(cast(upper, dtype), cast(w_squeeze_up, dtype))
    low = F.conv2d(cast(lower, dtype), cast(w_squeeze_low, dtype))
    y = cru_twin(up, low, w_gwc, w_pwc_up, w_pwc_low, affine, stride, dilation,
                 _gwc_groups(w_squeeze_up, w_gwc), dtype)
    stats = F.pad(
        stats_tensor(mean, rstd),
        (0, stats_length(x.shape[0], groups, w_squeeze_up, w_gwc) -
         mean.numel() * 2))
    return y, up, low, stats


def kernels_forward(x, weights, options, affine=None, reuse=False):
    """:func:`torch_forward` on the Triton kernels; with ``reuse`` the
    squeezed tensors and the statistics live in reused scratch, for a
    caller that keeps only ``y``."""
    from ..kernels import cru as cru_kernels
    from ..kernels import sru_squeeze as squeeze_kernels
    gamma, beta, w_squeeze_up, w_squeeze_low, w_gwc, w_pwc_up, w_pwc_low = (
        weights)
    groups, eps, threshold, gate, stride, dilation, dtype = options
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
                                stride, dilation,
                                _gwc_groups(w_squeeze_up, w_gwc), affine,
                                dtype, stats, 2 * x.shape[0] * groups)
    return y, up, low, stats


def torch_backward(grad, x, weights, saved, options):
    """The gradients of :func:`torch_forward`'s ``y`` by PyTorch, from what
    it returned beside it (``saved``: ``(up, low, stats)``): ``(grad_x,
    grad_gamma, grad_beta, grad_w_squeeze_up, grad_w_squeeze_low,
    grad_w_gwc, grad_w_pwc_up, grad_w_pwc_low)``, the GroupNorm's None for
    the hard gate."""
    gamma, beta, w_squeeze_up, w_squeeze_low, w_gwc, w_pwc_up, w_pwc_low = (
        weights)
    groups, _, threshold, gate, stride, dilation, dtype = options
    up, low, stats = saved
    grad_up, grad_low, *cru_weight_grads = cru_grads(
        grad, up, low, w_gwc, w_pwc_up, w_pwc_low, stride, dilation,
        _gwc_groups(w_squeeze_up, w_gwc), dtype)
    upper, lower = halves_from_stats(x, gamma, beta, stats, groups, threshold,
                                     gate)
    grad_upper, grad_w_up = conv_grads(grad_up, upper, w_squeeze_up, dtype)
    grad_lower, grad_w_low = conv_grads(grad_low, lower, w_squeeze_low, dtype)
    grad_x, grad_gamma, grad_beta = sru_backward_torch(x, gamma, beta, stats,
                                                       groups, threshold, gate,
                                                       grad_upper, grad_lower)
    return (grad_x, grad_gamma, grad_beta, grad_w_up, grad_w_low,
            *cru_weight_grads)


def kernels_backward(grad, x, weights, saved, options):
    """:func:`torch_backward` on the Triton kernels. What only the backward
    reads lives in reused scratch, its accumulators in one zeroed buffer
    that the last kernel leaves zeroed (:mod:`..kernels._workspace`)."""
    from ..kernels import cru as cru_kernels
    from ..kernels import sru as sru_kernels
    from ..kernels._workspace import scratch, zeroed_on_error
    gamma, beta, w_squeeze_up, w_squeeze_low, w_gwc, w_pwc_up, w_pwc_low = (
        weights)
    groups, _, threshold, gate, stride, dilation, dtype = options
    up, low, stats = saved
    n = x.shape[0]
    gwc_groups = _gwc_groups(w_squeeze_up, w_gwc)
    # The CRU's dL/dbeta1 and beta1, then the GroupNorm's sums.
    accumulators = scratch(
        'scconv.accumulators',
        (2 * n * (w_gwc.shape[0] + (x.shape[1] if gate == 'soft' else 0)), ),
        torch.float32,
        x.device,
        zeroed=True)
    with zeroed_on_error(accumulators):
        grad_y1, grad_p, grad_reused, pooled_up, pooled_low = (
            cru_kernels.branch_grads(grad, up, low, w_gwc, w_pwc_up, w_pwc_low,
                                     stride, dilation, gwc_groups, dtype,
                                     stats, 2 * n * groups, accumulators))
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


@torch.library.custom_op('mmdet_scconv::scconv', mutates_args=())
def scconv(
    x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor,
    w_squeeze_up: torch.Tensor, w_squeeze_low: torch.Tensor,
    w_gwc: torch.Tensor, w_pwc_up: torch.Tensor, w_pwc_low: torch.Tensor,
    groups: int, eps: float, threshold: float, gate: str, stride: int,
    dilation: int, dtype: torch.dtype
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

    Returns:
        tuple[Tensor]: The output (``x``'s layout, ``dtype``), both squeezed
        tensors and the fp32 statistics.
    """
    return torch_forward(
        x,
        (gamma, beta, w_squeeze_up, w_squeeze_low, w_gwc, w_pwc_up, w_pwc_low),
        (groups, eps, threshold, gate, stride, dilation, dtype))


@scconv.register_fake
def _(x, gamma, beta, w_squeeze_up, w_squeeze_low, w_gwc, w_pwc_up, w_pwc_low,
      groups, eps, threshold, gate, stride, dilation, dtype):
    y = strided_output(x, w_gwc.shape[0], stride, dtype)
    squeezed = empty_like_layout(x, w_squeeze_up.shape[0], dtype)
    return y, squeezed, torch.empty_like(squeezed), x.new_empty(
        stats_length(x.shape[0], groups, w_squeeze_up, w_gwc),
        dtype=torch.float32)


@torch.library.custom_op('mmdet_scconv::scconv_backward', mutates_args=())
def scconv_backward(grad: torch.Tensor, x: torch.Tensor, gamma: torch.Tensor,
                    beta: torch.Tensor, w_squeeze_up: torch.Tensor,
                    w_squeeze_low: torch.Tensor, w_gwc: torch.Tensor,
                    w_pwc_up: torch.Tensor, w_pwc_low: torch.Tensor,
                    up: torch.Tensor, low: torch.Tensor, stats: torch.Tensor,
                    groups: int, threshold: float, gate: str, stride: int,
                    dilation: int, dtype: torch.dtype) -> list[torch.Tensor]:
    """The gradients of :func:`scconv`'s output: ``[grad_x,
    grad_w_squeeze_up, grad_w_squeeze_low, grad_w_gwc, grad_w_pwc_up,
    grad_w_pwc_low]``, then ``grad_gamma, grad_beta`` for the soft gate."""
    return _backward_list(torch_backward, grad, x, gamma, beta, w_squeeze_up,
                          w_squeeze_low, w_gwc, w_pwc_up, w_pwc_low, up, low,
                          stats, groups, threshold, gate, stride, dilation,
                          dtype)


def _backward_list(backward, grad, x, *args):
    """``backward``'s gradients from :func:`scconv_backward`'s arguments,
    as that op returns them."""
    weights, saved = args[:7], args[7:10]
    groups, threshold, gate, stride, dilation, dtype = args[10:]
    grad_x, grad_gamma, grad_beta, *weight_grads = backward(
        grad, x, weights, saved,
        (groups, None, threshold, gate, stride, dilation, dtype))
    out = [cast(grad_x, x.dtype), *weight_grads]
    if gate == 'soft':
        out += [
            cast(grad_gamma, weights[0].dtype),
            cast(grad_beta, weights[1].dtype)
        ]
    return out


@scconv_backward.register_fake
def _(grad, x, gamma, beta, w_squeeze_up, w_squeeze_low, w_gwc, w_pwc_up,
      w_pwc_low, up, low, stats, groups, threshold, gate, stride, dilation,
      dtype):
    grads = [
        torch.empty_like(t)
        for t in (x, w_squeeze_up, w_squeeze_low, w_gwc, w_pwc_up, w_pwc_low)
    ]
    if gate == 'soft':
        grads += [torch.empty_like(gamma), torch.empty_like(beta)]
    return grads


def _setup_context(ctx, inputs, output):
    (x, gamma, beta, w_squeeze_up, w_squeeze_low, w_gwc, w_pwc_up, w_pwc_low,
     groups, _, threshold, gate, stride, dilation, dtype) = inputs
    ctx.save_for_backward(x, gamma, beta, w_squeeze_up, w_squeeze_low, w_gwc,
                          w_pwc_up, w_pwc_low, *output[1:])
    ctx.options = (groups, threshold, gate, stride, dilation, dtype)
    # Only the output gets a gradient: autograd need not fill the others'
    # with zeros.
    ctx.set_materialize_grads(False)


def _autograd_backward(ctx, grad, *_):
    if grad is None:
        return (None, ) * 15
    grads = scconv_backward(grad, *ctx.saved_tensors, *ctx.options)
    grad_x, *weight_grads = grads[:6]
    grad_gamma, grad_beta = grads[6:] or (None, None)
    return (grad_x, grad_gamma, grad_beta, *weight_grads, *[None] * 7)


scconv.register_autograd(_autograd_backward, setup_context=_setup_context)


@torch.library.custom_op('mmdet_scconv::scconv_inference', mutates_args=())
def scconv_inference(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor,
                     w_squeeze_up: torch.Tensor, w_squeeze_low: torch.Tensor,
                     w_gwc: torch.Tensor, w_pwc_up: torch.Tensor,
                     w_pwc_low: torch.Tensor, scale: Optional[torch.Tensor],
                     shift: Optional[torch.Tensor], groups: int, eps: float,
                     threshold: float, gate: str, stride: int, dilation: int,
                     dtype: torch.dtype) -> torch.Tensor:
    """SCConv's output without autograd (``scale * y + shift`` with a
    folded BatchNorm); the other arguments as :func:`scconv`'s."""
    return torch_forward(
        x,
        (gamma, beta, w_squeeze_up, w_squeeze_low, w_gwc, w_pwc_up, w_pwc_low),
        (groups, eps, threshold, gate, stride, dilation, dtype),
        _fp32_affine(scale, shift))[0]


def _fp32_affine(scale, shift):
    if scale is None:
        return None
    return cast(scale, torch.float32), cast(shift, torch.float32)


@scconv_inference.register_fake
def _(x, gamma, beta, w_squeeze_up, w_squeeze_low, w_gwc, w_pwc_up, w_pwc_low,
      scale, shift, groups, eps, threshold, gate, stride, dilation, dtype):
    return strided_output(x, w_gwc.shape[0], stride, dtype)


def _checked(x, dtype):
    kernel_check.kernels_checked(x, dtype, CHECK_CASES, strict=True)


def _scconv_on_kernels(x, *args):
    weights, options = args[:7], args[7:]
    _checked(x, options[-1])
    return kernels_forward(x, weights, options)


def _scconv_backward_on_kernels(*args):
    return _backward_list(kernels_backward, *args)


def _scconv_inference_on_kernels(x, *args):
    weights, (scale, shift), options = args[:7], args[7:9], args[9:]
    _checked(x, options[-1])
    return kernels_forward(
        x, weights, options, _fp32_affine(scale, shift), reuse=True)[0]


def _register_kernels(device_type):
    scconv.register_kernel(device_type)(_scconv_on_kernels)
    scconv_backward.register_kernel(device_type)(_scconv_backward_on_kernels)
    scconv_inference.register_kernel(device_type)(_scconv_inference_on_kernels)
    KERNEL_DEVICES.append(device_type)


def register_cpu_kernels():
    """Register the Triton kernels for CPU tensors too, which Triton's
    interpreter runs (done on import where ``TRITON_INTERPRET=1`` is set
    already; idempotent).

    Raises:
        RuntimeError: ``TRITON_INTERPRET=1`` is not set.
    """
    if not triton_interpreted():
        raise RuntimeError(
            "SCConv's Triton kernels run on CPU tensors only in Triton's "
            "interpreter: set TRITON_INTERPRET=1 before triton is imported.")
    if 'cpu' not in KERNEL_DEVICES:
        _register_kernels('cpu')


_register_kernels('cuda')
if triton_interpreted():
    register_cpu_kernels()


def _check_training(stride, gate):

    def run(kernels, layer):
        forward, backward = ((kernels_forward,
                              kernels_backward) if kernels else
                             (torch_forward, torch_backward))
        options = (layer.groups, layer.eps, layer.threshold, gate, stride, 1,
                   layer.dtype)
        y, *saved = forward(layer.x, layer.weights, options)
        grads = backward(
            layer.grad_of(y), layer.x, layer.weights, saved, options)
        return [y, *(g for g in grads if g is not None)]

    return run


def _check_inference(kernels, layer):
    forward = kernels_forward if kernels else torch_forward
    options = (layer.groups, layer.eps, layer.threshold, 'soft', 2, 1,
               layer.dtype)
    return [forward(layer.x, layer.weights, options, layer.affine)[0]]


#: What the kernels' self-check compares with the PyTorch math: each case a
#: function of ``(kernels, layer)`` (``layer``: the checked layer of
#: :func:`..kernel_check.checked_layer`) returning the tensors to compare.
CHECK_CASES = {
    'training, stride 1, soft gate': _check_training(1, 'soft'),
    'training, stride 2, hard gate': _check_training(2, 'hard'),
    'inference with a folded BatchNorm, stride 2': _check_inference,
}

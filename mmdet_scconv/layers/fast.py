"""The fast SCConv forward: the same equations in fewer passes over memory.

Against the reference modules (``SRU.forward`` then ``CRU.forward``):

* SRU: ``GN(X) * W_gamma`` is one GroupNorm call whose affine is
  ``(gamma * W_gamma, beta * W_gamma)``, so the scaling costs no pass of its
  own; the gates are threshold/ceil arithmetic and never materialise ``W1``
  and ``W2``; for training a hand-written backward saves only the input and
  the GroupNorm statistics, and with ``alpha=0.5`` it also covers the CRU's
  squeeze convolutions, whose input (the SRU output) is recomputed rather
  than kept; the output comes as two halves that the CRU takes without a
  concatenation or split copy.
* CRU fuse: ``GAP(Y2) = cat(PWC2(GAP(X_low)), GAP(X_low))`` because a 1x1
  convolution without bias commutes with the spatial mean; the mean is taken
  over the narrow squeezed tensor instead of Y2. ``Y = Y2 + beta1 (Y1 - Y2)``
  is written slice by slice into the output, so Y2 is never concatenated;
  without autograd the output is ``Y1`` itself: ``PWC1`` and ``PWC2`` (with
  ``beta2`` on its weight) are added into it as matrix products
  (:func:`.pointwise.add_pointwise_`), never written on their own.
* Stride: the lower path is pooled before its squeeze (both are linear),
  and on the CPU an exactly tiling pool is a sum of strided slices
  (:func:`pool`).

On CUDA (``impl='fast'`` with triton installed, or ``impl='triton'``) the
same functions and autograd Functions run their passes as the Triton kernels
of :mod:`.kernels` instead (:func:`sru_backend`, ``use_kernels``).

Everything is differentiable with autograd; the reference path stays the
ground truth (``tests/test_fast.py`` and ``tests/test_kernels.py`` compare).
"""
import functools
import types
import warnings

import torch
import torch.nn.functional as F

from ._numerics import at_least_fp32
from .cru import downsample
from .kernels import require_triton, triton_available
from .pointwise import add_pointwise_, pointwise
from .sru import normalised_gamma


def _needs_autograd(module, x):
    return torch.is_grad_enabled() and (
        x.requires_grad or any(p.requires_grad for p in module.parameters()))


def gn_affine(sru):
    """``(gamma * W_gamma, beta * W_gamma)``: the affine that makes one
    GroupNorm call compute ``GN(X) * W_gamma`` (Eq. 1-3 before the
    sigmoid), so the scaling costs no pass of its own. Detached for the hard
    gate, whose 0/1 weights carry no gradient to the GroupNorm."""
    w_gamma = normalised_gamma(sru.gn.weight)
    compute = w_gamma.dtype
    weight = sru.gn.weight.to(compute) * w_gamma
    bias = sru.gn.bias.to(compute) * w_gamma
    if sru.gate == 'hard':
        return weight.detach(), bias.detach()
    return weight, bias


def informative_mask(r, threshold, inplace=False):
    """``[R > t]`` as 0/1 in ``r``'s dtype, as ``sign(max(R - t, 0))``: plain
    vectorised arithmetic, cheaper on the CPU than a comparison (a bool
    tensor to convert), ``threshold`` or ``where``. Exact: in floating point
    ``R - t > 0`` exactly when ``R > t``. With ``inplace`` it is written over
    ``r``."""
    difference = r.sub_(threshold) if inplace else torch.sub(r, threshold)
    return difference.clamp_min_(0.0).sign_()


def gate_halves(r, x, threshold, gate):
    """The two channel halves of the SRU output (Eq. 4) from reweights ``r``.

    With the mask ``M = [R > t]`` (:func:`informative_mask`):

    * soft: ``W2 = max(R - M, 0)`` (``R`` where ``R <= t``, else 0) and
      ``W1 = W2 + M``, so with ``Q = W2 X`` and ``G = M X`` the output is
      ``Q_a + Q_b + G_a`` and ``Q_a + Q_b + G_b``;
    * hard: ``W1 = M``, ``W2 = 1 - W1``: ``G_a + X_b - G_b`` and
      ``G_b + X_a - G_a``.

    No autograd runs through it (inference, or inside :class:`SRUFunction`),
    so every result is written over ``r`` and the mask: it allocates at most
    the mask (on the CPU each fresh large allocation costs page faults) and
    returns channel slices.

    Args:
        r (Tensor): Reweights, at least fp32; overwritten.
        x (Tensor): SRU input.
        threshold (float): The gate threshold ``t``.
        gate (str): ``'soft'`` or ``'hard'``.
    """
    # The hard gate needs no R beside its mask: that is written over it.
    mask = informative_mask(r, threshold, inplace=gate == 'hard')
    half = x.shape[1] // 2
    if gate == 'soft':
        low_weighted = r.sub_(mask).clamp_min_(0.0).mul_(x)
        shared = low_weighted[:, :half].add_(low_weighted[:, half:])
    informative_x = mask.mul_(x)
    upper_g, lower_g = informative_x[:, :half], informative_x[:, half:]
    if gate == 'soft':
        upper, lower = upper_g.add_(shared), lower_g.add_(shared)
    else:
        # With D = G_b - G_a: X_b - D and D + X_a.
        difference = lower_g.sub_(upper_g)
        upper = torch.sub(x[:, half:], difference, out=upper_g)
        lower = difference.add_(x[:, :half])
    return upper.to(x.dtype), lower.to(x.dtype)


def _gn_layout(x):
    """The layout aten's GroupNorm kernels accept: any dense layout on the
    CPU, NCHW-contiguous elsewhere (CUDA refuses channels-last)."""
    return x if x.device.type == 'cpu' else x.contiguous()


def _sru_forward(x, weight, bias, groups, eps, threshold, gate):
    """SRU halves and GroupNorm statistics, in ``weight``'s dtype."""
    n, c = x.shape[:2]
    z, mean, rstd = torch.ops.aten.native_group_norm(
        _gn_layout(x.to(weight.dtype)), weight, bias, n, c, x[0, 0].numel(),
        groups, eps)
    upper, lower = gate_halves(z.sigmoid_(), x.to(weight.dtype), threshold,
                               gate)
    return upper, lower, mean, rstd


def _recompute_reweights(x, weight, bias, mean, rstd, groups):
    """``R`` again from the saved GroupNorm statistics (no statistics pass):
    ``z = (x - mean) * rstd * weight + bias`` per (sample, channel)."""
    per_group = x.shape[1] // groups
    scale = rstd.repeat_interleave(per_group, dim=1) * weight
    shift = bias - mean.repeat_interleave(per_group, dim=1) * scale
    return torch.sigmoid(
        torch.addcmul(shift[..., None, None], x, scale[..., None, None]))


def _sru_backward(r, x, weight, mean, rstd, groups, threshold, gate,
                  grad_upper, grad_lower, needs_affine_grad):
    """Gradients of the SRU halves w.r.t. ``x`` and the GroupNorm affine.

    Returns:
        tuple: ``(grad_x, grad_weight, grad_bias)``; the affine gradients are
        None for the hard gate or where ``needs_affine_grad`` says so.
    """
    n, c = x.shape[:2]
    informative = informative_mask(r, threshold)
    g_own = torch.cat([grad_upper, grad_lower], 1).to(x.dtype)
    g_other = torch.cat([grad_lower, grad_upper], 1).to(x.dtype)
    if gate == 'hard':
        # out_a = m_a x_a + (1 - m_b) x_b (and symmetrically).
        return g_other + informative * (g_own - g_other), None, None
    g_sum = g_own + g_other
    not_informative = 1 - informative
    # dX direct: W1 g_own + W2 g_other = W2 (g_own + g_other) + m g_own.
    grad_x = torch.addcmul(r * not_informative * g_sum, informative, g_own)
    # dR = (1 - m) X (g_own + g_other); dZ = dR R (1 - R).
    grad_z = not_informative.mul_(x).mul_(g_sum).mul_(r * (1 - r))
    grad_gn_x, grad_weight, grad_bias = (
        torch.ops.aten.native_group_norm_backward(
            _gn_layout(grad_z), _gn_layout(x), mean, rstd, weight, n, c,
            x[0, 0].numel(), groups,
            [True, *needs_affine_grad]))
    return grad_x + grad_gn_x, grad_weight, grad_bias


class TorchSRU:
    """The SRU's passes as PyTorch ops (any device): the backend of
    :class:`SRUFunction` where the Triton kernels do not run.

    A backend offers ``forward`` (halves and GroupNorm statistics),
    ``halves`` (the halves again from saved statistics), ``squeeze`` (the
    halves through the CRU's squeeze convolutions) and ``backward``;
    :func:`triton_backend` offers the same four.
    """
    forward = staticmethod(_sru_forward)

    @staticmethod
    def halves(x, weight, bias, mean, rstd, groups, threshold, gate):
        x = x.to(weight.dtype)
        r = _recompute_reweights(x, weight, bias, mean, rstd, groups)
        return gate_halves(r, x, threshold, gate)

    @staticmethod
    def squeeze(x, weight, bias, w_up, w_low, groups, eps, threshold, gate,
                dtype):
        """The SRU halves through the squeeze convolutions (in ``dtype``),
        and the GroupNorm statistics."""
        upper, lower, mean, rstd = _sru_forward(x, weight, bias, groups, eps,
                                                threshold, gate)
        return (F.conv2d(upper.to(dtype), w_up.to(dtype)),
                F.conv2d(lower.to(dtype), w_low.to(dtype)), mean, rstd)

    @staticmethod
    def backward(x, weight, bias, mean, rstd, groups, threshold, gate,
                 grad_upper, grad_lower, needs_affine_grad):
        x = x.to(weight.dtype)
        r = _recompute_reweights(x, weight, bias, mean, rstd, groups)
        return _sru_backward(r, x, weight, mean, rstd, groups, threshold,
                             gate, grad_upper, grad_lower, needs_affine_grad)


def triton_backend():
    """The SRU's passes as Triton kernels (:mod:`.kernels`), with the
    interface of :class:`TorchSRU`; imported on use, since the core imports
    without triton."""
    from .kernels import sru, sru_squeeze
    return types.SimpleNamespace(forward=sru.forward, halves=sru.halves,
                                 backward=sru.backward,
                                 squeeze=sru_squeeze.sru_squeeze)


def sru_backend(use_kernels: bool):
    """:func:`triton_backend` or :class:`TorchSRU`."""
    return triton_backend() if use_kernels else TorchSRU


def conv_grads(grad, x, weight, dtype, stride=1, padding=0, dilation=1,
               groups=1, weight_grad=True):
    """Input and weight gradients of ``conv2d(x, weight)`` (no bias) from
    one ``convolution_backward`` call, in ``dtype`` (the forward's, e.g.
    autocast's; the weight gradient comes back in ``weight``'s dtype).

    Returns:
        tuple[Tensor, Tensor | None]: The gradients of ``x`` and, with
        ``weight_grad``, of ``weight``.
    """
    grad_x, grad_w, _ = torch.ops.aten.convolution_backward(
        grad.to(dtype), x.to(dtype), weight.to(dtype), None, [stride] * 2,
        [padding] * 2, [dilation] * 2, False, [0, 0], groups,
        [True, weight_grad, False])
    return grad_x, None if grad_w is None else grad_w.to(weight.dtype)


class SRUFunction(torch.autograd.Function):
    """The SRU with a hand-written backward that saves only the input and
    the GroupNorm statistics: the reweights and gates are recomputed, not
    kept, so the SRU adds almost no activation memory.

    Inputs: ``x``, the GroupNorm affine ``weight``/``bias`` of
    :func:`gn_affine`, ``groups``, ``eps``, ``threshold``, ``gate`` and the
    backend (:func:`sru_backend`).
    Outputs: the two channel halves of the SRU output.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, groups, eps, threshold, gate, backend):
        with torch.autocast(x.device.type, enabled=False):
            upper, lower, mean, rstd = backend.forward(
                x, weight, bias, groups, eps, threshold, gate)
        ctx.save_for_backward(x, weight, bias, mean, rstd)
        ctx.options = (groups, threshold, gate, backend)
        return upper.to(x.dtype), lower.to(x.dtype)

    @staticmethod
    def backward(ctx, grad_upper, grad_lower):
        x, weight, bias, mean, rstd = ctx.saved_tensors
        groups, threshold, gate, backend = ctx.options
        with torch.autocast(x.device.type, enabled=False):
            grad_x, grad_weight, grad_bias = backend.backward(
                x, weight, bias, mean, rstd, groups, threshold, gate,
                grad_upper, grad_lower, ctx.needs_input_grad[1:3])
        return (grad_x.to(x.dtype), grad_weight, grad_bias, None, None, None,
                None, None)


class SRUSqueezeFunction(torch.autograd.Function):
    """The SRU followed by the CRU's two 1x1 squeeze convolutions, for a CRU
    that splits at the half (``alpha=0.5``).

    The squeeze convolutions would save the SRU output (as many channels as
    the input) for their weight gradients; here it is recomputed in
    backward from the input and the GroupNorm statistics instead, so the
    pair saves only what :class:`SRUFunction` saves. Under autocast the
    convolutions run in the autocast dtype, as they would outside. On the
    Triton backend the forward is one GEMM kernel that never writes the SRU
    output at all.

    Inputs: those of :class:`SRUFunction` plus the squeeze weights
    ``w_up`` and ``w_low`` and the convolutions' dtype
    (:func:`_conv_dtype`).
    Outputs: the squeezed upper and lower tensors.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, w_up, w_low, groups, eps, threshold,
                gate, dtype, backend):
        with torch.autocast(x.device.type, enabled=False):
            squeezed_up, squeezed_low, mean, rstd = backend.squeeze(
                x, weight, bias, w_up, w_low, groups, eps, threshold, gate,
                dtype)
        ctx.save_for_backward(x, weight, bias, mean, rstd, w_up, w_low)
        ctx.options = (groups, threshold, gate, dtype, backend)
        return squeezed_up, squeezed_low

    @staticmethod
    def backward(ctx, grad_up, grad_low):
        x, weight, bias, mean, rstd, w_up, w_low = ctx.saved_tensors
        groups, threshold, gate, dtype, backend = ctx.options
        with torch.autocast(x.device.type, enabled=False):
            upper, lower = backend.halves(x, weight, bias, mean, rstd, groups,
                                          threshold, gate)
            grad_upper, grad_w_up = conv_grads(
                grad_up, upper, w_up, dtype,
                weight_grad=ctx.needs_input_grad[3])
            grad_lower, grad_w_low = conv_grads(
                grad_low, lower, w_low, dtype,
                weight_grad=ctx.needs_input_grad[4])
            grad_x, grad_weight, grad_bias = backend.backward(
                x, weight, bias, mean, rstd, groups, threshold, gate,
                grad_upper, grad_lower, ctx.needs_input_grad[1:3])
        return (grad_x.to(x.dtype), grad_weight, grad_bias, grad_w_up,
                grad_w_low, None, None, None, None, None, None)


def uses_kernels(impl: str, x: torch.Tensor) -> bool:
    """Whether SCConv's Triton kernels run for ``x``.

    ``impl='triton'`` always (or raises if they cannot); ``impl='torch'``
    never; ``impl='fast'`` on CUDA tensors when triton is installed, except
    while ``torch.compile`` traces the model (Inductor then fuses the
    PyTorch ops itself).
    """
    if impl == 'triton':
        require_triton(x)
        return True
    if impl != 'fast' or not x.is_cuda or torch.compiler.is_compiling():
        return False
    if triton_available():
        return True
    _warn_no_triton()
    return False


@functools.lru_cache(maxsize=None)
def _warn_no_triton():
    warnings.warn(
        "SCConv impl='fast' on CUDA without the triton package runs its "
        "SRU and CRU fuse as PyTorch ops, far slower than the Triton "
        "kernels: pip install 'mmdet-scconv[triton]'.")


def sru_halves(sru, x: torch.Tensor, inplace: bool, use_kernels=False):
    """The SRU output's two channel halves: in place without autograd,
    through :class:`SRUFunction` with it."""
    options = (sru.gn.num_groups, sru.gn.eps, sru.gate_threshold, sru.gate)
    if inplace and use_kernels:
        # The kernel scales by W_gamma itself: no small ops before it.
        upper, lower, _, _ = triton_backend().forward(
            x, sru.gn.weight, sru.gn.bias, *options, normalise=True)
        return upper, lower
    weight, bias = gn_affine(sru)
    if inplace:
        upper, lower, _, _ = _sru_forward(x, weight, bias, *options)
        return upper.to(x.dtype), lower.to(x.dtype)
    return SRUFunction.apply(x, weight, bias, *options,
                             sru_backend(use_kernels))


def cru_fast(cru, x: torch.Tensor, out_affine=None,
             use_kernels=False) -> torch.Tensor:
    """:class:`CRU` forward in fewer passes (same result); see
    :func:`cru_from_split` for the options."""
    return cru_from_split(
        cru, *torch.split(x, [cru.up_channels, cru.low_channels], dim=1),
        out_affine=out_affine, use_kernels=use_kernels)


def cru_from_split(cru, x_up: torch.Tensor, x_low: torch.Tensor,
                   out_affine=None, use_kernels=False) -> torch.Tensor:
    """:func:`cru_fast` on the input already split into its upper
    ``int(alpha*C)`` and lower channels (separate tensors need no copy
    before the squeeze convolutions).

    Args:
        out_affine (tuple[Tensor, Tensor], optional): A per-channel
            ``(scale, shift)`` applied to the output: a following BatchNorm
            folded in by :meth:`SCConv.fuse_norm`. Without autograd it costs
            no pass of its own.
        use_kernels (bool): Run the whole CRU after the squeeze as one
            Triton kernel (:mod:`.kernels.cru`), in training through
            its autograd Function.
    """
    if use_kernels:
        return cru_from_squeezed(cru, cru.squeeze_up(x_up),
                                 cru.squeeze_low(x_low), out_affine, True)
    inplace = not _needs_autograd(cru, x_up)
    # The lower path is only ever used pooled, and pooling commutes with
    # the 1x1 squeeze: pooled first, a stride-2 squeeze has a quarter of
    # the work and no full-resolution output.
    return _cru_on_torch(
        cru, _squeeze(cru.squeeze_up, x_up, inplace),
        _squeeze(cru.squeeze_low, pool(x_low, cru.stride), inplace),
        out_affine, inplace)


def _squeeze(conv, x, inplace):
    """A squeeze convolution; without autograd, on a channel slice that is
    not dense (an SRU half of a channels-last or batched tensor), as
    :func:`.pointwise`, which reads it without the copy the convolution
    would make. (On a dense NCHW half the convolution measured faster inside
    the trunk on the CPU.)"""
    if inplace and not x.is_contiguous():
        return pointwise(x.to(_conv_dtype(x)), conv.weight)
    return conv(x)


def cru_kernel_args(cru):
    """The CRU's weights and geometry after the squeeze, in the order
    :func:`.kernels.cru.cru_forward` and its ``CRUFunction`` take them."""
    return (cru.gwc.weight, cru.pwc_up.weight, cru.pwc_low.weight,
            cru.stride, cru.gwc.dilation[0], cru.gwc.groups)


def squeeze_kernel_args(sru, cru):
    """The SRU's GroupNorm and gate and the CRU's squeeze weights, in the
    order :func:`.kernels.sru_squeeze.sru_squeeze` takes them (with
    ``normalise=True``: the GroupNorm's own affine)."""
    return (sru.gn.weight, sru.gn.bias, cru.squeeze_up.weight,
            cru.squeeze_low.weight, sru.gn.num_groups, sru.gn.eps,
            sru.gate_threshold, sru.gate)


def cru_from_squeezed(cru, x_up: torch.Tensor, x_low: torch.Tensor,
                      out_affine=None, use_kernels=False) -> torch.Tensor:
    """The CRU after its squeeze convolutions (see :func:`cru_from_split`).
    """
    inplace = not _needs_autograd(cru, x_up)
    if use_kernels:
        # All three convolutions, the pooling and the fuse in one kernel.
        from .kernels import cru as triton_cru
        args = (x_up, x_low, *cru_kernel_args(cru))
        if inplace:
            return triton_cru.cru_forward(*args, out_affine,
                                          _conv_dtype(x_up))
        y = triton_cru.CRUFunction.apply(*args, _conv_dtype(x_up))
        return y if out_affine is None else apply_affine(y, out_affine)
    return _cru_on_torch(cru, x_up, pool(x_low, cru.stride), out_affine,
                         inplace)


def _cru_on_torch(cru, x_up, x_low, out_affine, inplace):
    """The CRU as PyTorch ops from the squeezed ``X_up`` and the squeezed
    and pooled ``X_low`` (see :func:`cru_from_split`); ``inplace`` without
    autograd."""
    y1 = cru.gwc(x_up)
    up_pooled = pool(x_up, cru.stride)
    if inplace:
        add_pointwise_(y1, up_pooled, cru.pwc_up.weight)
        return _fuse_over_y1(cru, y1, x_low, out_affine)
    y1 = y1 + cru.pwc_up(up_pooled)
    beta1 = _branch_weight(cru, y1, x_low).to(y1.dtype)[..., None, None]
    split = cru.pwc_low.out_channels
    # Y = Y2 + beta1 * (Y1 - Y2), branch by branch of Y2 = cat(P, X_low).
    y = torch.cat([
        torch.lerp(cru.pwc_low(x_low), y1[:, :split], beta1[:, :split]),
        torch.lerp(x_low, y1[:, split:], beta1[:, split:])
    ], dim=1)
    return y if out_affine is None else apply_affine(y, out_affine)


def pool(x: torch.Tensor, stride: int) -> torch.Tensor:
    """:func:`.cru.downsample`; where the ``stride x stride`` windows tile
    a CPU tensor exactly, as the mean of its ``stride**2`` strided slices:
    several times faster than ``avg_pool2d``'s NCHW CPU kernel, and no copy
    of a channel slice (an SRU half) first."""
    h, w = x.shape[-2:]
    if stride == 1 or h % stride or w % stride or x.device.type != 'cpu':
        return downsample(x, stride)
    corners = [x[..., i::stride, j::stride] for i in range(stride)
               for j in range(stride)]
    total = corners[0] + corners[1]
    for corner in corners[2:]:
        total.add_(corner)
    return total.div_(stride * stride)


def _branch_weight(cru, y1, x_low):
    """``beta1 = sigmoid(S1 - S2)`` (the two-branch softmax, Eq. 8-9), at
    least fp32, ``(N, C_out)``; ``S2`` from ``GAP(X_low)`` alone (see the
    module docstring)."""
    compute = at_least_fp32(y1.dtype)
    low_mean = x_low.mean((2, 3), dtype=compute)
    s2 = torch.cat([
        F.linear(low_mean, cru.pwc_low.weight.flatten(1).to(compute)),
        low_mean
    ], dim=1)
    return torch.sigmoid(y1.mean((2, 3), dtype=compute) - s2)


def _fuse_over_y1(cru, y1, x_low, out_affine):
    """``s * (beta1 Y1 + beta2 Y2) + t`` written over ``Y1`` (no autograd):
    ``beta2`` (and the scale) ride on the ``PWC2`` weight, per sample, so
    ``PWC2(X_low)`` is added straight into its output channels and never
    written on its own; the reused ``X_low`` is added to the rest."""
    beta1 = _branch_weight(cru, y1, x_low)
    beta2 = 1 - beta1
    if out_affine is not None:
        scale, shift = (v.to(beta1.dtype) for v in out_affine)
        beta1, beta2 = beta1 * scale, beta2 * scale
        torch.addcmul(shift.to(y1.dtype)[:, None, None], y1,
                      beta1.to(y1.dtype)[..., None, None], out=y1)
    else:
        y1.mul_(beta1.to(y1.dtype)[..., None, None])
    split = cru.pwc_low.out_channels
    add_pointwise_(y1[:, :split], x_low,
                   cru.pwc_low.weight.flatten(1) * beta2[:, :split, None])
    y1[:, split:].addcmul_(x_low, beta2[:, split:].to(y1.dtype)[..., None,
                                                                  None])
    return y1


def apply_affine(y: torch.Tensor, affine) -> torch.Tensor:
    """``scale * y + shift`` per channel."""
    scale, shift = (v.to(y.dtype)[:, None, None] for v in affine)
    return torch.addcmul(shift, y, scale)


def scconv_fast(scconv, x: torch.Tensor) -> torch.Tensor:
    """:class:`SCConv` forward: the SRU halves go straight into the CRU when
    the CRU splits at the half (``alpha=0.5``), with no concatenation; a
    BatchNorm folded in by :meth:`SCConv.fuse_norm` rides on the final
    combine. The deploy form on the kernels goes further: the SRU output is
    never written (:func:`deploy_on_kernels`)."""
    inplace = not _needs_autograd(scconv, x)
    kernels = uses_kernels(scconv.impl, x)
    sru, cru, affine = scconv.sru, scconv.cru, scconv.out_affine
    splits_at_half = cru.up_channels * 2 == x.shape[1]
    if splits_at_half and inplace and kernels and affine is not None:
        return deploy_on_kernels(sru, cru, x, affine)
    if splits_at_half and not inplace:
        return cru_from_squeezed(cru, *sru_squeeze(sru, cru, x, kernels),
                                 affine, kernels)
    upper, lower = sru_halves(sru, x, inplace, kernels)
    if splits_at_half:
        return cru_from_split(cru, upper, lower, affine, kernels)
    return cru_fast(cru, torch.cat([upper, lower], dim=1), affine, kernels)


def _conv_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype a convolution of ``x`` runs in: autocast's, if enabled."""
    device = x.device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return x.dtype


def deploy_on_kernels(sru, cru, x: torch.Tensor, out_affine):
    """The deploy form on the Triton kernels (``alpha=0.5``): one GEMM
    computes the SRU output on the fly, multiplies it into both squeeze
    convolutions and adds up the CRU's pooled statistics of their outputs;
    one more kernel is the rest of the CRU with the folded BatchNorm. The
    SRU output, the convolution outputs and ``Y1`` never go through memory.
    """
    from .kernels import cru as triton_cru
    from .kernels import sru_squeeze
    kernel_size = cru.gwc.kernel_size[0]
    squeezed, dtype = cru.squeeze_up.out_channels, _conv_dtype(x)
    sums = triton_cru.sums_buffer(x.shape[0], squeezed, squeezed,
                                  kernel_size, x.device)
    up, low, _, _ = sru_squeeze.sru_squeeze(
        x, *squeeze_kernel_args(sru, cru), dtype, normalise=True,
        add_sums=(sums, kernel_size, cru.stride, cru.gwc.dilation[0]))
    return triton_cru.cru_forward(up, low, *cru_kernel_args(cru), out_affine,
                                  dtype, sums=sums)


def sru_squeeze(sru, cru, x: torch.Tensor, use_kernels=False):
    """SRU then the CRU's squeeze convolutions through
    :class:`SRUSqueezeFunction` (training, ``alpha=0.5``)."""
    weight, bias = gn_affine(sru)
    return SRUSqueezeFunction.apply(x, weight, bias, cru.squeeze_up.weight,
                                    cru.squeeze_low.weight, sru.gn.num_groups,
                                    sru.gn.eps, sru.gate_threshold, sru.gate,
                                    _conv_dtype(x), sru_backend(use_kernels))

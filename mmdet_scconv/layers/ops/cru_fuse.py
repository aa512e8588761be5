"""``mmdet_scconv::cru_fuse``: the CRU (Eq. 6-10) after its grouped
convolution, without autograd, where the Triton kernels do not run (the
CPU's inference path), optionally with the following BatchNorm folded in
and the ReLU after it.

From ``G = GWC(X_up)`` and the pooled squeezed inputs ``Z_up``, ``Z_low``
(``Y1 = G + PWC1(Z_up)``, ``Y2 = cat(PWC2(Z_low), Z_low)``) it returns
``scale * (beta1 Y1 + beta2 Y2) + shift``, clamped at zero with ``relu``.
``GAP(Y1) = GAP(G) + W1 GAP(Z_up)`` and ``GAP(Y2) = cat(W2 GAP(Z_low),
GAP(Z_low))``, since a 1x1 convolution without bias commutes with the
spatial mean, so ``beta`` needs neither branch written out.

``mmdet_scconv::cru_fuse_`` writes the same over ``G`` instead of into a
new tensor, where the output's layout is ``G``'s.

On fp32 CPU tensors it runs the compiled kernel of
``mmdet_scconv/csrc/cru_fuse_cpu.cpp`` (:mod:`..kernels.cpu`): one pass over
``G`` for its means, then one that reads ``G`` and the ``Z``'s and writes
the output once, each pixel block's values a small matrix product of the
``Z``'s with per-sample coefficients (``beta`` and the BatchNorm's scale
ride on ``W1`` and ``W2``). Its PyTorch twin (:func:`fuse_twin_`) adds
``PWC1`` into ``G`` and ``PWC2`` into the output as matrix products, which
reads or writes a tensor of the output's size five times more; it runs for
every other dtype and device, and where the kernel was not built, with a
warning.

There is no autograd formula: training goes through ``mmdet_scconv::cru``
or ``mmdet_scconv::scconv``.
"""
from typing import Optional

import torch
import torch.nn.functional as F

from .._numerics import at_least_fp32
from ..kernels._layout import is_channels_last, memory_format
from ..kernels.cpu import kernels_for
from ..pointwise import add_pointwise_


@torch.library.custom_op('mmdet_scconv::cru_fuse', mutates_args=())
def cru_fuse(g: torch.Tensor, z_up: torch.Tensor, z_low: torch.Tensor,
             w_up: torch.Tensor, w_low: torch.Tensor,
             scale: Optional[torch.Tensor], shift: Optional[torch.Tensor],
             relu: bool, channels_last: bool) -> torch.Tensor:
    """The CRU's output (``scale * y + shift`` with a folded BatchNorm,
    clamped at zero with ``relu``) in ``g``'s dtype.

    Args:
        g (Tensor): ``GWC(X_up)``, ``(N, C, H, W)`` at the CRU's stride.
        z_up, z_low (Tensor): The squeezed ``X_up`` and ``X_low`` pooled to
            ``g``'s size, ``(N, Cu, H, W)`` and ``(N, Cl, H, W)``.
        w_up, w_low (Tensor): ``PWC1``'s ``(C, Cu)`` and ``PWC2``'s ``(C -
            Cl, Cl)`` weights (or the same as 1x1 convolution weights).
        scale, shift (Tensor, optional): A folded BatchNorm's per-channel
            affine, ``(C,)``; both or neither.
        relu (bool): Apply a ReLU last (the one after the BatchNorm).
        channels_last (bool): The output's layout: channels-last, else
            NCHW.
    """
    out = torch.empty_like(g, memory_format=memory_format(channels_last))
    _fuse_into(out, g, z_up, z_low, w_up, w_low, scale, shift, relu)
    return out


@torch.library.custom_op('mmdet_scconv::cru_fuse_', mutates_args=('g', ))
def cru_fuse_(g: torch.Tensor, z_up: torch.Tensor, z_low: torch.Tensor,
              w_up: torch.Tensor, w_low: torch.Tensor,
              scale: Optional[torch.Tensor], shift: Optional[torch.Tensor],
              relu: bool) -> None:
    """:func:`cru_fuse` written over ``g``, in its layout: the layer's
    output takes no memory of its own (each output value needs only ``G``
    at its own position, once ``beta`` is known).

    Args:
        g (Tensor): ``GWC(X_up)``, overwritten with the CRU's output.
        z_up, z_low, w_up, w_low, scale, shift, relu: As in
            :func:`cru_fuse`.
    """
    _fuse_into(g, g, z_up, z_low, w_up, w_low, scale, shift, relu)


@cru_fuse_.register_fake
def _(g, z_up, z_low, w_up, w_low, scale, shift, relu):
    return None


def _fuse_into(out, g, z_up, z_low, w_up, w_low, scale, shift, relu):
    """The fuse of ``g`` into ``out`` (``g`` itself, or a tensor of its
    shape)."""
    kernels = kernels_for(g)
    if kernels is None:
        if out is not g:
            out.copy_(g)
        fuse_twin_(out, z_up, z_low, w_up, w_low, scale, shift)
        if relu:
            out.relu_()
        return
    layout = memory_format(is_channels_last(g))
    kernels.cru_fuse_out(g, _in_layout(z_up,
                                       layout), _in_layout(z_low, layout),
                         w_up, w_low, scale, shift, relu, out)


def _in_layout(t, layout):
    """``t`` contiguous in ``layout``, without a dispatcher call when it
    already is."""
    if t.is_contiguous(memory_format=layout):
        return t
    return t.contiguous(memory_format=layout)


@cru_fuse.register_fake
def _(g, z_up, z_low, w_up, w_low, scale, shift, relu, channels_last):
    return torch.empty_like(g, memory_format=memory_format(channels_last))


def fuse_twin_(y1, z_up, z_low, w_up, w_low, scale, shift):
    """The PyTorch twin of :func:`cru_fuse`, in place over ``y1`` (which
    holds ``G``): ``PWC1(Z_up)`` is added into it, then it is scaled by
    ``beta1``; ``beta2`` (and the scale) ride on the ``PWC2`` weight, per
    sample, so ``PWC2(Z_low)`` is added straight into its output channels
    and never written on its own; the reused ``Z_low`` is added to the
    rest."""
    add_pointwise_(y1, z_up, w_up)
    w_low = w_low.flatten(1)
    beta1 = _branch_weight(y1, z_low, w_low)
    beta2 = 1 - beta1
    if scale is not None:
        beta1, beta2 = beta1 * scale, beta2 * scale
    y1.mul_(beta1.to(y1.dtype)[..., None, None])
    if shift is not None:
        # Not one addcmul: with two broadcast operands its CPU loop is not
        # vectorised on NCHW tensors (0.40 ms against 0.08 ms for these
        # two passes at 64x128x192).
        y1.add_(shift.to(y1.dtype)[:, None, None])
    split = w_low.shape[0]
    add_pointwise_(y1[:, :split], z_low, w_low * beta2[:, :split, None])
    y1[:, split:].addcmul_(z_low, beta2[:, split:].to(y1.dtype)[..., None,
                                                                None])
    return y1


def _branch_weight(y1, z_low, w_low):
    """``beta1 = sigmoid(S1 - S2)`` (the two-branch softmax, Eq. 8-9), at
    least fp32, ``(N, C)``; ``S2`` from ``GAP(Z_low)`` alone (see the module
    docstring)."""
    compute = at_least_fp32(y1.dtype)
    low_mean = z_low.mean((2, 3), dtype=compute)
    s2 = torch.cat([F.linear(low_mean, w_low.to(compute)), low_mean], dim=1)
    return torch.sigmoid(y1.mean((2, 3), dtype=compute) - s2)

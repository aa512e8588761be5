"""The fast SCConv forward: the same equations in fewer passes over memory,
composed of the registered ops of :mod:`.ops` wherever the Triton kernels run
or autograd records, and of in-place PyTorch code for inference without the
kernels (the CPU's path).

With the kernels (``impl='triton'``, or ``impl='fast'`` on CUDA with triton
installed), under ``torch.compile`` too:

* inference (``alpha=0.5``): ``mmdet_scconv::scconv_inference``, four launches
  and one allocation, a folded BatchNorm included (the deploy form);
* training (``alpha=0.5``): ``mmdet_scconv::scconv``, the whole layer, whose
  backward hands the CRU's input gradients to the SRU's backward kernels
  without adding them up first; any other split goes through
  ``mmdet_scconv::sru``, the squeeze convolutions and ``mmdet_scconv::cru``.

Without them, training composes the same ops' PyTorch twins; inference runs
this module's in-place path, against the reference modules
(``SRU.forward`` then ``CRU.forward``):

* SRU and squeeze (``alpha=0.5``, stride 1):
  ``mmdet_scconv::sru_squeeze_inference``, on fp32 CPU tensors a compiled
  kernel that reads the input twice (statistics, then normalise, gate,
  cross-reconstruct and squeeze, tile by tile) and writes only the squeezed
  tensors, in the layout the grouped convolution runs in. Otherwise
  ``mmdet_scconv::sru_inference``, its halves going to the squeeze
  convolutions as channel slices, the lower one pooled first at stride 2
  (pooling and a 1x1 convolution commute), where 2x2 windows tile the input
  by the kernel itself (``mmdet_scconv::sru_inference_pooled``).
* CRU: after the grouped convolution, ``mmdet_scconv::cru_fuse_``, on fp32
  CPU tensors a compiled kernel that reads the convolution's output twice
  (its means, then the fuse) and writes the layer's output once, over it,
  ``PWC1``, ``PWC2``, ``beta``, a folded BatchNorm and a ReLU included
  (``mmdet_scconv::cru_fuse``, into a new tensor, where the convolution
  ran in another layout than the input's).
* Stride: on the CPU an exactly tiling pool is a sum of strided slices
  (:func:`pool`).

The reference path stays the ground truth (``tests/test_fast.py`` and
``tests/test_kernels.py`` compare).
"""
import functools
import warnings

import torch

from .cru import downsample
from .kernel_check import kernels_checked
from .kernels import TRITON_AVAILABLE, require_triton
from .ops import cru as cru_op
from .ops import scconv as scconv_op
from .ops import scconv_inference
from .ops import sru as sru_op
from .ops.cru_fuse import cru_fuse, cru_fuse_
from .ops.sru_inference import (sru_inference, sru_inference_pooled,
                                sru_squeeze_inference)
from .pointwise import memory_layout, pointwise


def _needs_autograd(module, x):
    return torch.is_grad_enabled() and (x.requires_grad
                                        or any(p.requires_grad
                                               for p in module.parameters()))


def uses_kernels(impl: str, x: torch.Tensor) -> bool:
    """Whether SCConv's Triton kernels run for ``x``.

    ``impl='triton'`` always (or raises if they cannot); ``impl='torch'``
    never; ``impl='fast'`` on CUDA tensors when triton is installed (under
    ``torch.compile`` too: the kernels are registered ops, which the
    compiler keeps). Either way only once they passed their check on this
    device and dtype (:mod:`.kernel_check`).
    """
    if impl == 'triton':
        require_triton(x)
        return kernels_checked(x, _conv_dtype(x), strict=True)
    if impl != 'fast' or not x.is_cuda:
        return False
    if TRITON_AVAILABLE:
        return kernels_checked(x, _conv_dtype(x), strict=False)
    _warn_no_triton()
    return False


@functools.lru_cache(maxsize=None)
def _warn_no_triton():
    warnings.warn(
        "SCConv impl='fast' on CUDA without the triton package runs its "
        "SRU and CRU fuse as PyTorch ops, far slower than the Triton "
        "kernels: pip install 'mmdet-scconv[triton]'.")


def runs_in_place(scconv, x: torch.Tensor) -> bool:
    """Whether :func:`scconv_fast` runs :func:`scconv_in_place` for ``x``:
    inference without the Triton kernels."""
    return not uses_kernels(scconv.impl, x) and not _needs_autograd(scconv, x)


def scconv_fast(scconv, x: torch.Tensor) -> torch.Tensor:
    """:class:`SCConv` forward (see the module docstring); a BatchNorm
    folded in by :meth:`SCConv.fuse_norm` rides on the CRU's final
    combine."""
    kernels = uses_kernels(scconv.impl, x)
    inplace = not _needs_autograd(scconv, x)
    if inplace and not kernels:
        return scconv_in_place(scconv, x, scconv.out_affine)
    sru, cru = scconv.sru, scconv.cru
    scale, shift = scconv.out_affine or (None, None)
    dtype = _conv_dtype(x)
    gn = sru.gn
    gwc = cru.gwc
    if cru.up_channels * 2 != x.shape[1]:
        upper, lower, _ = sru_op(x, gn.weight, gn.bias, gn.num_groups, gn.eps,
                                 sru.gate_threshold, sru.gate, kernels)
        x_up, x_low = torch.split(
            torch.cat([upper, lower], dim=1),
            [cru.up_channels, cru.low_channels], 1)
        return cru_op(
            cru.squeeze_up(x_up), cru.squeeze_low(x_low), gwc.weight,
            cru.pwc_up.weight, cru.pwc_low.weight, None, 0, scale, shift,
            cru.stride, gwc.dilation[0], gwc.groups, dtype, kernels)
    if inplace:
        return scconv_inference(x, gn.weight, gn.bias, cru.squeeze_up.weight,
                                cru.squeeze_low.weight, gwc.weight,
                                cru.pwc_up.weight, cru.pwc_low.weight, scale,
                                shift, gn.num_groups, gn.eps,
                                sru.gate_threshold, sru.gate, cru.stride,
                                gwc.dilation[0], dtype, kernels)
    y = scconv_op(x, gn.weight, gn.bias, cru.squeeze_up.weight,
                  cru.squeeze_low.weight, gwc.weight, cru.pwc_up.weight,
                  cru.pwc_low.weight, gn.num_groups, gn.eps,
                  sru.gate_threshold, sru.gate, cru.stride, gwc.dilation[0],
                  dtype, kernels)[0]
    # A folded BatchNorm under autograd (a deploy-form model asked for
    # gradients) rides on no kernel there.
    return y if scale is None else apply_affine(y, (scale, shift))


def scconv_in_place(scconv, x, affine=None, relu=False):
    """Inference without the kernels: the SRU halves go straight into the
    CRU when it splits at the half (``alpha=0.5``), with no concatenation.

    Args:
        scconv (SCConv): The layer.
        x (Tensor): Its input.
        affine (tuple[Tensor, Tensor], optional): ``(scale, shift)`` per
            output channel applied to SCConv's output in the CRU's final
            pass (a folded BatchNorm). Default: None.
        relu (bool): Clamp the output at zero in that pass too.
            Default: False.
    """
    sru, cru = scconv.sru, scconv.cru
    args = (x, sru.gn.weight, sru.gn.bias, sru.gn.num_groups, sru.gn.eps,
            sru.gate_threshold, sru.gate)
    layout = _gwc_layout(cru.gwc, x)
    halves = cru.up_channels * 2 == x.shape[1]
    if halves and cru.stride == 1:
        x_up, x_low = sru_squeeze_inference(*args, cru.squeeze_up.weight,
                                            cru.squeeze_low.weight,
                                            layout == torch.channels_last)
    else:
        # The lower path is only ever used pooled, and pooling commutes
        # with the 1x1 squeeze: pooled first, a stride-2 squeeze has a
        # quarter of the work (squeezing inside the SRU's kernel, at full
        # resolution, made the strided stage-2 layer slower); where 2x2
        # windows tile the input, the SRU writes it pooled.
        if (halves and cru.stride == 2 and x.shape[-2] % 2 == 0
                and x.shape[-1] % 2 == 0):
            x_up, x_low = sru_inference_pooled(*args)
        else:
            x_up, x_low = torch.split(
                sru_inference(*args), [cru.up_channels, cru.low_channels], 1)
            x_low = pool(x_low, cru.stride)
        x_up = _squeeze(cru.squeeze_up, x_up, layout)
        x_low = _squeeze(cru.squeeze_low, x_low, layout)
    scale, shift = affine or (None, None)
    g = cru.gwc(x_up)
    fuse_args = (pool(x_up, cru.stride), x_low, cru.pwc_up.weight,
                 cru.pwc_low.weight, scale, shift, relu)
    out_layout = memory_layout(x)
    if g.is_contiguous(memory_format=out_layout):
        cru_fuse_(g, *fuse_args)
        return g
    return cru_fuse(g, *fuse_args, out_layout == torch.channels_last)


#: oneDNN's direct NCHW convolutions take a group's input channels in blocks
#: of 16; with fewer (8 in SCConv's grouped convolution at stage 1 of a
#: ResNet) it falls back to an im2col GEMM whose buffer, nine times the
#: input, is allocated and page-faulted on every call: 4.7 ms NCHW against
#: 0.8 ms channels-last at 16x128x192 on two cores (docs/speed.md).
NCHW_GROUP_CHANNELS_MIN = 16


def _gwc_layout(gwc, x):
    """The layout the grouped convolution runs in: channels-last on the CPU
    where NCHW would take oneDNN's im2col fallback (see
    :data:`NCHW_GROUP_CHANNELS_MIN`), else ``x``'s."""
    if (x.device.type == 'cpu'
            and gwc.in_channels // gwc.groups < NCHW_GROUP_CHANNELS_MIN):
        return torch.channels_last
    return memory_layout(x)


def _squeeze(conv, x, layout=None):
    """A squeeze convolution whose output is in ``layout`` (default: the
    convolution's choice); on a channel slice that is not dense (an SRU
    half of a channels-last or batched tensor) or into another layout, as
    :func:`.pointwise`, which reads it without the copy the convolution
    would make. (On a dense NCHW half the convolution measured faster inside
    the trunk on the CPU.)"""
    if not x.is_contiguous() or layout not in (None, memory_layout(x)):
        return pointwise(x.to(_conv_dtype(x)), conv.weight, layout)
    return conv(x)


def pool(x: torch.Tensor, stride: int) -> torch.Tensor:
    """:func:`.cru.downsample`; where the ``stride x stride`` windows tile
    a CPU tensor exactly, as the mean of its ``stride**2`` strided slices:
    several times faster than ``avg_pool2d``'s NCHW CPU kernel, and no copy
    of a channel slice (an SRU half) first."""
    h, w = x.shape[-2:]
    if stride == 1 or h % stride or w % stride or x.device.type != 'cpu':
        return downsample(x, stride)
    corners = [
        x[..., i::stride, j::stride] for i in range(stride)
        for j in range(stride)
    ]
    total = corners[0] + corners[1]
    for corner in corners[2:]:
        total.add_(corner)
    return total.div_(stride * stride)


def apply_affine(y: torch.Tensor, affine) -> torch.Tensor:
    """``scale * y + shift`` per channel."""
    scale, shift = (v.to(y.dtype)[:, None, None] for v in affine)
    return torch.addcmul(shift, y, scale)


def _conv_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype a convolution of ``x`` runs in: autocast's, if enabled."""
    device = x.device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return x.dtype

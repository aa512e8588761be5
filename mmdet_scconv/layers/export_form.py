"""SCConv written for graph runtimes (ONNX Runtime): the same equations as
:class:`.SCConv` in few standard operators, its weights folded ahead of
time.

A graph runtime runs each operator as its own pass over memory, so the form
counts passes, not FLOPs (the 1x1 convolutions are cheap next to a pass over
a full-resolution feature map):

* SRU (``alpha=0.5``): the output halves go only into the two squeeze
  convolutions, and a 1x1 convolution of a sum of channel halves is one
  convolution of the stacked halves with its weight repeated. So
  ``squeeze_up(X11 + X22) = conv(X * W_u, [S_up, S_up])`` with
  ``W_u = where(R > t, c, R)`` (``c`` = 1 on the first half of the channels,
  0 on the second; the hard gate puts ``1 - c`` for ``R``), and likewise for
  the lower path with ``1 - c``: a GroupNorm, a sigmoid, a comparison, two
  ``Where``, two ``Mul`` and two convolutions, no split, no concatenation.
* CRU fuse: with ``D = Y1 - Y2`` the two-branch softmax is
  ``beta1 = sigmoid(GAP(D))`` and ``Y = Y2 + beta1 * D``; ``Y2 =
  cat(PWC2(l), l)`` is one 1x1 convolution of ``l`` (``[PWC2; I]``), so
  ``D`` is the sum of three convolutions (the GWC, ``PWC1`` and ``-Y2``),
  and a folded BatchNorm ``s, t`` rides on the second copy of the ``Y2``
  convolution (weight ``s [PWC2; I]``, bias ``t``): ``Y = conv(l) + D * (s
  beta1)``.
* Stride: the pointwise paths' mean pool is applied to the squeezed
  (quarter-width) tensors.

Other splits (``alpha != 0.5``) build the SRU output and split it as the
reference does.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .cru import downsample
from .ops.sru import gn_affine
from .scconv import SCConv


class ExportSCConv(nn.Module):
    """Inference-only twin of an :class:`.SCConv` for graph export.

    Built from a module, which it leaves untouched; later changes to that
    module's weights do not reach it.

    Args:
        scconv (SCConv): The layer to copy, with or without a BatchNorm
            folded in by :meth:`.SCConv.fuse_norm`.
    """

    def __init__(self, scconv):
        super().__init__()
        sru, cru = scconv.sru, scconv.cru
        self.groups = sru.gn.num_groups
        self.eps = sru.gn.eps
        self.threshold = sru.gate_threshold
        self.hard = sru.gate == 'hard'
        self.stride = cru.stride
        self.halves = cru.up_channels * 2 == scconv.in_channels
        self.up_channels = cru.up_channels
        gwc = cru.gwc
        self.gwc_args = dict(
            stride=gwc.stride,
            padding=gwc.padding,
            dilation=gwc.dilation,
            groups=gwc.groups)
        with torch.no_grad():
            self._fold_weights(scconv)

    def _fold_weights(self, scconv):
        sru, cru = scconv.sru, scconv.cru
        weight, bias = gn_affine(sru.gn.weight, sru.gn.bias, sru.gate)
        channels = scconv.in_channels
        first_half = (torch.arange(channels) < channels // 2).to(weight)
        squeeze_up = cru.squeeze_up.weight
        squeeze_low = cru.squeeze_low.weight
        if self.halves:
            squeeze_up = torch.cat([squeeze_up, squeeze_up], dim=1)
            squeeze_low = torch.cat([squeeze_low, squeeze_low], dim=1)
        low = cru.squeeze_low.out_channels
        eye = torch.eye(low).to(cru.pwc_low.weight)[..., None, None]
        y2 = torch.cat([cru.pwc_low.weight, eye])
        scale, shift = scconv.out_affine or (torch.ones(
            cru.out_channels), torch.zeros(cru.out_channels))
        buffers = dict(
            gn_weight=weight,
            gn_bias=bias,
            keep_up=first_half[:, None, None],
            keep_low=(1 - first_half)[:, None, None],
            squeeze_up=squeeze_up,
            squeeze_low=squeeze_low,
            gwc=cru.gwc.weight,
            pwc_up=cru.pwc_up.weight,
            minus_y2=-y2,
            out_y2=y2 * scale.to(y2)[:, None, None, None],
            out_shift=shift.to(y2),
            out_scale=scale.to(y2)[:, None, None])
        for name, value in buffers.items():
            self.register_buffer(name, value.detach().clone())

    def squeezed(self, x: torch.Tensor):
        """The SRU (Eq. 1-4) and the CRU's squeeze (Eq. 5): ``(up, low)``,
        at the input's resolution."""
        z = F.group_norm(x, self.groups, self.gn_weight, self.gn_bias,
                         self.eps)
        r = torch.sigmoid(z)
        informative = r > self.threshold
        other_up = self.keep_low if self.hard else r
        other_low = self.keep_up if self.hard else r
        if self.halves:
            up = x * torch.where(informative, self.keep_up, other_up)
            low = x * torch.where(informative, self.keep_low, other_low)
            return (F.conv2d(up, self.squeeze_up),
                    F.conv2d(low, self.squeeze_low))
        x1 = x * torch.where(informative, 1.0, 0.0 if self.hard else r)
        x2 = x * torch.where(informative, 0.0, 1.0 if self.hard else r)
        half = x.shape[1] // 2
        out = x1 + torch.cat([x2[:, half:], x2[:, :half]], dim=1)
        up, low = out[:, :self.up_channels], out[:, self.up_channels:]
        return F.conv2d(up, self.squeeze_up), F.conv2d(low, self.squeeze_low)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up, low = self.squeezed(x)
        low = downsample(low, self.stride)
        difference = (
            F.conv2d(up, self.gwc, **self.gwc_args) +
            F.conv2d(downsample(up, self.stride), self.pwc_up) +
            F.conv2d(low, self.minus_y2))
        beta1 = torch.sigmoid(difference.mean((2, 3), keepdim=True))
        return F.conv2d(low, self.out_y2, self.out_shift) + difference * (
            beta1 * self.out_scale)


def to_export_form(module: nn.Module) -> nn.Module:
    """Replace every :class:`.SCConv` inside ``module`` by its
    :class:`ExportSCConv` (in place; ``module`` itself if it is one).

    Args:
        module (nn.Module): A model, in eval mode; fold its BatchNorms
            first (``switch_to_deploy``) for the fewest operators.

    Returns:
        nn.Module: ``module``, or the replacement when it is an SCConv.
    """
    if isinstance(module, SCConv):
        return ExportSCConv(module)
    for name, child in module.named_children():
        replaced = to_export_form(child)
        if replaced is not child:
            setattr(module, name, replaced)
    return module

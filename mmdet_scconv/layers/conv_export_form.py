"""SCConv written for OpenVINO: the equations of :class:`.SCConv` in
convolutions and element-wise operators only, its weights folded ahead of
time.

OpenVINO's CPU plugin runs convolutions in the channels-last layout and
keeps it through element-wise operators, reductions over the spatial axes
and channel slices, but converts the layout (``Reorder``) around a reshape
or a matrix product of a full-resolution tensor, which
:class:`.export_form.ExportSCConv` (ONNX Runtime's form) has in every layer.
So here (``docs/deployment.md`` has the profiles):

* SRU: the GroupNorm statistics are per-channel spatial means of ``X`` and
  ``X * X``, averaged over each group by a 1x1 convolution of the ``(N, C,
  1, 1)`` means; ``Z = GN(X) * W_gamma`` is ``X * a + b`` with ``a, b`` per
  sample and channel. The mask is ``[Z > boundary]``
  (:func:`.export_form.gate_mask`) as ``Sub``, ``Mul`` and ``Clip``, which
  OpenVINO fuses into the element-wise pass (a ``HardSigmoid`` it runs in
  the planar layout).
* The SRU's output only feeds the CRU's two squeeze convolutions, whose
  channel halves it crosses (``X1 + swap(V)``). Both are one 1x1
  convolution of ``X1`` and one of ``V``, the halves' swap folded into the
  second's weights: ``T = S G + (S + S P) V`` (soft gate, ``X1 = G + V``)
  or ``T = (S - S P) G + S P X`` (hard gate, ``V = X - G``), ``S`` the
  block-diagonal squeeze and ``P`` the swap. Dense weights (half zeros)
  cost fewer passes than splitting and concatenating channels.
* CRU: ``D = GWC(T_up) + [PWC1 | -Y2](pool(T))`` and ``Y = s Y2 + t +
  (s beta1) D`` as in ONNX Runtime's form, each pointwise part a 1x1
  convolution of the whole pooled ``T`` (zero weights for the half it does
  not read).
"""
import torch
import torch.nn.functional as F

from .cru import downsample
from .export_form import (FoldedSCConv, folded_weights, gate_mask,
                          register_buffers)


class ConvExportSCConv(FoldedSCConv):
    """Inference-only twin of an :class:`.SCConv` for OpenVINO
    (:class:`.export_form.FoldedSCConv`'s arguments)."""

    def __init__(self, scconv):
        super().__init__(scconv)
        with torch.no_grad():
            register_buffers(self, self._conv_weights(scconv))

    def _conv_weights(self, scconv) -> dict:
        sru, cru = scconv.sru, scconv.cru
        channels = scconv.in_channels
        folded = folded_weights(scconv)
        squeeze = torch.block_diag(
            cru.squeeze_up.weight.flatten(1),
            cru.squeeze_low.weight.flatten(1))
        half = channels // 2
        swap = torch.cat([torch.arange(half, channels), torch.arange(half)])
        # (S P) v = S (P v), where (P v)[i] = v[swap[i]].
        squeeze_swapped = torch.empty_like(squeeze)
        squeeze_swapped[:, swap] = squeeze
        if self.hard:
            of_gated, of_rest = squeeze - squeeze_swapped, squeeze_swapped
        else:
            of_gated, of_rest = squeeze, squeeze + squeeze_swapped
        size = channels // sru.gn.num_groups
        group_mean = torch.block_diag(*[torch.full((size, size), 1.0 / size)] *
                                      sru.gn.num_groups)
        per_channel = (1, -1, 1, 1)
        return dict(
            group_mean=_pointwise(group_mean.to(squeeze)),
            gn_weight=folded['gn_weight'].reshape(per_channel),
            gn_bias=folded['gn_bias'].reshape(per_channel),
            squeeze_gated=_pointwise(of_gated),
            squeeze_rest=_pointwise(of_rest),
            gwc=folded['gwc'],
            difference=_pointwise(folded['difference']),
            out_pooled=_pointwise(folded['out_pooled']),
            out_shift=folded['out_shift'].reshape(per_channel),
            out_scale=folded['out_scale'].reshape(per_channel))

    def group_norm_affine(self, x: torch.Tensor):
        """``(a, b)``, ``(N, C, 1, 1)`` each: ``GN(X) * W_gamma = X * a +
        b``, from the spatial means of ``X`` and ``X * X`` (the variance as
        ``E[X^2] - E[X]^2``, as ONNX Runtime's form computes it)."""
        mean = F.conv2d(x.mean((2, 3), keepdim=True), self.group_mean)
        square_mean = F.conv2d((x * x).mean((2, 3), keepdim=True),
                               self.group_mean)
        var = (square_mean - mean * mean).clamp_min(0)
        scale = self.gn_weight * torch.rsqrt(var + self.eps)
        return scale, self.gn_bias - mean * scale

    def squeezed(self, x: torch.Tensor) -> torch.Tensor:
        """The SRU (Eq. 1-4) and the CRU's squeeze (Eq. 5): ``T``, the
        squeezed upper then lower path, at the input's resolution."""
        scale, shift = self.group_norm_affine(x)
        z = x * scale + shift
        g = x * gate_mask(z, self.boundary, hard_sigmoid=False)
        rest = x if self.hard else (x - g) * torch.sigmoid(z)
        return F.conv2d(g, self.squeeze_gated) + F.conv2d(
            rest, self.squeeze_rest)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        squeezed = self.squeezed(x)
        pooled = downsample(squeezed, self.stride)
        up = squeezed[:, :self.up_squeezed]
        difference = F.conv2d(up, self.gwc, **self.gwc_args) + F.conv2d(
            pooled, self.difference)
        beta1 = torch.sigmoid(difference.mean((2, 3), keepdim=True))
        return F.conv2d(pooled, self.out_pooled) + self.out_shift + (
            beta1 * self.out_scale) * difference


def _pointwise(matrix: torch.Tensor) -> torch.Tensor:
    """A ``(out, in)`` matrix as a 1x1 convolution's weight."""
    return matrix[..., None, None]

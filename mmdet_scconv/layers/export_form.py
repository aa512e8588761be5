"""SCConv written for ONNX Runtime: the same equations as :class:`.SCConv`
in few standard operators, its weights folded ahead of time (the form for
OpenVINO is :class:`.conv_export_form.ConvExportSCConv`; both share the
folding and the gate's mask here).

A graph runtime runs each operator as its own pass over memory and keeps
its blocked layout only around convolutions, so the form counts passes over
full-resolution tensors and layout changes, not FLOPs. Measured choices
(``docs/deployment.md``):

* SRU: GroupNorm with its affine (``GN(X) * W_gamma``) is the group
  statistics plus one ``BatchNormalization``. With the mask ``M = [R > t]``
  as 0/1 numbers (:func:`gate_mask`: one ``HardSigmoid`` of the sigmoid's
  input, no ``Where`` or ``Cast``), ``V = (X - M X) R`` (hard gate: ``X -
  M X``) and ``G = M X``, the SRU's output halves are ``V_a + V_b + G_a``
  and ``V_a + V_b + G_b``
  (hard: ``G_a + V_b`` and ``G_b + V_a``). They only feed the two squeeze
  convolutions, so (``alpha=0.5``) the halves of ``V`` are mixed by a 1x2
  (or 2x2) matrix product, added to ``G`` and squeezed by one batched
  matrix product: ``T``, the squeezed upper then lower path. No split of a
  full-width tensor, no concatenation, and matrix products in the plain
  layout where 1x1 convolutions would reorder their inputs.
* CRU fuse: with ``D = Y1 - Y2`` the two-branch softmax is
  ``beta1 = sigmoid(GAP(D))`` and ``Y = Y2 + beta1 * D``; with a folded
  BatchNorm ``s, t``, ``Y = s Y2 + t + (s beta1) D``. ``D`` is ``GWC(T_up)``
  plus a product of the pooled ``T`` with ``[PWC1 | -Y2]`` (``Y2 =
  cat(PWC2(l), l)``), and ``s Y2`` a product of the pooled ``T`` with ``[0
  | s Y2]``, so ``D`` is never formed: ``GAP(D)`` is ``GAP(GWC(T_up))``
  plus that product with ``GAP(T)``, and ``Y`` is ``(s beta1) GWC(T_up) +
  t`` (one ``BatchNormalization``) plus one product of the pooled ``T``
  with the per-sample ``(s beta1) [PWC1 | -Y2] + [0 | s Y2]``.
* Stride: the pointwise paths' mean pool is applied to ``T`` (squeezed,
  half the input's width).

Other splits (``alpha != 0.5``) build the SRU output and split it as the
reference does.
"""
import math
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F

from .cru import downsample
from .ops.sru import gn_affine


class FoldedSCConv(nn.Module):
    """What every export form keeps of an :class:`.SCConv` besides its
    weights: GroupNorm's epsilon, the gate's mask boundary and kind, the
    stride, the squeezed upper path's width and the GWC's arguments.

    Built from a module, which it leaves untouched; later changes to that
    module's weights do not reach it.

    Args:
        scconv (SCConv): The layer to copy, with or without a BatchNorm
            folded in by :meth:`.SCConv.fuse_norm`.
    """

    def __init__(self, scconv):
        super().__init__()
        sru, cru = scconv.sru, scconv.cru
        self.eps = sru.gn.eps
        self.boundary = mask_boundary(sru.gate_threshold)
        self.hard = sru.gate == 'hard'
        self.stride = cru.stride
        self.up_squeezed = cru.squeeze_up.out_channels
        self.gwc_args = gwc_args(cru.gwc)


class ExportSCConv(FoldedSCConv):
    """Inference-only twin of an :class:`.SCConv` for graph export
    (:class:`FoldedSCConv`'s arguments)."""

    def __init__(self, scconv):
        super().__init__(scconv)
        sru, cru = scconv.sru, scconv.cru
        self.groups = sru.gn.num_groups
        self.halves = cru.up_channels * 2 == scconv.in_channels
        self.up_channels = cru.up_channels
        with torch.no_grad():
            buffers = folded_weights(scconv)
            if self.halves:
                # Both squeezes as one batched matrix product.
                buffers['squeeze'] = torch.stack([
                    cru.squeeze_up.weight.flatten(1),
                    cru.squeeze_low.weight.flatten(1)
                ])
                buffers['mix_halves'] = torch.tensor(
                    [[0.0, 1.0], [1.0, 0.0]] if self.hard else [[1.0, 1.0]])
            else:
                buffers.update(
                    squeeze_up=cru.squeeze_up.weight,
                    squeeze_low=cru.squeeze_low.weight)
        register_buffers(self, buffers)

    def group_norm(self, x: torch.Tensor) -> torch.Tensor:
        """``GN(X) * W_gamma`` (Eq. 1-3 before the sigmoid) in one pass
        once the statistics are known: the samples side by side as the
        channels of one image, normalised by ``BatchNormalization`` with
        every channel's group statistics (ONNX Runtime's GroupNorm form,
        ``InstanceNormalization`` and a separate affine, takes two passes
        more)."""
        n, c, h, w = x.shape
        grouped = x.reshape(n, self.groups, -1)
        mean = grouped.mean(-1, keepdim=True)
        # E[x^2] as a product and a mean: ONNX Runtime's ReduceMean is
        # several times faster than its ReduceL2 or ReduceSumSquare.
        square_mean = (grouped * grouped).mean(-1, keepdim=True)
        var = (square_mean - mean * mean).clamp_min(0)
        per_channel = (n, self.groups, c // self.groups)
        z = F.batch_norm(
            x.reshape(1, n * c, h, w),
            mean.expand(per_channel).reshape(-1),
            var.expand(per_channel).reshape(-1),
            self.gn_weight.repeat(n),
            self.gn_bias.repeat(n),
            eps=self.eps)
        return z.reshape(n, c, h, w)

    def squeezed(self, x: torch.Tensor) -> torch.Tensor:
        """The SRU (Eq. 1-4) and the CRU's squeeze (Eq. 5): ``T``, the
        squeezed upper then lower path, at the input's resolution."""
        z = self.group_norm(x)
        g = x * gate_mask(z, self.boundary)
        # x - g is exactly x where the mask is 0 and 0 where it is 1.
        v = x - g if self.hard else (x - g) * torch.sigmoid(z)
        n, c, h, w = x.shape
        if self.halves:
            # Soft: V_a + V_b + G_a and V_a + V_b + G_b; hard: G_a + V_b
            # and G_b + V_a. The halves are mixed by a 1x2 or 2x2 matrix
            # product, which ONNX Runtime runs several times faster than a
            # ReduceSum or a reversing Slice over the halves.
            mixed = g.reshape(n, 2, -1) + torch.matmul(self.mix_halves,
                                                       v.reshape(n, 2, -1))
            return torch.matmul(self.squeeze,
                                mixed.reshape(n, 2, c // 2,
                                              h * w)).reshape(n, -1, h, w)
        x1 = g if self.hard else v + g
        out = x1 + torch.cat([v[:, c // 2:], v[:, :c // 2]], dim=1)
        return torch.cat([
            F.conv2d(out[:, :self.up_channels], self.squeeze_up),
            F.conv2d(out[:, self.up_channels:], self.squeeze_low)
        ],
                         dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        squeezed = self.squeezed(x)
        up = squeezed[:, :self.up_squeezed]
        grouped = F.conv2d(up, self.gwc, **self.gwc_args)
        pooled = downsample(squeezed, self.stride)
        n, _, h, w = pooled.shape
        pooled = pooled.flatten(2)
        # GAP(D) without D: the pointwise part's mean is the product with
        # the mean of its input.
        mean = grouped.mean((2, 3)) + torch.matmul(
            self.difference, pooled.mean(-1, keepdim=True)).squeeze(-1)
        scale = torch.sigmoid(mean) * self.out_scale
        pointwise = scale[..., None] * self.difference + self.out_pooled
        return torch.matmul(pointwise, pooled).reshape(n, -1, h, w) + _affine(
            grouped, scale, self.out_shift)


def _affine(x: torch.Tensor, scale: torch.Tensor,
            shift: torch.Tensor) -> torch.Tensor:
    """``x * scale + shift`` with ``scale`` per sample and channel, ``(N,
    C)``, and ``shift`` per channel, as one ``BatchNormalization`` pass (the
    samples side by side as the channels of one image; mean 0, variance 1,
    epsilon 0, so nothing but the affine is applied)."""
    n, c, h, w = x.shape
    ones = x.new_ones(n * c)
    return F.batch_norm(
        x.reshape(1, n * c, h, w),
        ones - 1,
        ones,
        scale.reshape(-1),
        shift.repeat(n),
        eps=0.0).reshape(n, c, h, w)


def gwc_args(gwc: nn.Conv2d) -> dict:
    """The keyword arguments ``F.conv2d`` needs to run the CRU's GWC."""
    return dict(
        stride=gwc.stride,
        padding=gwc.padding,
        dilation=gwc.dilation,
        groups=gwc.groups)


def folded_weights(scconv) -> dict:
    """What every export form computes with, folded from ``scconv``:
    ``gn_weight``, ``gn_bias`` (``GN(X) * W_gamma``'s affine), ``gwc``,
    ``difference`` (PWC1 and ``-Y2`` on the pooled ``T``: ``D``'s pointwise
    part), ``out_pooled`` (``s * Y2`` from the pooled ``T``, zeros for its
    upper path), ``out_shift`` and ``out_scale`` (a folded BatchNorm's
    ``t`` and ``s``, else 0 and 1)."""
    sru, cru = scconv.sru, scconv.cru
    weight, bias = gn_affine(sru.gn.weight, sru.gn.bias, sru.gate)
    low = cru.squeeze_low.out_channels
    eye = torch.eye(low).to(cru.pwc_low.weight)[..., None, None]
    y2 = torch.cat([cru.pwc_low.weight, eye]).flatten(1)
    scale, shift = scconv.out_affine or (torch.ones(
        cru.out_channels), torch.zeros(cru.out_channels))
    scale = scale.to(y2)
    up_zeros = y2.new_zeros(cru.out_channels, cru.squeeze_up.out_channels)
    return dict(
        gn_weight=weight,
        gn_bias=bias,
        gwc=cru.gwc.weight,
        difference=torch.cat([cru.pwc_up.weight.flatten(1), -y2], dim=1),
        out_pooled=torch.cat([up_zeros, y2 * scale[:, None]], dim=1),
        out_shift=shift.to(y2),
        out_scale=scale)


def register_buffers(module: nn.Module, buffers: dict) -> None:
    """Keep detached copies of ``buffers`` as ``module``'s buffers."""
    for name, value in buffers.items():
        module.register_buffer(name, value.detach().clone())


def mask_boundary(threshold: float) -> float:
    """The largest fp32 ``z`` with ``torch.sigmoid(z) <= threshold``: the
    gate's mask ``[sigmoid(z) > t]`` is ``[z > boundary]``.

    Engines round the sigmoid differently near ``t`` (within a few ulps of
    0.5 OpenVINO's sigmoid gives 0.5 where PyTorch's gives the next number
    up, for ``z`` up to about 2e-7), and each such difference flips a gate.
    A comparison of ``z`` with a constant is exact everywhere, so the
    exported mask is PyTorch's on every engine. Found by bisection over the
    fp32 numbers; the sigmoid is monotonic."""
    threshold = torch.tensor(threshold, dtype=torch.float32)
    lo, hi = _ordered(-math.inf), _ordered(math.inf)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if torch.sigmoid(torch.tensor(_from_ordered(mid))) > threshold:
            hi = mid
        else:
            lo = mid
    return _from_ordered(lo)


def _ordered(value: float) -> int:
    """An fp32 number's place in the order of all fp32 numbers."""
    (bits, ) = struct.unpack('<i', struct.pack('<f', value))
    return bits if bits >= 0 else -(bits & 0x7FFFFFFF)


def _from_ordered(place: int) -> float:
    bits = place if place >= 0 else (-place) | -0x80000000
    return struct.unpack('<f', struct.pack('<i', bits))[0]


def gate_mask(z: torch.Tensor,
              boundary: float,
              hard_sigmoid: bool = True) -> torch.Tensor:
    """``[z > boundary]`` as 0/1 numbers (:func:`mask_boundary`), in
    arithmetic that graph runtimes run faster than ``Greater`` and ``Cast``:
    for a boundary of magnitude from ``2**-40`` to ``2**60`` a positive ``z
    - boundary`` is at least ``2**-63`` in fp32, so scaled by ``2**64`` it
    clips to exactly 1 (and a negative or zero one to 0); other boundaries
    compare.

    With ``hard_sigmoid``, in a ``torch.onnx.export(dynamo=True)`` graph
    that arithmetic is one ``HardSigmoid`` (``clip(alpha * z + beta, 0,
    1)``, the product by a power of two exact, so the same numbers) instead
    of a ``Sub``, a ``Mul`` and a ``Clip``: two passes fewer over the tensor
    in ONNX Runtime. OpenVINO fuses the three into the element-wise pass
    around them, but not a ``HardSigmoid``, which it runs in the planar
    layout, converting the layout before and after. The TorchScript exporter
    (mmdeploy's) gets the arithmetic, which it can translate.

    Args:
        z (Tensor): ``GN(X) * W_gamma``, the sigmoid's input.
        boundary (float): :func:`mask_boundary` of the threshold.
        hard_sigmoid (bool): Export the mask as one ``HardSigmoid``.
            Default: True.
    """
    if not 2**-40 <= abs(boundary) <= 2**60:
        return (z > boundary).to(z.dtype)
    if hard_sigmoid and torch.onnx.is_in_onnx_export(
    ) and not torch.jit.is_tracing():
        return torch.onnx.ops.symbolic(
            'HardSigmoid', (z, ),
            dict(alpha=2.0**64, beta=-boundary * 2.0**64),
            dtype=z.dtype,
            shape=z.shape)
    return ((z - boundary) * 2.0**64).clamp(0, 1)

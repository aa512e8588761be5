"""The BatchNorm after SCConv as a per-channel affine, for the deploy form.

In inference a BatchNorm is ``scale * y + shift`` per channel, from its
running statistics: :meth:`.SCConv.fuse_norm` keeps that affine and applies
it to SCConv's output.
"""
from typing import Tuple

import torch
import torch.nn as nn

Affine = Tuple[torch.Tensor, torch.Tensor]


def batchnorm_affine(norm: nn.modules.batchnorm._BatchNorm) -> Affine:
    """``(scale, shift)`` with ``norm(y) == scale * y + shift`` per channel
    in eval mode.

    Args:
        norm (_BatchNorm): A BatchNorm with running statistics.
    """
    scale = torch.rsqrt(norm.running_var + norm.eps)
    if not norm.affine:
        return scale, -norm.running_mean * scale
    scale = scale * norm.weight
    return scale, torch.addcmul(norm.bias, norm.running_mean, scale, value=-1)


def apply_affine(y: torch.Tensor, affine: Affine) -> torch.Tensor:
    """``scale * y + shift`` per channel of ``y``."""
    scale, shift = (v.to(y.dtype)[:, None, None] for v in affine)
    return torch.addcmul(shift, y, scale)

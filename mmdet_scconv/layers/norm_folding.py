"""The layers that follow a convolution in inference as per-channel affines
and flags, so that SCConv's last pass can apply them instead of passes of
their own.

In inference a BatchNorm is ``scale * y + shift`` per channel, from its
running statistics; a ReLU after it is a clamp at zero on the same values.
"""
from typing import Optional, Tuple

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


def folds_as_affine(norm: nn.Module) -> bool:
    """Whether ``norm`` is, as it runs now, a per-channel affine (an
    eval-mode BatchNorm with running statistics) or nothing at all
    (``nn.Identity``)."""
    if isinstance(norm, nn.Identity):
        return True
    return (isinstance(norm, nn.modules.batchnorm._BatchNorm)
            and not norm.training and norm.running_var is not None)


def norm_affine(norm: nn.Module) -> Optional[Affine]:
    """The affine of a norm that :func:`folds_as_affine`; None for an
    ``nn.Identity``."""
    return None if isinstance(norm, nn.Identity) else batchnorm_affine(norm)


def chain_affines(first: Optional[Affine],
                  then: Optional[Affine]) -> Optional[Affine]:
    """One affine for ``first`` followed by ``then`` (either may be None)."""
    if first is None or then is None:
        return first or then
    scale, shift = then
    return first[0] * scale, torch.addcmul(shift, first[1], scale)

"""``mmdet_scconv::scconv_inference``: a whole SCConv layer (``alpha=0.5``)
without autograd, optionally with the following BatchNorm folded in (the
deploy form).

On the kernels it is four launches and one allocation (its output): the
GroupNorm statistics (two launches), the SRU+squeeze GEMM
(:mod:`..kernels.sru_squeeze`, which never writes the SRU output and adds up
the CRU's pooled statistics as it stores the squeezed tensors) and the CRU
kernel (:mod:`..kernels.cru`). Everything between them lives in reused
scratch buffers (:mod:`..kernels._workspace`), since nothing of it is
returned or kept: eager inference on a GPU is bound by the host's cost per
call. The PyTorch twin is ``mmdet_scconv::scconv``'s.

There is no autograd formula: training runs ``mmdet_scconv::scconv``,
which returns what its backward needs.
"""
from typing import Optional

import torch

from ._common import cast
from .cru import strided_output
from .scconv import layer_forward


@torch.library.custom_op('mmdet_scconv::scconv_inference', mutates_args=())
def scconv_inference(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor,
                     w_squeeze_up: torch.Tensor, w_squeeze_low: torch.Tensor,
                     w_gwc: torch.Tensor, w_pwc_up: torch.Tensor,
                     w_pwc_low: torch.Tensor, scale: Optional[torch.Tensor],
                     shift: Optional[torch.Tensor], groups: int, eps: float,
                     threshold: float, gate: str, stride: int, dilation: int,
                     dtype: torch.dtype, kernels: bool) -> torch.Tensor:
    """SCConv's output (``scale * y + shift`` with a folded BatchNorm).

    Args:
        x (Tensor): ``(N, C, H, W)``.
        gamma, beta (Tensor): The SRU GroupNorm's own affine.
        w_squeeze_up, w_squeeze_low (Tensor): The CRU's squeeze weights.
        w_gwc, w_pwc_up, w_pwc_low (Tensor): The CRU's other weights.
        scale, shift (Tensor, optional): A folded BatchNorm's affine.
        groups (int), eps (float): The GroupNorm's.
        threshold (float), gate (str): The SRU gate's.
        stride (int), dilation (int): The CRU's.
        dtype (torch.dtype): The convolutions' dtype.
        kernels (bool): Run the Triton kernels, else the PyTorch twins.
    """
    affine = None if scale is None else (cast(scale, torch.float32),
                                         cast(shift, torch.float32))
    return layer_forward(
        x,
        gamma,
        beta,
        w_squeeze_up,
        w_squeeze_low,
        w_gwc,
        w_pwc_up,
        w_pwc_low,
        groups,
        eps,
        threshold,
        gate,
        stride,
        dilation,
        dtype,
        kernels,
        affine,
        reuse=True)[0]


@scconv_inference.register_fake
def _(x, gamma, beta, w_squeeze_up, w_squeeze_low, w_gwc, w_pwc_up, w_pwc_low,
      scale, shift, groups, eps, threshold, gate, stride, dilation, dtype,
      kernels):
    return strided_output(x, w_gwc.shape[0], stride, dtype)

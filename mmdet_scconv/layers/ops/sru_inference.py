"""``mmdet_scconv::sru_inference``: the SRU output (Eq. 1-4) without
autograd, where the Triton kernels do not run (the CPU's inference path);
``mmdet_scconv::sru_inference_pooled``: the same as two tensors, the lower
half pooled 2x2 as a strided CRU uses it (the kernel then never writes it
at full resolution); ``mmdet_scconv::sru_squeeze_inference``: the two
halves through the CRU's squeeze convolutions (``alpha=0.5``), the SRU
output never written whole.

On fp32 CPU tensors it runs the compiled kernel of
``mmdet_scconv/csrc/sru_inference_cpu.cpp`` (:mod:`..kernels.cpu`): two
passes over the input, the GroupNorm statistics, then one pass that
normalises, gates and cross-reconstructs each pair of channels ``(c, c +
C/2)``, tile by tile of pixels; the squeezed form multiplies each tile,
held in cache, by the squeeze weights (``csrc/pointwise_tile.h``) and
writes the two squeezed tensors in the layout asked for. Its PyTorch twin
(:func:`.sru.sru_output`, about a dozen passes, then the squeezes as
matrix products) runs for every other dtype and device, and in place of
the compiled kernel where that was not built, with a warning.

There is no autograd formula: training goes through ``mmdet_scconv::sru``
or ``mmdet_scconv::scconv``, which keep what their backward needs.
"""
import torch

from ..cru import downsample
from ..kernels._layout import (dense, empty_like_layout, layout_of,
                               memory_format)
from ..kernels.cpu import kernels_for
from ..pointwise import pointwise
from ..sru import GAMMA_SUM_EPS
from ._common import cast
from .sru import gn_affine, split_halves, sru_output


def _twin(x, gamma, beta, groups, eps, threshold, gate):
    """The PyTorch twin's SRU output, in ``x``'s dtype."""
    weight, bias = gn_affine(gamma, beta, gate)
    output, _, _ = sru_output(x, weight, bias, groups, eps, threshold, gate)
    return cast(output, x.dtype)


@torch.library.custom_op('mmdet_scconv::sru_inference', mutates_args=())
def sru_inference(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor,
                  groups: int, eps: float, threshold: float,
                  gate: str) -> torch.Tensor:
    """The SRU output in ``x``'s dtype and layout: channels ``[0, C/2)``
    are ``X11 + X22``, ``[C/2, C)`` are ``X12 + X21``.

    Args:
        x (Tensor): ``(N, C, H, W)``, ``C`` even.
        gamma, beta (Tensor): The GroupNorm's own affine, ``(C,)``.
        groups (int), eps (float): The GroupNorm's.
        threshold (float), gate (str): The gate's (``'soft'``/``'hard'``).
    """
    x = dense(x)
    kernels = kernels_for(x)
    if kernels is None:
        return _twin(x, gamma, beta, groups, eps, threshold, gate)
    out = torch.empty_like(x)
    kernels.sru_inference_out(x, gamma, beta, groups, eps, GAMMA_SUM_EPS,
                              threshold, gate == 'hard', out)
    return out


@sru_inference.register_fake
def _(x, gamma, beta, groups, eps, threshold, gate):
    return torch.empty_like(dense(x))


def _pooled_outputs(x):
    """Empty ``upper`` and pooled ``lower`` in dense ``x``'s layout."""
    half = x.shape[1] // 2
    h, w = x.shape[-2:]
    return (empty_like_layout(x, half),
            empty_like_layout(x, half, size=(h // 2, w // 2)))


@torch.library.custom_op('mmdet_scconv::sru_inference_pooled', mutates_args=())
def sru_inference_pooled(x: torch.Tensor, gamma: torch.Tensor,
                         beta: torch.Tensor, groups: int, eps: float,
                         threshold: float,
                         gate: str) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`sru_inference`'s upper half and its lower half averaged over
    2x2 windows, each in ``x``'s dtype and layout. ``H`` and ``W`` must be
    even (the windows tile the input).

    Args: as :func:`sru_inference`.

    Returns:
        tuple[Tensor, Tensor]: ``(N, C/2, H, W)`` and ``(N, C/2, H/2,
        W/2)``.
    """
    x = dense(x)
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        raise ValueError(
            f'sru_inference_pooled pools 2x2 windows that must tile the '
            f'input, got {h}x{w}; use sru_inference and pool with '
            f'ceil_mode there.')
    kernels = kernels_for(x)
    if kernels is None:
        upper, lower = split_halves(
            _twin(x, gamma, beta, groups, eps, threshold, gate))
        layout = layout_of(x)
        return (upper.contiguous(memory_format=layout),
                downsample(lower, 2).contiguous(memory_format=layout))
    upper, lower = _pooled_outputs(x)
    kernels.sru_inference_pooled_out(x, gamma, beta, groups, eps,
                                     GAMMA_SUM_EPS, threshold, gate == 'hard',
                                     upper, lower)
    return upper, lower


@sru_inference_pooled.register_fake
def _(x, gamma, beta, groups, eps, threshold, gate):
    return _pooled_outputs(dense(x))


def _squeezed_outputs(x, w_up, w_low, layout):
    return tuple(
        torch.empty((x.shape[0], w.shape[0], *x.shape[2:]),
                    dtype=x.dtype,
                    device=x.device,
                    memory_format=layout) for w in (w_up, w_low))


@torch.library.custom_op(
    'mmdet_scconv::sru_squeeze_inference', mutates_args=())
def sru_squeeze_inference(
        x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, groups: int,
        eps: float, threshold: float, gate: str, w_up: torch.Tensor,
        w_low: torch.Tensor,
        channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`sru_inference`'s halves squeezed: ``conv1x1(upper, w_up)`` and
    ``conv1x1(lower, w_low)``, in ``x``'s dtype.

    Args:
        x, gamma, beta, groups, eps, threshold, gate: As
            :func:`sru_inference`.
        w_up, w_low (Tensor): The squeeze weights, ``(Cu, C/2, 1, 1)`` and
            ``(Cl, C/2, 1, 1)`` (or without the 1x1).
        channels_last (bool): The outputs' layout: channels-last, else
            NCHW (whatever ``x``'s is).

    Returns:
        tuple[Tensor, Tensor]: ``(N, Cu, H, W)`` and ``(N, Cl, H, W)``.
    """
    x = dense(x)
    layout = memory_format(channels_last)
    kernels = kernels_for(x)
    if kernels is None:
        upper, lower = split_halves(
            _twin(x, gamma, beta, groups, eps, threshold, gate))
        return (pointwise(upper, w_up,
                          layout), pointwise(lower, w_low, layout))
    z_up, z_low = _squeezed_outputs(x, w_up, w_low, layout)
    kernels.sru_squeeze_out(x, gamma, beta, groups, eps, GAMMA_SUM_EPS,
                            threshold, gate == 'hard', w_up, w_low, z_up,
                            z_low)
    return z_up, z_low


@sru_squeeze_inference.register_fake
def _(x, gamma, beta, groups, eps, threshold, gate, w_up, w_low,
      channels_last):
    layout = memory_format(channels_last)
    return _squeezed_outputs(x, w_up, w_low, layout)

"""``mmdet_scconv::sru_inference``: the SRU output (Eq. 1-4) without
autograd, where the Triton kernels do not run (the CPU's inference path).

On fp32 CPU tensors it runs the compiled kernel of
``mmdet_scconv/csrc/sru_inference_cpu.cpp`` (:mod:`..kernels.cpu`): two
passes over the input, the GroupNorm statistics, then one pass that
normalises, gates and cross-reconstructs each pair of channels ``(c, c +
C/2)``. Its PyTorch twin (:func:`.sru.sru_output`, about a dozen passes)
runs for every other dtype and device, and in place of the compiled kernel
where that was not built, with a warning.

There is no autograd formula: training goes through ``mmdet_scconv::sru``
or ``mmdet_scconv::sru_squeeze``, which save what their backward needs.
"""
import functools
import warnings

import torch

from ..kernels.cpu import cpu_kernels, load_error
from ._common import cast
from .sru import gn_affine, sru_output


def _dense(x):
    """``x`` if it is contiguous NCHW or channels-last, else NCHW."""
    if x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last):
        return x
    return x.contiguous()


@functools.lru_cache(maxsize=None)
def _warn_not_built(reason):
    warnings.warn(
        f"mmdet-scconv's CPU kernels are not built for this torch or CPU "
        f"({reason}), so SCConv inference on the CPU runs its SRU as "
        f"PyTorch ops, several times slower: rebuild them with pip install "
        f"--no-build-isolation -e . (or bash tools/install.sh).")


def _compiled_kernels(x):
    """The compiled CPU kernels where they take ``x`` (fp32 on the CPU),
    else None."""
    if x.device.type != 'cpu' or x.dtype != torch.float32:
        return None
    kernels = cpu_kernels()
    if kernels is None:
        _warn_not_built(load_error())
    return kernels


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
    x = _dense(x)
    weight, bias = gn_affine(gamma, beta, gate)
    kernels = _compiled_kernels(x)
    if kernels is None:
        output, _, _ = sru_output(x, weight, bias, groups, eps, threshold,
                                  gate)
        return cast(output, x.dtype)
    out = torch.empty_like(x)
    kernels.sru_inference_out(x, cast(weight, torch.float32),
                              cast(bias, torch.float32), groups, eps,
                              threshold, gate == 'hard', out)
    return out


@sru_inference.register_fake
def _(x, gamma, beta, groups, eps, threshold, gate):
    return torch.empty_like(_dense(x))

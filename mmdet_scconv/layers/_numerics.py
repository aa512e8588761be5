"""Dtype helpers (the gates and softmaxes run in at least fp32) and the
relative error every exactness check uses."""
import torch

#: Relative error allowed between two paths of the same computation: fp32
#: rounding; bf16 keeps 8 mantissa bits, fp16 11.
TOLERANCES = {'fp32': 1e-5, 'bf16': 2e-2, 'fp16': 1e-2}

_DTYPE_NAMES = {
    torch.float32: 'fp32',
    torch.bfloat16: 'bf16',
    torch.float16: 'fp16',
    torch.float64: 'fp64'
}


def dtype_name(dtype: torch.dtype) -> str:
    """``'fp32'``, ``'bf16'``, ``'fp16'`` (or ``str(dtype)``)."""
    return _DTYPE_NAMES.get(dtype, str(dtype))


def at_least_fp32(dtype: torch.dtype) -> torch.dtype:
    """Promote half types to fp32; keep fp32 and fp64 as they are."""
    return torch.promote_types(dtype, torch.float32)


def conv_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype a convolution of ``x`` runs in: autocast's, if enabled."""
    device = x.device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return x.dtype


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """``||actual - expected|| / ||expected||``, computed in fp64 (0 for
    two empty tensors)."""
    if expected.numel() == 0 and actual.numel() == 0:
        return 0.0
    actual, expected = actual.double(), expected.double()
    return ((actual - expected).norm() /
            expected.norm().clamp_min(1e-30)).item()

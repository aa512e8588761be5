"""Dtype helpers (the gates and softmaxes run in at least fp32) and the
relative error every exactness check uses."""
import torch


def at_least_fp32(dtype: torch.dtype) -> torch.dtype:
    """Promote half types to fp32; keep fp32 and fp64 as they are."""
    return torch.promote_types(dtype, torch.float32)


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """``||actual - expected|| / ||expected||``, computed in fp64 (0 for
    two empty tensors)."""
    if expected.numel() == 0 and actual.numel() == 0:
        return 0.0
    actual, expected = actual.double(), expected.double()
    return ((actual - expected).norm() /
            expected.norm().clamp_min(1e-30)).item()

"""Dtype helpers: the gates and softmaxes run in at least fp32."""
import torch


def at_least_fp32(dtype: torch.dtype) -> torch.dtype:
    """Promote half types to fp32; keep fp32 and fp64 as they are."""
    return torch.promote_types(dtype, torch.float32)

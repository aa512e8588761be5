"""Mixed precision where MMEngine's ``AmpOptimWrapper`` does not run."""
from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """Run forward and loss under ``torch.autocast``, without loss scaling.

    MMEngine 0.10.7's ``AmpOptimWrapper`` refuses CPUs. bfloat16 keeps
    fp32's exponent range, so it needs no loss scaling and this wrapper is
    all CPU mixed precision requires.

    Args:
        dtype (str): Autocast dtype. Default: ``'bfloat16'``.
        device_type (str): Autocast device type. Default: ``'cpu'``.
        **kwargs: The arguments of ``OptimWrapper``.
    """

    def __init__(self, dtype='bfloat16', device_type='cpu', **kwargs):
        super().__init__(**kwargs)
        self.cast_dtype = getattr(torch, dtype)
        self.device_type = device_type

    @contextmanager
    def optim_context(self, model):
        with super().optim_context(model), torch.autocast(
                self.device_type, dtype=self.cast_dtype):
            yield

"""SCConv's registered ops, in the ``mmdet_scconv`` namespace
(:mod:`.scconv`): ``scconv`` and its backward ``scconv_backward`` for
training, ``scconv_inference`` without autograd. Their default
implementation is the PyTorch math of :mod:`.sru` and :mod:`.cru`; the
Triton kernels are registered for CUDA (and for the CPU under Triton's
interpreter). :class:`..SCConv` calls them, so
``torch.compile(fullgraph=True)`` traces a model without graph breaks and
keeps the kernels, and ``torch.library.opcheck`` checks each.
"""
from .scconv import (CHECK_CASES, KERNEL_DEVICES, register_cpu_kernels, scconv,
                     scconv_backward, scconv_inference)

__all__ = [
    'scconv', 'scconv_backward', 'scconv_inference', 'CHECK_CASES',
    'KERNEL_DEVICES', 'register_cpu_kernels'
]

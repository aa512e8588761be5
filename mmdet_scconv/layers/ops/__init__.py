"""SCConv's fused operations, registered with ``torch.library`` in the
``mmdet_scconv`` namespace, one file per op: its schema, its Triton side (the
kernels of :mod:`..kernels`, imported on use: the core imports without
triton), its PyTorch twin, its fake implementation and its autograd formula.

* ``mmdet_scconv::sru`` (+ ``sru_backward``): the SRU's two output halves;
* ``mmdet_scconv::cru`` (+ ``cru_backward``): the CRU from its squeezed inputs;
* ``mmdet_scconv::scconv`` (+ ``scconv_backward``): a whole layer
  (``alpha=0.5``) for training;
* ``mmdet_scconv::scconv_inference``: a whole layer without autograd;
* ``mmdet_scconv::sru_inference`` (+ ``sru_inference_pooled``, its lower
  half pooled 2x2, and ``sru_squeeze_inference``, its halves through the
  CRU's squeeze convolutions): the SRU without autograd off the Triton
  kernels, on fp32 CPU tensors a compiled kernel (``mmdet_scconv/csrc``);
* ``mmdet_scconv::cru_fuse`` (+ ``cru_fuse_``, written over the grouped
  convolution's output): the CRU after its grouped convolution without
  autograd off the Triton kernels, likewise.

Every op but these last two groups takes ``kernels``: the Triton kernels
(CUDA, or the CPU under ``TRITON_INTERPRET=1``) or the PyTorch twin; the
last two pick their compiled CPU kernel by the input's device and dtype.
:class:`..SCConv` composes them, so ``torch.compile(fullgraph=True)``
traces a model without graph breaks and keeps the kernels, and
``torch.library.opcheck`` checks each.
"""
from .cru import cru, cru_backward
from .cru_fuse import cru_fuse, cru_fuse_
from .scconv import scconv, scconv_backward
from .scconv_inference import scconv_inference
from .sru import sru, sru_backward
from .sru_inference import (sru_inference, sru_inference_pooled,
                            sru_squeeze_inference)

__all__ = [
    'sru', 'sru_backward', 'cru', 'cru_backward', 'scconv', 'scconv_backward',
    'scconv_inference', 'sru_inference', 'sru_inference_pooled',
    'sru_squeeze_inference', 'cru_fuse', 'cru_fuse_'
]

"""Triton kernels for SCConv's memory-bound parts (the SRU, the CRU fuse),
and in :mod:`.cpu` the loader of the compiled CPU kernel.

Optional: they need the ``triton`` package (``pip install
'mmdet-scconv[triton]'``). They run on CUDA tensors, and on CPU tensors
under Triton's interpreter (``TRITON_INTERPRET=1``, set before triton is
imported), which is how the tests check them on machines without a GPU.
"""
import importlib.util
import os

#: Whether the ``triton`` package can be imported (looked up once: the
#: answer is asked on every SCConv call, also while ``torch.compile``
#: traces it).
TRITON_AVAILABLE = importlib.util.find_spec('triton') is not None


def triton_interpreted() -> bool:
    """Whether Triton kernels run in the interpreter (on CPU tensors)."""
    return os.environ.get('TRITON_INTERPRET', '0') not in ('', '0')


def kernels_can_run(x) -> bool:
    """Whether the Triton kernels can take ``x``: CUDA (or the interpreter)
    with triton installed."""
    on_device = x.is_cuda or (x.device.type == 'cpu' and triton_interpreted())
    return on_device and TRITON_AVAILABLE


def require_triton(x) -> None:
    """Raise a clear error where ``impl='triton'`` cannot run on ``x``."""
    if not TRITON_AVAILABLE:
        raise RuntimeError(
            "impl='triton' needs the triton package: pip install "
            "'mmdet-scconv[triton]' (or use impl='fast', which picks the "
            "kernels by itself where they can run).")
    if not kernels_can_run(x):
        raise RuntimeError(
            f"impl='triton' runs on CUDA tensors (or on the CPU under "
            f"TRITON_INTERPRET=1), got a tensor on {x.device}; use "
            f"impl='fast' there.")

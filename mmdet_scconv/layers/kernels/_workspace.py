"""Scratch buffers the kernels reuse from call to call.

A fresh ``torch.empty`` is a dispatcher call, and eager inference on a GPU
is bound by the host's per-call cost, so a kernel's scratch (memory it
writes and reads back within one op and never returns) is kept here and
handed out again to the next call of the same shape.

Safety: a buffer is only reused on the stream it was last used on (the key
holds the CUDA stream), where kernels run in issue order, so a later kernel
never overwrites scratch that an earlier one still reads; the cache holds
at most :data:`MAX_BUFFERS` buffers and :data:`MAX_BYTES` bytes (least
recently used dropped first; a larger buffer is not kept), so inputs of many
sizes (mmdet's keep-ratio resizing) do not pile up memory. Nothing returned
by an op or saved for backward ever comes from here.

A *zeroed* buffer (an accumulator that kernels add into) is made with zeros
and every user leaves it as it found it: the last kernel of the op that
reads it zeroes it again, and the op zeroes it itself if it fails midway.
"""
import collections
import contextlib
from typing import Optional

import torch

#: Buffers kept at most, over all names, shapes, dtypes and devices.
MAX_BUFFERS = 64
#: Bytes kept at most, over all buffers.
MAX_BYTES = 256 * 2**20

_buffers = collections.OrderedDict()


def _stream_key(device: torch.device):
    if device.type == 'cuda':
        return torch.cuda.current_stream(device).cuda_stream
    return None


def scratch(name: str,
            shape,
            dtype: torch.dtype,
            device: torch.device,
            memory_format=torch.contiguous_format,
            zeroed: bool = False) -> torch.Tensor:
    """An uninitialised (or ``zeroed``) buffer of ``shape`` for the kernel
    scratch ``name``, the same one as the last call with this key had (see
    the module docstring).

    Args:
        name (str): What the buffer is for, e.g. ``'sru.partials'``.
        shape (tuple[int]): Its shape.
        dtype (torch.dtype), device (torch.device): Its dtype and device.
        memory_format (torch.memory_format): Its layout (4-D shapes).
        zeroed (bool): An accumulator, handed out zeroed (see the module
            docstring). Default: False.
    """
    key = (name, tuple(shape), dtype, device, memory_format, zeroed,
           _stream_key(device))
    buffer = _buffers.get(key)
    if buffer is not None:
        _buffers.move_to_end(key)
        return buffer
    # Outside inference mode: a buffer made under it could not be handed to
    # a kernel of a later training step's autograd graph.
    with torch.inference_mode(False):
        buffer = torch.empty(
            shape, dtype=dtype, device=device, memory_format=memory_format)
        if zeroed:
            buffer.zero_()
    if _nbytes(buffer) <= MAX_BYTES:
        _buffers[key] = buffer
        while (len(_buffers) > MAX_BUFFERS
               or sum(map(_nbytes, _buffers.values())) > MAX_BYTES):
            _buffers.popitem(last=False)
    return buffer


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def clear() -> None:
    """Drop every cached buffer."""
    _buffers.clear()


@contextlib.contextmanager
def zeroed_on_error(buffer: Optional[torch.Tensor]):
    """Zero ``buffer`` (a zeroed scratch, see :func:`scratch`; None: none)
    if the work inside fails before its last kernel has zeroed it, so that
    no later call adds into what this one left there; then re-raise."""
    try:
        yield
    except BaseException:
        if buffer is not None:
            buffer.zero_()
        raise

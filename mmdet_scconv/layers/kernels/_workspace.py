"""Scratch buffers the kernels reuse from call to call.

A fresh ``torch.empty`` is a dispatcher call, and eager inference on a GPU
is bound by the host's per-call cost, so a kernel's scratch (memory it
writes and reads back within one op and never returns) is kept here and
handed out again to the next call of the same shape.

Safety: a buffer is only reused on the stream it was last used on (the key
holds the CUDA stream), where kernels run in issue order, so a later kernel
never overwrites scratch that an earlier one still reads; the cache holds
at most :data:`MAX_BUFFERS` buffers (least recently used dropped first), so
inputs of many sizes (mmdet's keep-ratio resizing) do not pile up memory.
Nothing returned by an op or saved for backward ever comes from here.
"""
import collections

import torch

#: Buffers kept at most, over all names, shapes, dtypes and devices.
MAX_BUFFERS = 64

_buffers = collections.OrderedDict()


def _stream_key(device: torch.device):
    if device.type == 'cuda':
        return torch.cuda.current_stream(device).cuda_stream
    return None


def scratch(name: str,
            shape,
            dtype: torch.dtype,
            device: torch.device,
            memory_format=torch.contiguous_format) -> torch.Tensor:
    """An uninitialised buffer of ``shape`` for the kernel scratch ``name``,
    the same one as the last call with this key had (see the module
    docstring).

    Args:
        name (str): What the buffer is for, e.g. ``'sru.partials'``.
        shape (tuple[int]): Its shape.
        dtype (torch.dtype), device (torch.device): Its dtype and device.
        memory_format (torch.memory_format): Its layout (4-D shapes).
    """
    key = (name, tuple(shape), dtype, device, memory_format,
           _stream_key(device))
    buffer = _buffers.get(key)
    if buffer is None:
        # Outside inference mode: a buffer made under it could not be
        # handed to a kernel of a later training step's autograd graph.
        with torch.inference_mode(False):
            buffer = torch.empty(
                shape, dtype=dtype, device=device, memory_format=memory_format)
        _buffers[key] = buffer
        if len(_buffers) > MAX_BUFFERS:
            _buffers.popitem(last=False)
    else:
        _buffers.move_to_end(key)
    return buffer


def clear() -> None:
    """Drop every cached buffer."""
    _buffers.clear()

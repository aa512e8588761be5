"""How the kernels address a 4-D tensor: element ``(n, c, p)`` with
``p = h * W + w`` sits at ``n * stride_n + c * stride_c + p * stride_p``,
which holds for NCHW-contiguous and channels-last tensors alike."""
import torch


def is_channels_last(x: torch.Tensor) -> bool:
    return (not x.is_contiguous()) and x.is_contiguous(
        memory_format=torch.channels_last)


def dense(x: torch.Tensor) -> torch.Tensor:
    """``x`` itself if NCHW- or channels-last-contiguous, else a copy."""
    if x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last):
        return x
    return x.contiguous()


def kernel_arg(t: torch.Tensor, dtype=None) -> torch.Tensor:
    """``t`` as a kernel argument: contiguous (and of ``dtype``, if given).
    ``t`` itself when it already is, without a dispatcher call: this runs
    for every weight of every layer at every step, where eager inference is
    bound by the host's per-call cost. Kernels read the data only, so
    autograd state needs no detaching."""
    if t.is_contiguous() and (dtype is None or t.dtype == dtype):
        return t
    return t.detach().to(dtype or t.dtype).contiguous()


def strides(x: torch.Tensor):
    """``(stride_n, stride_c, stride_p)`` of a :func:`dense` tensor."""
    n, c, h, w = x.shape
    if is_channels_last(x):
        return h * w * c, 1, c
    return c * h * w, h * w, 1


def empty_like_layout(x: torch.Tensor, channels: int, dtype=None, size=None):
    """An uninitialised ``(N, channels, H, W)`` tensor in ``x``'s layout
    (``(H, W)`` of ``x`` unless ``size`` says otherwise)."""
    n, _, h, w = x.shape
    h, w = size or (h, w)
    return torch.empty((n, channels, h, w),
                       dtype=dtype or x.dtype,
                       device=x.device,
                       memory_format=layout_of(x))


def memory_format(channels_last: bool) -> torch.memory_format:
    """``torch.channels_last`` if ``channels_last``, else
    ``torch.contiguous_format``."""
    return torch.channels_last if channels_last else torch.contiguous_format


def layout_of(x: torch.Tensor) -> torch.memory_format:
    """``torch.channels_last`` for a channels-last ``x``, else
    ``torch.contiguous_format``."""
    return (torch.channels_last
            if is_channels_last(x) else torch.contiguous_format)


def next_power_of_2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def pixel_block(channel_block: int, elements: int) -> int:
    """Pixels per program so that a tile holds about ``elements`` values."""
    return max(16, min(256, elements // channel_block))


def sums_length(n, c_up, c_low, kernel_size):
    """Values of the CRU kernels' pooled sums (``cru.pooled_sums``) for
    ``n`` samples: per sample a row of ``T``, ``C_up x kernel_size**2``
    sums (per channel and tap, ``X_up`` summed over the pixels that tap
    reads), then the pixel sums of ``pool(X_up)`` and ``pool(X_low)``."""
    return n * (c_up * (kernel_size**2 + 1) + c_low)

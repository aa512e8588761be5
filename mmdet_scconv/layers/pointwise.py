"""1x1 convolutions as batched matrix products over the pixels."""
import torch


def _channels_last(t: torch.Tensor) -> bool:
    """Whether ``t``'s channels are its innermost dimension (a channels-last
    tensor or a channel slice of one)."""
    return t.stride(1) == 1


def memory_layout(t: torch.Tensor) -> torch.memory_format:
    """``torch.channels_last`` for a channels-last tensor or a channel slice
    of one, else ``torch.contiguous_format``."""
    return torch.channels_last if _channels_last(
        t) else torch.contiguous_format


def _batched_weight(weight, n, o, c, dtype):
    """``(N, O, C)`` from ``(O, C)``, ``(O, C, 1, 1)`` or ``(N, O, C)``."""
    return weight.reshape(-1, o, c).to(dtype).expand(n, o, c)


def add_pointwise_(out: torch.Tensor,
                   x: torch.Tensor,
                   weight: torch.Tensor,
                   beta: float = 1.0) -> torch.Tensor:
    """``out = beta * out + conv1x1(x, weight)`` in place, without writing
    the convolution's output anywhere else.

    One ``baddbmm_`` over the pixels: on the CPU it spares the fresh output
    a convolution allocates (each large allocation page-faults there) and
    the pass that adds it; it reads channel slices (the SRU halves) without
    the copy a convolution makes of them; and it avoids oneDNN's slow NCHW
    kernels for some narrow 1x1 convolutions (16 -> 64 channels at 128x192
    took ten times a matrix product's time).

    Args:
        out (Tensor): ``(N, O, H, W)``, NCHW or channels-last, possibly a
            slice along channels of such a tensor; updated in place.
        x (Tensor): ``(N, C, H, W)`` input, possibly a channel slice.
        weight (Tensor): ``(O, C)`` or ``(O, C, 1, 1)``, or ``(N, O, C)``
            for a different weight per sample.
        beta (float): Scale of ``out``'s values; 0 ignores them (NaNs
            included). Default: 1.

    Returns:
        Tensor: ``out``.
    """
    n, o = out.shape[:2]
    c = x.shape[1]
    x = x.to(out.dtype)
    weight = _batched_weight(weight, n, o, c, out.dtype)
    if _channels_last(out):
        # (N, H*W, O) += (N, H*W, C) @ (N, C, O).
        out.permute(0, 2, 3, 1).view(n, -1, o).baddbmm_(
            x.permute(0, 2, 3, 1).reshape(n, -1, c),
            weight.transpose(1, 2),
            beta=beta)
    else:
        out.view(n, o, -1).baddbmm_(weight, x.reshape(n, c, -1), beta=beta)
    return out


def pointwise(x: torch.Tensor,
              weight: torch.Tensor,
              layout: torch.memory_format = None) -> torch.Tensor:
    """``conv1x1(x, weight)`` (no bias) as :func:`add_pointwise_` into a
    fresh tensor in ``layout``, by default ``x``'s (:func:`memory_layout`).
    """
    layout = layout or memory_layout(x)
    out_channels = weight.shape[0 if weight.dim() == 4 else -2]
    out = torch.empty((x.shape[0], out_channels, *x.shape[2:]),
                      dtype=x.dtype,
                      device=x.device,
                      memory_format=layout)
    return add_pointwise_(out, x, weight, beta=0.0)

"""Triton helpers shared by the kernels: (pixel block x channel) tiles of
4-D tensors addressed as in :mod:`._layout`, and the operand types of their
matrix products."""
import torch
import triton
import triton.language as tl

_DOT_DTYPES = {
    torch.float32: tl.float32,
    torch.bfloat16: tl.bfloat16,
    torch.float16: tl.float16
}


def dot_block_k(dtype: torch.dtype, block_n: int) -> int:
    """The largest ``K`` block for a ``tl.dot`` with ``(64, K)`` and ``(K,
    block_n)`` operand tiles in ``dtype``: Triton pipelines these tiles in
    shared memory (three stages on Hopper), and with 4-byte operands or a
    wide output a K block of 64 needs more than the 227 KB an SM has
    (``tools/analysis_tools/compile_kernels.py`` reports each kernel's
    need)."""
    return 64 if dtype.itemsize == 2 and block_n < 128 else 32


def dot_options(dtype: torch.dtype, device: torch.device) -> dict:
    """``DOT_DTYPE`` and ``PRECISION`` for a kernel's ``tl.dot`` that stands
    in for a convolution in ``dtype``: operands rounded to ``dtype`` as cuDNN
    would see them, fp32 products in TF32 where
    ``torch.backends.cudnn.allow_tf32`` lets cuDNN do so."""
    tf32 = (
        dtype == torch.float32 and device.type == 'cuda'
        and torch.backends.cudnn.allow_tf32)
    return dict(
        DOT_DTYPE=_DOT_DTYPES[dtype], PRECISION='tf32' if tf32 else 'ieee')


@triton.jit
def tile_offsets(n, p, c, stride_n, stride_c, stride_p):
    return n * stride_n + p[:, None] * stride_p + c[None, :] * stride_c


@triton.jit
def load_tile(ptr, n, p, c, mask, stride_n, stride_c, stride_p):
    """A tile of ``ptr`` in fp32 (zeros where masked)."""
    return tl.load(
        ptr + tile_offsets(n, p, c, stride_n, stride_c, stride_p),
        mask=mask,
        other=0.0).to(tl.float32)


@triton.jit
def store_tile(ptr, value, n, p, c, mask, stride_n, stride_c, stride_p):
    """Store a tile into ``ptr`` in ``ptr``'s dtype."""
    tl.store(
        ptr + tile_offsets(n, p, c, stride_n, stride_c, stride_p),
        value.to(ptr.dtype.element_ty),
        mask=mask)


@triton.jit
def pool_weight(h, size, STRIDE: tl.constexpr):
    """One over the rows (or columns) of the ``STRIDE``-wide pooling window
    of row ``h`` (``CRU.downsample``: ceil mode, the window cut at the
    edge; 1 past the input, where nothing is loaded)."""
    rows = tl.minimum(STRIDE, size - (h // STRIDE) * STRIDE)
    return 1.0 / tl.maximum(rows, 1).to(tl.float32)


@triton.jit
def load_unpooled(ptr, n, p, c, mask, H, W, Wo, stride_n, stride_c, stride_p,
                  STRIDE: tl.constexpr):
    """What a gradient ``G`` of ``CRU.downsample``'s output (``ptr``,
    ``Wo`` pixels a row) sends to input pixels ``p`` of an ``H x W`` input
    (fp32): ``G`` at their window over the window's size."""
    if STRIDE == 1:
        return load_tile(ptr, n, p, c, mask, stride_n, stride_c, stride_p)
    h = p // W
    w = p % W
    window = (h // STRIDE) * Wo + w // STRIDE
    g = load_tile(ptr, n, window, c, mask, stride_n, stride_c, stride_p)
    return g * (pool_weight(h, H, STRIDE) * pool_weight(w, W, STRIDE))[:, None]


@triton.jit
def program_tile(HW, C, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """Sample, pixels, channels and mask of a program on the grid
    (sample, pixel block, channel block)."""
    n = tl.program_id(0)
    p = tl.program_id(1) * BLOCK_P + tl.arange(0, BLOCK_P)
    c = tl.program_id(2) * BLOCK_C + tl.arange(0, BLOCK_C)
    return n, p, c, (p[:, None] < HW) & (c[None, :] < C)


@triton.jit
def zero_share(ptr, numel, program, programs, BLOCK: tl.constexpr):
    """Zero program ``program``'s share of ``ptr[:numel]``, which
    ``programs`` programs split: a consumer leaves the accumulators it read
    zeroed for their next user, without a launch of its own."""
    share = tl.cdiv(numel, programs)
    end = (program + 1) * share
    for start in range(program * share, end, BLOCK):
        i = start + tl.arange(0, BLOCK)
        tl.store(ptr + i, 0.0, mask=(i < numel) & (i < end))

"""Triton helpers shared by the kernels: (pixel block x channel) tiles of
4-D tensors addressed as in :mod:`._layout`."""
import triton
import triton.language as tl


@triton.jit
def tile_offsets(n, p, c, stride_n, stride_c, stride_p):
    return n * stride_n + p[:, None] * stride_p + c[None, :] * stride_c


@triton.jit
def load_tile(ptr, n, p, c, mask, stride_n, stride_c, stride_p):
    """A tile of ``ptr`` in fp32 (zeros where masked)."""
    return tl.load(ptr + tile_offsets(n, p, c, stride_n, stride_c, stride_p),
                   mask=mask, other=0.0).to(tl.float32)


@triton.jit
def store_tile(ptr, value, n, p, c, mask, stride_n, stride_c, stride_p):
    """Store a tile into ``ptr`` in ``ptr``'s dtype."""
    tl.store(ptr + tile_offsets(n, p, c, stride_n, stride_c, stride_p),
             value.to(ptr.dtype.element_ty), mask=mask)


@triton.jit
def program_tile(HW, C, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """Sample, pixels, channels and mask of a program on the grid
    (sample, pixel block, channel block)."""
    n = tl.program_id(0)
    p = tl.program_id(1) * BLOCK_P + tl.arange(0, BLOCK_P)
    c = tl.program_id(2) * BLOCK_C + tl.arange(0, BLOCK_C)
    return n, p, c, (p[:, None] < HW) & (c[None, :] < C)

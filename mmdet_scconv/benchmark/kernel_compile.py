"""Compile every Triton kernel launch that SCConv's paths make, for a GPU
architecture, on any machine: Triton's compiler and ``ptxas`` ship with the
triton wheel, so no GPU is needed. This catches what Triton's interpreter
(where the tests run the kernels on a CPU) cannot: code that does not
compile for the GPU, or tiles that do not fit its shared memory.

The launches are captured by running the ops' kernel side
(:func:`..layers.ops.scconv.kernels_forward` and ``kernels_backward``) on
small CPU tensors with the kernels recorded instead of run (the outputs are
meaningless; only the launch arguments matter): deploy and plain inference,
and a training step's forward and backward, in each compute dtype.
"""
import contextlib
import dataclasses
from dataclasses import dataclass, field

import torch

from ..layers import SCConv
from ..layers.ops.scconv import kernels_backward, kernels_forward
from .timing import DTYPES

_TYPE_NAMES = {
    torch.float32: 'fp32',
    torch.bfloat16: 'bf16',
    torch.float16: 'fp16',
    torch.int32: 'i32',
    torch.int64: 'i64'
}
#: The most shared memory one block may use, in bytes, per compute
#: capability (x10): sm_90 (H100/H200) 227 KB, sm_80 (A100) 163 KB, sm_86 and
#: sm_89 99 KB, sm_70 (V100) 96 KB, sm_75 (T4) 64 KB.
SHARED_MEMORY_LIMITS = {
    90: 232448,
    80: 166912,
    86: 101376,
    89: 101376,
    70: 98304,
    75: 65536
}
#: bf16 arithmetic needs sm_80 (A100) or newer; V100 and T4 train in fp16.
BF16_MIN_ARCH = 80


@dataclass
class Launch:
    """One distinct kernel specialisation.

    Args:
        kernel: The ``triton.jit`` function.
        signature (dict): Argument name -> Triton type (``'constexpr'`` for
            compile-time constants).
        constexprs (dict): The compile-time constants.
        options (dict): ``num_warps`` / ``num_stages`` if given.
        arch (int, optional): The compute capability (x10) compiled for.
        error (str, optional): Why it did not compile.
        shared (int, optional): Bytes of shared memory it needs.
    """
    kernel: object
    signature: dict
    constexprs: dict
    options: dict = field(default_factory=dict)
    arch: int = None
    error: str = None
    shared: int = None

    @property
    def uses_bf16(self):
        """Whether it reads, writes or multiplies bf16 numbers."""
        return any('bf16' in str(v) for v in (*self.signature.values(),
                                              *self.constexprs.values()))

    def runs_on(self, arch):
        """Whether GPUs of compute capability ``arch`` (x10) run it."""
        return arch >= BF16_MIN_ARCH or not self.uses_bf16

    @property
    def name(self):
        return self.kernel.fn.__name__

    def describe(self):
        constants = ', '.join(f'{k}={v}' for k, v in self.constexprs.items())
        return f'sm_{self.arch} {self.name}({constants}; {self.options})'


def _type_of(value):
    if isinstance(value, torch.Tensor):
        return '*' + _TYPE_NAMES[value.dtype]
    if isinstance(value, bool):
        return 'i1'
    if isinstance(value, int):
        return 'i32' if -2**31 <= value < 2**31 else 'i64'
    if isinstance(value, float):
        return 'fp32'
    raise TypeError(f'no Triton type for a {type(value).__name__}')


@contextlib.contextmanager
def captured_launches():
    """Record every Triton launch (distinct specialisations only) instead
    of running it; yields the dict they are recorded in."""
    from triton.runtime.jit import JITFunction

    launches = {}

    def record(kernel, *args, grid, warmup, **kwargs):
        options = {
            k: kwargs.pop(k)
            for k in ('num_warps', 'num_stages') if k in kwargs
        }
        bound = dict(zip(kernel.arg_names, args), **kwargs)
        signature, constexprs = {}, {}
        for name, param in zip(kernel.arg_names, kernel.params):
            if param.is_constexpr:
                signature[name] = 'constexpr'
                constexprs[name] = bound[name]
            else:
                signature[name] = _type_of(bound[name])
        key = (kernel.fn.__name__, tuple(signature.items()),
               tuple(map(str, constexprs.items())), tuple(options.items()))
        launches.setdefault(key, Launch(kernel, signature, constexprs,
                                        options))

    original, JITFunction.run = JITFunction.run, record
    try:
        yield launches
    finally:
        JITFunction.run = original


def run_paths(channels, stride, dtype, size=(9, 7)):
    """SCConv's kernel paths on one CPU input: deploy and plain inference,
    and a training step's forward and backward, computing in ``dtype``
    (a name); the kernels only get recorded."""
    layer = SCConv(channels, channels, 3, stride)
    sru, cru = layer.sru, layer.cru
    weights = (sru.gn.weight, sru.gn.bias, cru.squeeze_up.weight,
               cru.squeeze_low.weight, cru.gwc.weight, cru.pwc_up.weight,
               cru.pwc_low.weight)
    x = torch.randn(2, channels,
                    *size).contiguous(memory_format=torch.channels_last)
    options = (sru.gn.num_groups, sru.gn.eps, sru.gate_threshold, sru.gate,
               stride, 1, DTYPES[dtype] or torch.float32)
    affine = (torch.ones(channels), torch.zeros(channels))
    with torch.no_grad():
        for folded in (None, affine):
            kernels_forward(x, weights, options, folded, reuse=True)
        y, *saved = kernels_forward(x, weights, options)
        kernels_backward(torch.ones_like(y), x, weights, saved, options)


def _compile(launch, target):
    import triton
    from triton.compiler import ASTSource
    try:
        compiled = triton.compile(
            ASTSource(launch.kernel, launch.signature, launch.constexprs),
            target=target,
            options=launch.options)
    except Exception as error:  # reported, never hidden
        launch.error = f'{type(error).__name__}: {error}'.splitlines()[0]
        return
    launch.shared = compiled.metadata.shared
    limit = SHARED_MEMORY_LIMITS.get(target.arch)
    if limit is not None and launch.shared > limit:
        launch.error = (f'needs {launch.shared} B of shared memory, '
                        f'sm_{target.arch} has {limit} B per block')


def compile_paths(
        channels=(64, 128, 256, 512),
        strides=(1, 2),
        dtypes=('fp32', 'bf16', 'fp16'),
        archs=(90, )):
    """Capture SCConv's launches for every combination and compile each
    distinct one for every ``sm_<arch>`` of ``archs`` that runs it (bf16
    from sm_80 on: :meth:`Launch.runs_on`); return the :class:`Launch`
    list.

    fp32 products run in TF32 on a GPU by default (the capture, on the
    CPU, asks for IEEE products), so fp32 ``tl.dot`` launches are compiled
    both ways.
    """
    from triton.backends.compiler import GPUTarget

    with captured_launches() as launches:
        for c in channels:
            for stride in strides:
                for dtype in dtypes:
                    run_paths(c, stride, dtype)
    captured = list(launches.values())
    for launch in list(captured):
        if str(launch.constexprs.get('DOT_DTYPE')) == 'fp32':
            captured.append(
                dataclasses.replace(
                    launch,
                    constexprs=dict(launch.constexprs, PRECISION='tf32')))
    found = []
    for arch in archs:
        target = GPUTarget('cuda', arch, 32)
        for launch in captured:
            if launch.runs_on(arch):
                found.append(dataclasses.replace(launch, arch=arch))
                _compile(found[-1], target)
    return found


def format_compiled(launches) -> str:
    lines = []
    for launch in launches:
        status = (f'FAILED {launch.error}'
                  if launch.error else f'ok, {launch.shared} B shared')
        lines.append(f'{launch.describe()}: {status}')
    failed = sum(launch.error is not None for launch in launches)
    lines.append(f'{len(launches) - failed}/{len(launches)} kernel '
                 f'specialisations compiled')
    return '\n'.join(lines)

"""SCConv's equations compiled by inductor, for callers that run eagerly.

On the CPU, ``torch.compile`` of the reference modules (:class:`.SRU` then
:class:`.CRU`) inside a whole backbone beats every hand-written path
measured (``docs/speed.md``): inductor fuses the SCConv layers' passes with
the BatchNorms and ReLUs around them and keeps the whole graph in the
channels-last layout its convolutions like. So the modules that own SCConv
layers compile their own forward where nobody compiles them:

* :class:`.SCConv` on its own (:func:`compiled_call` of
  :func:`reference_forward`), and the backbones built of them, whole
  (``SCConvResNet``, the benchmark's trunk);
* the first input's shape compiles a static graph (the fastest: inductor
  specialises its loops); the first other shape compiles one graph with
  the batch, height and width dynamic, so later image sizes compile
  nothing;
* the module is an argument and its weights graph inputs, so modules of the
  same configuration share a graph;
* inductor's FX graph and AOTAutograd caches (on by default, under
  ``TORCHINDUCTOR_CACHE_DIR``) let a second process skip code generation.

Where inductor cannot run (no C++ compiler for the CPU, no triton for CUDA,
or its compilation fails), the module warns once and runs eagerly.
``MMDET_SCCONV_COMPILE=0`` runs eagerly without compiling and without a
warning (short runs, where compilation would take longer than it saves;
debugging). Inside an outer ``torch.compile`` or an ONNX export nothing
compiles itself: that compiler or exporter traces the reference modules.
"""
import functools
import os
import warnings
import weakref

import torch

from .norm_folding import apply_affine

#: ``0`` runs the modules eagerly instead of compiling them.
COMPILE_ENV = 'MMDET_SCCONV_COMPILE'

#: Graphs one process may compile for one function (dynamo's default, 8,
#: is too few for SCConv layers: a ResNet-50 has seven configurations, each
#: in training and in inference, in fp32 and under autocast).
RECOMPILE_LIMIT = 64

#: The SCConv implementations whose modules compile themselves.
COMPILED_IMPLS = ('fast', 'torch')

#: Device types where compiling failed in this process: the reason.
_failed = {}

#: The first input shape each module was called with.
_first_shapes = weakref.WeakKeyDictionary()


def reference_forward(scconv, x: torch.Tensor) -> torch.Tensor:
    """``CRU(SRU(x))`` by the reference modules, then a folded BatchNorm's
    affine if :meth:`.SCConv.fuse_norm` set one."""
    y = scconv.cru(scconv.sru(x))
    affine = scconv.out_affine
    return y if affine is None else apply_affine(y, affine)


def compiles_itself(impl: str, x: torch.Tensor) -> bool:
    """Whether a module with SCConv layers of ``impl`` compiles its own
    forward for ``x``: for ``'fast'`` and ``'torch'``, unless switched off
    (``MMDET_SCCONV_COMPILE=0``) or inside a compiler or an ONNX export."""
    return (impl in COMPILED_IMPLS
            and os.environ.get(COMPILE_ENV, '1') not in ('0', '')
            and not torch.compiler.is_compiling()
            and not torch.onnx.is_in_onnx_export())


@functools.lru_cache(maxsize=None)
def inductor_missing(device_type: str) -> str:
    """Why inductor cannot compile for ``device_type`` here, or ``''``."""
    if device_type == 'cpu':
        try:
            from torch._inductor.cpp_builder import get_cpp_compiler
            get_cpp_compiler()
        except Exception as error:  # inductor's own words
            return f'no C++ compiler for inductor ({error})'
        return ''
    if device_type == 'cuda':
        from .kernels import TRITON_AVAILABLE
        return '' if TRITON_AVAILABLE else 'the triton package is missing'
    return f'inductor is not used for {device_type} tensors'


@functools.lru_cache(maxsize=None)
def _compiled(fn):
    return torch.compile(fn, dynamic=False)


def compiled_call(fn, module: torch.nn.Module, x: torch.Tensor):
    """``fn(module, x)`` compiled by inductor (static for ``module``'s first
    input shape, with batch, height and width dynamic for any other), or
    called as it is (with a warning once per device type) where inductor
    cannot run.

    Args:
        fn (callable): A plain function of ``(module, x)``, e.g. a class's
            ``forward``.
        module (nn.Module): Its first argument.
        x (Tensor): ``(N, C, H, W)``.
    """
    device_type = x.device.type
    reason = _failed.get(device_type) or inductor_missing(device_type)
    if reason:
        _warn_eager(device_type, reason)
        return fn(module, x)
    if _first_shapes.setdefault(module, x.shape) != x.shape:
        for dim in (0, 2, 3):
            torch._dynamo.maybe_mark_dynamic(x, dim)
    try:
        with torch._dynamo.config.patch(recompile_limit=RECOMPILE_LIMIT):
            return _compiled(fn)(module, x)
    except torch._dynamo.exc.BackendCompilerFailed as error:
        _failed[device_type] = (
            f'inductor failed: {str(error).splitlines()[0]}')
        return compiled_call(fn, module, x)


@functools.lru_cache(maxsize=None)
def _warn_eager(device_type: str, reason: str) -> None:
    warnings.warn(
        f'SCConv cannot compile its layers for {device_type} tensors here '
        f'({reason}), so they run the reference modules eagerly: same '
        f'results, slower. Install a C++ compiler (CPU) or triton (CUDA) '
        f"for inductor, or set scconv_cfg=dict(impl='reference') to choose "
        f'this path and silence this warning.')

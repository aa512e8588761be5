"""The compiled CPU kernels (``mmdet_scconv/csrc``).

``setup.py`` builds them once per instruction set torch dispatches its own
CPU kernels for (``DEFAULT``, and on x86 ``AVX2`` and ``AVX512``), each into
a module of its own, and :func:`cpu_kernels` imports the one for the
instruction set torch runs on this CPU
(``torch.backends.cpu.get_cpu_capability()``, which ``ATEN_CPU_CAPABILITY``
can lower).
"""
import functools
import importlib
import warnings

import torch

#: The module built for each CPU capability; any other capability (e.g.
#: ARM's) runs the portable ``DEFAULT`` build.
CAPABILITY_MODULES = {
    'DEFAULT': 'mmdet_scconv._cpu_default',
    'AVX2': 'mmdet_scconv._cpu_avx2',
    'AVX512': 'mmdet_scconv._cpu_avx512',
}


def capability_module() -> str:
    """The name of the compiled module for this CPU."""
    return CAPABILITY_MODULES.get(torch.backends.cpu.get_cpu_capability(),
                                  CAPABILITY_MODULES['DEFAULT'])


@functools.lru_cache(maxsize=None)
def _load():
    name = capability_module()
    try:
        return importlib.import_module(name), None
    except ImportError as error:
        return None, f'{name}: {error}'


def cpu_kernels():
    """The compiled kernels' module for this CPU, or None where it cannot
    be imported (see :func:`load_error`)."""
    return _load()[0]


def load_error() -> str:
    """Why :func:`cpu_kernels` is None (the import's error), else ``''``."""
    return _load()[1] or ''


@functools.lru_cache(maxsize=None)
def _warn_not_built(reason):
    warnings.warn(
        f"mmdet-scconv's CPU kernels are not built for this torch or CPU "
        f"({reason}), so SCConv inference on the CPU runs its SRU and CRU "
        f"fuse as PyTorch ops, several times slower: rebuild them with pip "
        f"install --no-build-isolation -e . (or bash tools/install.sh).")


def kernels_for(x: torch.Tensor):
    """The compiled kernels' module where they take ``x`` (fp32 on the
    CPU), else None; warns once where they would but were not built."""
    if x.device.type != 'cpu' or x.dtype != torch.float32:
        return None
    kernels = cpu_kernels()
    if kernels is None:
        _warn_not_built(load_error())
    return kernels

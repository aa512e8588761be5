"""Whether a CPU process keeps the memory its tensors free.

glibc's malloc maps every large allocation fresh (``mmap``) and gives it
back when it is freed; what it keeps on its heap it trims above a
threshold. A network's activations are large, so each inference step
page-faults much of its memory back in: on a 2-core EPYC a ResNet-50 step
at 1x3x512x768 faulted 150-290 MB and spent about a third of its time there
(docs/speed.md). How much, and in which operators, changes from process to
process and with what ran before, which blurs a side-by-side comparison.
PyTorch's CPU performance guide advises a caching allocator (jemalloc,
tcmalloc); glibc can do the same itself: no ``mmap``, no trimming
(``GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=
2147483647`` before the process starts, or :func:`keep_freed_memory` inside
it).
"""
import ctypes
import os

# mallopt's parameters (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
#: mallopt takes an int: the largest threshold, i.e. never trim.
NEVER_TRIM = 2**31 - 1

_kept = False


def _glibc_mallopt():
    """glibc's ``mallopt``, or None where the C library has none."""
    try:
        return ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return None


def can_keep_freed_memory() -> bool:
    """Whether this process's C library has glibc's ``mallopt``."""
    return _glibc_mallopt() is not None


def keep_freed_memory():
    """Make glibc's malloc keep every freed block for reuse, for the rest
    of this process: no allocation is mapped on its own and the heap is
    never trimmed, so after the first steps a model's tensors reuse memory
    that is already mapped. Process-wide and not undone: call it in a
    process that runs inference, not inside a library.

    Raises:
        RuntimeError: The C library has no ``mallopt`` (not glibc), or it
            refused the settings.
    """
    global _kept
    mallopt = _glibc_mallopt()
    if mallopt is None:
        raise RuntimeError(
            "keeping freed CPU memory needs glibc's mallopt, which this C "
            'library does not have; use the default heap (tools/'
            'benchmark.py --cpu-heap default) or preload jemalloc/tcmalloc')
    if not (mallopt(M_MMAP_MAX, 0) and mallopt(M_TRIM_THRESHOLD, NEVER_TRIM)):
        raise RuntimeError(
            'mallopt refused M_MMAP_MAX=0 / M_TRIM_THRESHOLD; this C library '
            "is not glibc's: use the default heap (tools/benchmark.py "
            '--cpu-heap default)')
    _kept = True


def heap_description() -> dict:
    """How this process's heap was set up, for a benchmark's JSON:
    ``cpu_heap`` (``'kept'`` after :func:`keep_freed_memory`, else
    ``'default'``) and the allocator environment variables that are set
    (``GLIBC_TUNABLES``, ``LD_PRELOAD``)."""
    description = dict(cpu_heap='kept' if _kept else 'default')
    for name in ('GLIBC_TUNABLES', 'LD_PRELOAD'):
        if os.environ.get(name):
            description[name.lower()] = os.environ[name]
    return description

"""The Triton kernels check themselves on the device they first run on.

Users' GPUs, drivers and Triton versions differ from any the kernels were
tested on. The first time the kernels run on a device with a
dtype in a process (the registered kernels of :mod:`.ops.scconv` call
:func:`kernels_checked`, so compiled models are checked too), a small SCConv
layer goes through them and through the PyTorch math of the same ops,
forward and backward: the cases of ``ops.scconv.CHECK_CASES``, training
and inference with a folded BatchNorm (milliseconds on a GPU, after
compilation).
The verdict is kept in the process and in a file
(``$MMDET_SCCONV_CACHE_DIR``, default ``~/.cache/mmdet_scconv``), under the
GPU's name, compute capability and driver, the torch, triton and package
versions and a digest of the kernels' sources, so later processes on the
same setup skip the check.

* The kernels match: they run.
* They give other numbers: :class:`KernelCheckError`, naming the device,
  the worst relative error and the fix (``scconv_cfg=dict(impl='torch')``).
* They do not compile or run on the device: :class:`KernelCheckError`
  from the registered kernel; an eager ``impl='fast'`` layer asks first
  (``strict=False``), warns once and runs the compiled reference instead.

``MMDET_SCCONV_SKIP_KERNEL_CHECK=1`` skips the check. It also runs under
Triton's interpreter (on CPU tensors), where the tests exercise it.
"""
import functools
import hashlib
import json
import os
import os.path as osp
import tempfile
import warnings
from dataclasses import asdict, dataclass
from types import SimpleNamespace

import torch

from ..version import __version__
from ._numerics import TOLERANCES, dtype_name, relative_error

SKIP_ENV = 'MMDET_SCCONV_SKIP_KERNEL_CHECK'
CACHE_ENV = 'MMDET_SCCONV_CACHE_DIR'
FIX = ("run SCConv's PyTorch path instead: scconv_cfg=dict(impl='torch') in "
       "the backbone config (or SCConv(..., impl='torch'))")

#: The checked layer: channels, GroupNorm groups, batch and an odd size.
_CHANNELS, _GN_GROUPS, _BATCH, _SIZE = 32, 8, 2, (9, 7)


class KernelCheckError(RuntimeError):
    """SCConv's Triton kernels failed their check on this device."""


@dataclass
class Verdict:
    """What the check found for one setup.

    Args:
        status (str): ``'ok'``, ``'mismatch'`` or ``'failed'`` (the kernels
            did not compile or run).
        worst (float): The worst relative error against the twins (NaN where
            the kernels failed).
        what (str): The worst tensor, or the kernels' error.
        setup (str): The device, driver and versions checked.
        source (str): ``'run'`` in the process that ran it, ``'cache file'``
            where it was read back.
    """
    status: str
    worst: float
    what: str
    setup: str
    source: str = 'run'


_verdicts = {}


def clear_verdicts() -> None:
    """Forget this process's verdicts (the cache file stays)."""
    _verdicts.clear()


def cache_file() -> str:
    """The file that keeps verdicts across processes."""
    root = os.environ.get(CACHE_ENV) or osp.join(
        os.environ.get('XDG_CACHE_HOME') or osp.expanduser('~/.cache'),
        'mmdet_scconv')
    return osp.join(root, 'kernel_checks.json')


def kernels_checked(x: torch.Tensor,
                    dtype: torch.dtype,
                    cases: dict,
                    strict: bool = True) -> bool:
    """Whether the kernels may run for ``x`` computing in ``dtype``,
    checking them first on a new setup.

    Args:
        x (Tensor): The layer's input (its device and dtype).
        dtype (torch.dtype): The convolutions' dtype (autocast's or ``x``'s).
        cases (dict): The checked computations (``ops.scconv.CHECK_CASES``):
            name -> function of ``(kernels, layer)`` returning tensors.
        strict (bool): Raise where the kernels fail on the device (the
            registered kernels, ``impl='triton'``); else warn once and
            return False (an eager ``impl='fast'`` layer). Default: True.

    Raises:
        KernelCheckError: The kernels give other numbers than the PyTorch
            path, or (``strict``) do not run on the device.
    """
    if (os.environ.get(SKIP_ENV, '0') not in ('', '0')
            or torch.compiler.is_compiling()):
        return True
    key = (str(x.device), x.dtype, dtype)
    verdict = _verdicts.get(key)
    if verdict is None:
        verdict = _verdicts[key] = _check(x.device, x.dtype, dtype, cases)
    if verdict.status == 'ok':
        return True
    if verdict.status == 'mismatch':
        raise KernelCheckError(
            f"SCConv's Triton kernels give other numbers than its PyTorch "
            f"path on {verdict.setup}: worst relative error "
            f"{verdict.worst:.2e} ({verdict.what}; allowed "
            f"{TOLERANCES[dtype_name(dtype)]:.0e}). To train and test "
            f"correctly here, {FIX}. Please report it with this message.")
    message = (f"SCConv's Triton kernels do not run on {verdict.setup}: "
               f"{verdict.what}")
    if strict:
        raise KernelCheckError(
            f"{message}. impl='triton' needs them; use impl='fast', which "
            f"then runs the PyTorch path, or {FIX}.")
    _warn_once(f"{message}. impl='fast' runs SCConv's PyTorch path "
               f"(the reference compiled by inductor) instead (slower; same "
               f"results).")
    return False


@functools.lru_cache(maxsize=None)
def _warn_once(message: str) -> None:
    warnings.warn(message)


def _check(device, x_dtype, dtype, cases) -> Verdict:
    setup = describe_setup(device, x_dtype, dtype)
    cached = _read_cache().get(setup)
    if cached is not None:
        return Verdict(**dict(cached, source='cache file'))
    verdict = run_check(device, x_dtype, dtype, cases, setup)
    _write_cache(setup, verdict)
    return verdict


def describe_setup(device, x_dtype, dtype) -> str:
    """The setup a verdict holds for, in words (also the cache key)."""
    import triton
    if device.type == 'cuda':
        props = torch.cuda.get_device_properties(device)
        where = (f'{props.name} (sm_{props.major}{props.minor}, driver '
                 f'{_driver_version()})')
    else:
        where = f'{device} (Triton interpreter)'
    return (f'{where}, {dtype_name(x_dtype)} input, {dtype_name(dtype)} '
            f'compute, torch {torch.__version__}, triton '
            f'{triton.__version__}, mmdet-scconv {__version__} (kernels '
            f'{kernel_sources_digest()})')


@functools.lru_cache(maxsize=None)
def kernel_sources_digest() -> str:
    """A digest of the kernels' and ops' sources, subfolders included: a
    changed kernel is checked again even where the package version stays
    the same."""
    here = osp.dirname(osp.abspath(__file__))
    digest = hashlib.sha256()
    for folder in ('kernels', 'ops'):
        for path in sorted(_python_files(osp.join(here, folder))):
            digest.update(osp.relpath(path, here).encode())
            with open(path, 'rb') as f:
                digest.update(f.read())
    return digest.hexdigest()[:12]


def _python_files(folder):
    for root, _, names in os.walk(folder):
        yield from (osp.join(root, name) for name in names
                    if name.endswith('.py'))


def _driver_version() -> str:
    """The NVIDIA driver's version (NVML), else the CUDA driver API's."""
    import ctypes
    try:
        nvml = ctypes.CDLL('libnvidia-ml.so.1')
        buffer = ctypes.create_string_buffer(96)
        if (nvml.nvmlInit_v2() == 0 and nvml.nvmlSystemGetDriverVersion(
                buffer, ctypes.c_uint(96)) == 0):
            return buffer.value.decode()
    except OSError:
        pass
    try:
        version = ctypes.c_int()
        ctypes.CDLL('libcuda.so.1').cuDriverGetVersion(ctypes.byref(version))
        return f'CUDA {version.value // 1000}.{version.value % 1000 // 10}'
    except OSError:
        return 'unknown'


def _read_cache() -> dict:
    try:
        with open(cache_file()) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _write_cache(setup: str, verdict: Verdict) -> None:
    """Add ``verdict`` to the cache file (written whole, then renamed, so
    that processes checking at once never leave half a file)."""
    path = cache_file()
    record = asdict(verdict)
    del record['source']
    verdicts = dict(_read_cache(), **{setup: record})
    try:
        os.makedirs(osp.dirname(path), exist_ok=True)
        with tempfile.NamedTemporaryFile(
                'w', dir=osp.dirname(path), delete=False, suffix='.tmp') as f:
            json.dump(verdicts, f, indent=1)
        os.replace(f.name, path)
    except OSError as error:  # a read-only home: check again next time
        warnings.warn(f'Could not keep the SCConv kernel check in {path} '
                      f'({error}); it runs again in the next process.')


def checked_layer(device, x_dtype, dtype):
    """The checked layer (``alpha=0.5``, squeeze ratio 2, 2 groups; a
    trained model's kind of values): its input, weights in the ops' order,
    a folded BatchNorm's fp32 affine, options, and ``grad_of(y)``, the
    fixed gradient a case's backward takes for its output ``y``."""
    c, half = _CHANNELS, _CHANNELS // 2
    squeezed = half // 2
    generator = torch.Generator().manual_seed(0)

    def tensor(*shape, low=None):
        values = (
            torch.rand(*shape, generator=generator) +
            0.5 if low else torch.randn(*shape, generator=generator) * 0.5)
        return values.to(device)

    x = tensor(
        _BATCH, c,
        *_SIZE).to(x_dtype).contiguous(memory_format=torch.channels_last)
    weights = (tensor(c, low=True), tensor(c), tensor(squeezed, half, 1, 1),
               tensor(squeezed, half, 1, 1), tensor(c, squeezed // 2, 3, 3),
               tensor(c, squeezed, 1, 1), tensor(c - squeezed, squeezed, 1, 1))

    def grad_of(y):
        ramp = torch.linspace(-1, 1, y.numel(), device=y.device)
        return ramp.view_as(y).to(y.dtype)

    return SimpleNamespace(
        x=x,
        weights=weights,
        affine=(tensor(c, low=True), tensor(c)),
        groups=_GN_GROUPS,
        eps=1e-5,
        threshold=0.5,
        dtype=dtype,
        grad_of=grad_of)


def run_check(device, x_dtype, dtype, cases, setup=None) -> Verdict:
    """Compare the kernels with the PyTorch math on ``device``, with TF32
    and autocast off on both sides (they would round their inputs
    differently).

    Args:
        device (torch.device): Where to run.
        x_dtype (torch.dtype): The input's dtype.
        dtype (torch.dtype): The convolutions' dtype.
        cases (dict): See :func:`kernels_checked`.
        setup (str, optional): :func:`describe_setup`'s words.
    """
    with torch.no_grad(), torch.autocast(device.type, enabled=False):
        return _compare(device, x_dtype, dtype, cases, setup
                        or describe_setup(device, x_dtype, dtype))


def _compare(device, x_dtype, dtype, cases, setup):
    tolerance = TOLERANCES[dtype_name(dtype)]
    layer = checked_layer(device, x_dtype, dtype)
    worst, worst_what = 0.0, 'no tensor'
    tf32 = (torch.backends.cuda.matmul.allow_tf32,
            torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        for name, case in cases.items():
            expected = case(False, layer)
            try:
                actual = case(True, layer)
            except Exception as error:  # reported in the verdict
                first = f'{type(error).__name__}: {error}'.splitlines()[0]
                return Verdict('failed', float('nan'), f'{name}: {first}',
                               setup)
            for i, (value, got) in enumerate(zip(expected, actual)):
                error = relative_error(got, value)
                if not error <= worst:  # NaN counts as worst
                    worst, worst_what = error, f'{name}, tensor {i}'
    finally:
        (torch.backends.cuda.matmul.allow_tf32,
         torch.backends.cudnn.allow_tf32) = tf32
    status = 'ok' if worst <= tolerance else 'mismatch'
    return Verdict(status, worst, worst_what, setup)

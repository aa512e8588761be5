"""The Triton kernels check themselves on the device they first run on.

Users' GPUs, drivers and Triton versions differ from any the kernels were
tested on. The first time the kernels are asked to run on a device with a
dtype in a process, a small SCConv layer goes through them and through the
PyTorch twins of the same ops, forward and backward: training
(``mmdet_scconv::scconv``), inference with a folded BatchNorm
(``mmdet_scconv::scconv_inference``), and the SRU and CRU ops that other
splits than ``alpha=0.5`` use (milliseconds on a GPU, after compilation).
The verdict is kept in the process and in a file
(``$MMDET_SCCONV_CACHE_DIR``, default ``~/.cache/mmdet_scconv``), under the
GPU's name, compute capability and driver, the torch, triton and package
versions and a digest of the kernels' sources, so later processes on the
same setup skip the check.

* The kernels match: they run.
* They give other numbers: :class:`KernelCheckError`, naming the device,
  the worst relative error and the fix (``scconv_cfg=dict(impl='torch')``).
* They do not compile or run on the device: ``impl='triton'`` raises
  :class:`KernelCheckError`; ``impl='fast'`` warns once and runs the
  PyTorch path.

``MMDET_SCCONV_SKIP_KERNEL_CHECK=1`` skips the check. It also runs under
Triton's interpreter (on CPU tensors), where the tests exercise it; while
``torch.compile`` traces, the kernels run unchecked (the check runs on the
first eager call).
"""
import functools
import hashlib
import json
import os
import os.path as osp
import tempfile
import warnings
from dataclasses import asdict, dataclass

import torch

from ..version import __version__
from ._numerics import TOLERANCES, dtype_name, relative_error
from .ops import cru as cru_op
from .ops import scconv as scconv_op
from .ops import scconv_inference
from .ops import sru as sru_op

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


def kernels_checked(x: torch.Tensor, dtype: torch.dtype, strict: bool) -> bool:
    """Whether the kernels may run for ``x`` computing in ``dtype``,
    checking them first on a new setup.

    Args:
        x (Tensor): The layer's input (its device and dtype).
        dtype (torch.dtype): The convolutions' dtype (autocast's or ``x``'s).
        strict (bool): Raise where the kernels fail on the device
            (``impl='triton'``); else warn once and return False
            (``impl='fast'``).

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
        verdict = _verdicts[key] = _check(x.device, x.dtype, dtype)
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
               f"instead (slower; same results).")
    return False


@functools.lru_cache(maxsize=None)
def _warn_once(message: str) -> None:
    warnings.warn(message)


def _check(device, x_dtype, dtype) -> Verdict:
    setup = describe_setup(device, x_dtype, dtype)
    cached = _read_cache().get(setup)
    if cached is not None:
        return Verdict(**dict(cached, source='cache file'))
    verdict = run_check(device, x_dtype, dtype, setup)
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
    """A digest of the kernels' and ops' sources: a changed kernel is
    checked again even where the package version stays the same."""
    here = osp.dirname(osp.abspath(__file__))
    digest = hashlib.sha256()
    for folder in ('kernels', 'ops'):
        for name in sorted(os.listdir(osp.join(here, folder))):
            if name.endswith('.py'):
                with open(osp.join(here, folder, name), 'rb') as f:
                    digest.update(f.read())
    return digest.hexdigest()[:12]


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


def _inputs(device, x_dtype):
    """The checked layer's input and weights (``alpha=0.5``, squeeze ratio
    2, 2 groups; a trained model's kind of values)."""
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
    weights = dict(
        gamma=tensor(c, low=True),
        beta=tensor(c),
        w_squeeze_up=tensor(squeezed, half, 1, 1),
        w_squeeze_low=tensor(squeezed, half, 1, 1),
        w_gwc=tensor(c, squeezed // 2, 3, 3),
        w_pwc_up=tensor(c, squeezed, 1, 1),
        w_pwc_low=tensor(c - squeezed, squeezed, 1, 1))
    affine = (tensor(c, low=True), tensor(c))
    return x, weights, affine


def _paths(x, weights, affine, dtype):
    """The checked computations: name -> function of ``kernels`` returning
    ``(outputs, tensors whose gradients count)``."""
    w = weights
    static = dict(groups=_GN_GROUPS, eps=1e-5, threshold=0.5)

    def layer(stride, gate):

        def run(kernels):
            leaves = [x] + list(w.values())
            y = scconv_op(*leaves, static['groups'], static['eps'],
                          static['threshold'], gate, stride, 1, dtype,
                          kernels)[0]
            return [y], leaves

        return run

    def inference(kernels):
        with torch.no_grad():
            y = scconv_inference(x, *w.values(), *affine, static['groups'],
                                 static['eps'], static['threshold'], 'soft', 2,
                                 1, dtype, kernels)
        return [y], []

    def sru_alone(kernels):
        leaves = [x, w['gamma'], w['beta']]
        upper, lower, _ = sru_op(*leaves, static['groups'], static['eps'],
                                 static['threshold'], 'soft', kernels)
        return [upper, lower], leaves

    def cru_alone(kernels):
        layout = dict(memory_format=torch.channels_last)
        up = x[:, :w['w_pwc_up'].shape[1]].to(dtype).contiguous(**layout)
        low = x[:, -w['w_pwc_low'].shape[1]:].to(dtype).contiguous(**layout)
        leaves = [up, low, w['w_gwc'], w['w_pwc_up'], w['w_pwc_low']]
        y = cru_op(*leaves, None, 0, None, None, 2, 1, 2, dtype, kernels)
        return [y], leaves

    return {
        'training, stride 1, soft gate': layer(1, 'soft'),
        'training, stride 2, hard gate': layer(2, 'hard'),
        'inference with a folded BatchNorm, stride 2': inference,
        'SRU op': sru_alone,
        'CRU op, stride 2': cru_alone,
    }


def _outputs_and_grads(path, kernels):
    outputs, leaves = path(kernels)
    tensors = {f'output {i}': y for i, y in enumerate(outputs)}
    if leaves:
        loss = sum(
            (y.float() *
             torch.linspace(-1, 1, y.numel(), device=y.device).view_as(y)
             ).sum() for y in outputs)
        grads = torch.autograd.grad(loss, leaves, allow_unused=True)
        tensors.update(
            (f'gradient {i}', g) for i, g in enumerate(grads) if g is not None)
    return tensors


def run_check(device, x_dtype, dtype, setup=None) -> Verdict:
    """Compare the kernels with the PyTorch twins on ``device``, with
    autograd on whatever mode the caller is in, and TF32 and autocast off
    on both sides (they would round their inputs differently).

    Args:
        device (torch.device): Where to run.
        x_dtype (torch.dtype): The input's dtype.
        dtype (torch.dtype): The convolutions' dtype.
        setup (str, optional): :func:`describe_setup`'s words.
    """
    with torch.inference_mode(False), torch.enable_grad(), torch.autocast(
            device.type, enabled=False):
        return _compare(device, x_dtype, dtype, setup
                        or describe_setup(device, x_dtype, dtype))


def _compare(device, x_dtype, dtype, setup):
    tolerance = TOLERANCES[dtype_name(dtype)]
    x, weights, affine = _inputs(device, x_dtype)
    for leaf in [x, *weights.values()]:
        leaf.requires_grad_()
    worst, worst_what = 0.0, 'no tensor'
    tf32 = (torch.backends.cuda.matmul.allow_tf32,
            torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        for name, path in _paths(x, weights, affine, dtype).items():
            expected = _outputs_and_grads(path, False)
            try:
                actual = _outputs_and_grads(path, True)
            except Exception as error:  # reported in the verdict
                first = f'{type(error).__name__}: {error}'.splitlines()[0]
                return Verdict('failed', float('nan'), f'{name}: {first}',
                               setup)
            for what, value in expected.items():
                error = relative_error(actual[what], value)
                if not error <= worst:  # NaN counts as worst
                    worst, worst_what = error, f'{name}, {what}'
    finally:
        (torch.backends.cuda.matmul.allow_tf32,
         torch.backends.cudnn.allow_tf32) = tf32
    status = 'ok' if worst <= tolerance else 'mismatch'
    return Verdict(status, worst, worst_what, setup)

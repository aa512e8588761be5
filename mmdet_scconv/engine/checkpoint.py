"""Checkpoints that load with torch's ``weights_only=True``.

torch >= 2.6 unpickles checkpoints with ``weights_only=True`` by default, and
MMEngine 0.10.7 calls ``torch.load`` without the argument. Its checkpoints
then fail to load: ``HistoryBuffer`` (in ``message_hub``) pickles its
statistics methods through ``builtins.getattr`` and its logs as numpy arrays.
Allowing ``getattr`` would let any checkpoint run code, so instead:

* :func:`register_safe_checkpoints` teaches pickle to write ``HistoryBuffer``
  as plain lists rebuilt by :func:`rebuild_history_buffer`, and allowlists
  for the weights-only unpickler only that function, the ``HistoryBuffer``
  class and numpy's numeric scalars (``message_hub`` keeps e.g. the ETA as a
  ``numpy.float64``), which are data, not code. Checkpoints written
  afterwards load safely anywhere ``mmdet_scconv`` is imported, mmdet's own
  ``tools/test.py`` included.
* Local checkpoints are read by :func:`load_local_checkpoint`, which keeps
  ``weights_only=True`` and turns failures into errors that name the file,
  the reason and, for a file that is unsafe, the explicit opt-in for files
  you trust (:func:`trust_checkpoint` or ``MMDET_SCCONV_TRUSTED_CHECKPOINTS``).
* Remote sources (``https://``, ``torchvision://`` ...) are downloaded as
  mmengine downloads them, then read as local files
  (:mod:`mmdet_scconv.engine.remote_checkpoint`).
"""
import copyreg
import os
import os.path as osp
import pickle
import zipfile

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

#: ``os.pathsep``-separated checkpoint paths that may be unpickled in full.
TRUSTED_ENV = 'MMDET_SCCONV_TRUSTED_CHECKPOINTS'

_trusted_paths = set()


def _numpy_scalar_globals():
    """What unpickling a numeric numpy scalar needs: the ``scalar``
    constructor, ``dtype`` and the numeric dtype classes."""
    numeric = (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8,
               np.uint16, np.uint32, np.uint64, np.float16, np.float32,
               np.float64)
    core = getattr(np, '_core', None) or np.core  # numpy 2 renamed it
    return [core.multiarray.scalar, np.dtype
            ] + [type(np.dtype(t)) for t in numeric]


class CheckpointLoadError(RuntimeError):
    """A checkpoint could not be loaded; the message says why and the fix."""


def rebuild_history_buffer(log_history, count_history, max_length):
    """Recreate a ``HistoryBuffer`` from plain lists (pickle's rebuild)."""
    return HistoryBuffer(log_history, count_history, max_length)


def _reduce_history_buffer(buffer):
    return rebuild_history_buffer, ([float(v) for v in buffer._log_history],
                                    [float(v) for v in buffer._count_history
                                     ], buffer.max_length)


def register_safe_checkpoints() -> None:
    """Make MMEngine checkpoints written from now on weights-only loadable,
    and route local loading through :func:`load_local_checkpoint`."""
    copyreg.pickle(HistoryBuffer, _reduce_history_buffer)
    torch.serialization.add_safe_globals(
        [rebuild_history_buffer, HistoryBuffer] + _numpy_scalar_globals())
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_local_checkpoint, force=True)


def trust_checkpoint(path: str) -> None:
    """Allow the file at ``path`` to be unpickled with ``weights_only=False``.

    Only for files from a trusted source: unpickling can run arbitrary code.
    """
    _trusted_paths.add(osp.realpath(osp.expanduser(path)))


def is_trusted(path: str) -> bool:
    """Whether ``path`` was opted in by :func:`trust_checkpoint` or the
    ``MMDET_SCCONV_TRUSTED_CHECKPOINTS`` environment variable."""
    env = [p for p in os.environ.get(TRUSTED_ENV, '').split(os.pathsep) if p]
    trusted = _trusted_paths | {osp.realpath(osp.expanduser(p)) for p in env}
    return osp.realpath(path) in trusted


def load_local_checkpoint(filename, map_location=None):
    """Load a local checkpoint with ``weights_only=True``.

    Args:
        filename (str): Path of the checkpoint.
        map_location: As for ``torch.load``.

    Raises:
        FileNotFoundError: The file does not exist.
        CheckpointLoadError: The file is corrupt, or it holds objects that
            are unsafe to unpickle and was not opted in as trusted.
    """
    filename = osp.expanduser(filename)
    if not osp.exists(filename):
        raise FileNotFoundError(
            f'Checkpoint file not found: {filename!r}. Check the path given '
            f'to load_from / --resume / init_cfg.checkpoint.')
    damage = checkpoint_damage(filename)
    if damage:
        raise CheckpointLoadError(
            f'Checkpoint {filename!r} {damage}. Re-copy or re-download it, '
            f'or pass another checkpoint (e.g. the previous one of the '
            f'run).')
    return load_intact_checkpoint(filename, map_location)


def load_intact_checkpoint(filename, map_location=None):
    """:func:`load_local_checkpoint` after its checks for a missing or
    damaged file, which the caller has made (``weights_only=True`` unless
    the file is trusted)."""
    if is_trusted(filename):
        return torch.load(
            filename, map_location=map_location, weights_only=False)
    try:
        return torch.load(
            filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        if not _unsafe(error):
            raise _corrupt(filename, error) from error
        raise CheckpointLoadError(
            f'Checkpoint {filename!r} holds objects that are not safe to '
            f'unpickle, so it was not loaded (torch weights_only=True): '
            f'{_first_line(error)}. Checkpoints written with mmdet_scconv '
            f'imported load safely; to load this one anyway, only if you '
            f'trust its source, add it to the {TRUSTED_ENV} environment '
            f'variable (paths separated by {os.pathsep!r}) or call '
            f'mmdet_scconv.engine.trust_checkpoint(path).') from error
    except Exception as error:  # torch names damage in many ways
        raise _corrupt(filename, error) from error


def checkpoint_damage(filename):
    """What is visibly wrong with a checkpoint file before torch reads it
    (e.g. ``'is truncated: ...'``), or None."""
    if osp.isdir(filename):
        return 'is a directory, not a checkpoint file'
    # Opening is the test of readability that holds for every user (root
    # included, whom os.access answers for its real, not effective, id).
    try:
        with open(filename, 'rb') as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(8)
    except PermissionError:
        return 'cannot be read (permission denied)'
    except OSError as error:
        return f'cannot be read ({error.strerror or error})'
    if size == 0:
        return 'is empty (0 bytes: an interrupted copy or download?)'
    if head.startswith(b'PK\x03\x04'):  # torch's zip format
        if not zipfile.is_zipfile(filename):
            return (f'is truncated: {size} bytes, and the end of its zip '
                    f'archive is missing (an interrupted copy or download?)')
        with zipfile.ZipFile(filename) as archive:
            damaged = archive.testzip()  # reads it all: CRCs, about 1 GB/s
        if damaged is not None:
            return (f'is damaged: its record {damaged!r} fails its CRC '
                    f'check')
        return None
    if head.startswith(b'\x80'):  # a pickle: torch's legacy format
        return None
    if head.startswith(b'\x93NUMPY'):
        kind = 'a NumPy .npy file'
    elif all(32 <= b < 127 or b in b'\t\r\n' for b in head):
        kind = 'text'
    else:
        kind = 'unknown bytes'
    return (f'is not a PyTorch checkpoint: it starts with {head!r} '
            f'({kind}), not a zip archive or a pickle')


def _unsafe(error) -> bool:
    """Whether torch refused a weights-only load (rather than failing to
    parse the file)."""
    message = str(error)
    return 'Unsupported global' in message or 'allowed global' in message


def _corrupt(filename, error):
    return CheckpointLoadError(
        f'Checkpoint {filename!r} is corrupt or not a PyTorch checkpoint '
        f'({type(error).__name__}: {_first_line(error)}). Re-copy or '
        f're-download it, or pass another checkpoint.')


def _first_line(error) -> str:
    """The informative line of an error (torch's weights-only errors put it
    after a generic preamble)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for index, line in enumerate(lines):
        if 'WeightsUnpickler error' in line:
            # The reason may be on the next line.
            end = index + 2 if line.endswith(':') else index + 1
            return ' '.join(lines[index:end])
    return lines[0] if lines else type(error).__name__

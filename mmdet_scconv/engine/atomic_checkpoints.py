"""Checkpoints that are complete or absent, and resuming from the newest
complete one.

MMEngine writes a checkpoint by opening its final path and writing into it,
so a run killed while saving leaves a truncated ``iter_N.pth``. Here local
files are written to a temporary file beside the final path, flushed to
disk and renamed over it (atomic on POSIX), and ``--resume`` without a path
takes the newest checkpoint that is complete, whatever ``last_checkpoint``
says.
"""
import glob
import os
import os.path as osp
import re
import tempfile

from mmengine.fileio import LocalBackend
from mmengine.fileio import io as fileio
from mmengine.fileio import register_backend
from mmengine.logging import print_log

from .checkpoint import checkpoint_damage


class AtomicLocalBackend(LocalBackend):
    """MMEngine's local file backend whose ``put`` writes atomically."""

    def put(self, obj: bytes, filepath) -> None:
        """Write ``obj`` to a temporary file beside ``filepath``, flush it
        to disk, then rename it over ``filepath``."""
        filepath = str(filepath)
        folder = osp.dirname(osp.abspath(filepath))
        os.makedirs(folder, exist_ok=True)
        handle, partial = tempfile.mkstemp(
            dir=folder, prefix=f'.{osp.basename(filepath)}.', suffix='.part')
        try:
            # mkstemp's file is private; the final file gets open()'s mode.
            os.chmod(partial, 0o666 & ~_umask())
            with os.fdopen(handle, 'wb') as f:
                f.write(obj)
                f.flush()
                os.fsync(f.fileno())
            os.replace(partial, filepath)
        except BaseException:
            if osp.exists(partial):
                os.remove(partial)
            raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def register_atomic_checkpoints() -> None:
    """Make MMEngine's local file writes (checkpoints among them) atomic."""
    register_backend('local', AtomicLocalBackend, force=True, prefixes='')
    for key, backend in list(fileio.backend_instances.items()):
        if type(backend) is LocalBackend:
            del fileio.backend_instances[key]


def _iteration(path):
    found = re.search(r'(\d+)\.pth$', path)
    return int(found.group(1)) if found else -1


def newest_complete_checkpoint(work_dir: str):
    """The checkpoint ``--resume`` should continue from: the newest complete
    ``iter_*.pth`` / ``epoch_*.pth`` of ``work_dir``, else the one
    ``last_checkpoint`` names if it is complete (each checkpoint passed
    over is logged with why); None if there is none."""
    candidates = sorted(
        glob.glob(osp.join(work_dir, 'iter_*.pth')) +
        glob.glob(osp.join(work_dir, 'epoch_*.pth')),
        key=_iteration,
        reverse=True)
    record = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(record):
        with open(record) as f:
            candidates.append(f.read().strip())
    for path in dict.fromkeys(filter(None, candidates)):
        problem = ('is missing'
                   if not osp.exists(path) else checkpoint_damage(path))
        if problem is None:
            return path
        print_log(f'Not resuming from {path}: it {problem}.', logger='current')
    return None

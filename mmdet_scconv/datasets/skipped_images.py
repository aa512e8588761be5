"""Training images that could not be loaded: skipped by
:class:`LoadImageOrSkip`, recorded for :class:`~mmdet_scconv.engine.
BadImageHook`.

Dataloader workers are separate processes, so the record is a file: the
hook names it, with its own process id, in the
``MMDET_SCCONV_SKIPPED_IMAGES`` environment variable when the Runner builds
it (before any worker starts); the training process or its workers append a
JSON line per skipped image, and the hook reads them in the main process.
"""
import json
import os

from mmcv.transforms import LoadImageFromFile
from mmdet.registry import TRANSFORMS
from torch.utils.data import get_worker_info

RECORD_ENV = 'MMDET_SCCONV_SKIPPED_IMAGES'


def record_name(path: str) -> str:
    """The environment variable's value for a record at ``path``, kept by
    this process: ``'<pid>:<path>'``."""
    return f'{os.getpid()}:{path}'


def record_skipped(path: str, reason: str) -> bool:
    """Append a skipped image to the record; False if none is kept for this
    process (a record named by another program, e.g. a test runner that
    started this one, is not ours)."""
    owner, _, record = os.environ.get(RECORD_ENV, '').partition(':')
    ours = owner == str(os.getpid()) or (owner == str(os.getppid())
                                         and get_worker_info() is not None)
    if not (record and ours):
        return False
    with open(record, 'a') as f:
        f.write(json.dumps(dict(path=path, reason=reason)) + '\n')
    return True


def read_skipped(record: str) -> list:
    """The skipped images recorded so far, ``[{'path', 'reason'}, ...]``."""
    if not os.path.isfile(record):
        return []
    with open(record) as f:
        return [json.loads(line) for line in f if line.endswith('\n')]


@TRANSFORMS.register_module()
class LoadImageOrSkip(LoadImageFromFile):
    """mmcv's ``LoadImageFromFile`` for training pipelines: an image that is
    missing, empty or does not decode is recorded and skipped (the dataset
    then draws another sample) instead of ending the run.

    Skipping needs a :class:`~mmdet_scconv.engine.BadImageHook` in
    ``custom_hooks``, which logs the skipped files, reports them at the end
    of the run and stops it when they exceed its budget; without it the
    error is raised as ``LoadImageFromFile`` would. Test pipelines keep
    ``LoadImageFromFile``: metrics on a partial test set would be wrong.

    Args:
        **kwargs: The arguments of ``LoadImageFromFile``.
    """

    def transform(self, results: dict):
        try:
            return super().transform(results)
        except Exception as error:  # missing, empty, undecodable, ...
            reason = f'{type(error).__name__}: {error}'
            if not record_skipped(results['img_path'], reason):
                raise
            return None

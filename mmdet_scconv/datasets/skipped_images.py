"""Training images that could not be loaded: skipped by
:class:`LoadImageOrSkip`, recorded for :class:`~mmdet_scconv.engine.
BadImageHook`.

Dataloader workers are separate processes, so the record is a file: the
hook names it in the ``MMDET_SCCONV_SKIPPED_IMAGES`` environment variable
when the Runner builds it (before any worker starts), each worker appends a
JSON line per skipped image, and the hook reads them in the main process.
"""
import json
import os

from mmcv.transforms import LoadImageFromFile
from mmdet.registry import TRANSFORMS

RECORD_ENV = 'MMDET_SCCONV_SKIPPED_IMAGES'


def record_skipped(path: str, reason: str) -> bool:
    """Append a skipped image to the record; False if none is kept."""
    record = os.environ.get(RECORD_ENV)
    if not record:
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

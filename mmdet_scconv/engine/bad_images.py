"""Keep a training run going past unreadable images, within a budget."""
import json
import os
import os.path as osp
import tempfile

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ..datasets.skipped_images import RECORD_ENV, read_skipped, record_name


class TooManyBadImagesError(RuntimeError):
    """More training images failed to load than the budget allows."""


@HOOKS.register_module()
class BadImageHook(Hook):
    """Log, count and report the training images that
    ``LoadImageOrSkip`` skipped; stop the run when they exceed a budget.

    Each skipped file is logged with its path and reason once; at the end
    of the run (or when it stops) the list and count are logged and written
    to ``<work_dir>/skipped_images.json``.

    Args:
        max_fraction (float): Most distinct skipped images, as a fraction of
            the training set, before the run stops (a broken data root must
            not train on nothing). Default: 0.01.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self, max_fraction: float = 0.01):
        if not 0 <= max_fraction < 1:
            raise ValueError(f'BadImageHook: max_fraction must be in [0, 1), '
                             f'got {max_fraction!r}.')
        self.max_fraction = max_fraction
        # Named now, while the Runner is built: the dataloader workers,
        # started later, inherit it.
        handle, self.record = tempfile.mkstemp(
            prefix='skipped_images_', suffix='.jsonl')
        os.close(handle)
        os.environ[RECORD_ENV] = record_name(self.record)
        self.skipped = {}

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None) -> None:
        for entry in read_skipped(self.record):
            if entry['path'] not in self.skipped:
                self.skipped[entry['path']] = entry['reason']
                runner.logger.warning(
                    f'Skipped training image {entry["path"]} '
                    f'({entry["reason"]}); another sample took its place.')
        size = len(runner.train_dataloader.dataset)
        budget = int(self.max_fraction * size)
        if len(self.skipped) > budget:
            self._report(runner)
            first = ', '.join(list(self.skipped)[:5])
            raise TooManyBadImagesError(
                f'{len(self.skipped)} training images could not be loaded, '
                f'more than BadImageHook(max_fraction={self.max_fraction}) '
                f'allows for {size} images ({budget}); first: {first}. '
                f'Check the data root and the files (all of them are in '
                f'{self._report_path(runner)}), or raise max_fraction.')

    def after_train(self, runner) -> None:
        self._report(runner)

    def after_run(self, runner) -> None:
        # A later Runner in this process without the hook must not skip.
        if os.environ.get(RECORD_ENV) == record_name(self.record):
            del os.environ[RECORD_ENV]
        if osp.isfile(self.record):
            os.remove(self.record)

    @staticmethod
    def _report_path(runner):
        return osp.join(runner.work_dir, 'skipped_images.json')

    def _report(self, runner):
        path = self._report_path(runner)
        with open(path, 'w') as f:
            json.dump(
                dict(count=len(self.skipped), skipped=self.skipped),
                f,
                indent=1)
        runner.logger.info(
            f'{len(self.skipped)} training image(s) skipped as unreadable' +
            (f': {", ".join(self.skipped)}' if self.skipped else '') +
            f' (listed in {path}).')

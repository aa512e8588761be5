"""Read what ``tools/train.py`` and ``tools/test.py`` leave in an MMEngine
work dir: the run's config, its logged scalars and its test metrics.

A work dir holds one folder per run of the Runner, named by its timestamp
(``YYYYMMDD_HHMMSS``):

* a training run writes ``<ts>/vis_data/config.py`` and
  ``<ts>/vis_data/scalars.json`` (one JSON object per logged iteration, and
  one per validation with its metrics); a resumed run adds a folder whose
  scalars continue the same iterations;
* a test run writes ``<ts>/<ts>.json``: the test metrics and the mean time
  per test iteration;
* with :class:`~mmdet_scconv.engine.StepTimesHook` (the project's configs
  have it), ``<ts>/step_times.json`` holds every training and test
  iteration's time, from which the speed columns take medians after
  warm-up, as mmdet's ``analysis_tools/benchmark.py`` times a model.
"""
import json
import os
import os.path as osp
import re
import statistics
from dataclasses import dataclass, field
from typing import Optional

from mmengine.config import Config

from ..engine.step_times import STEP_TIMES_FILE
from .paper import DATASET_NAMES

_TIMESTAMP = re.compile(r'^\d{8}_\d{6}$')

#: Iterations left out of a speed median as warm-up (first-iteration
#: costs), as mmdet's ``analysis_tools/benchmark.py`` leaves out 5.
WARMUP_ITERS = 5
#: Fewest iterations after the warm-up that make a steady-state median.
MIN_TIMED_ITERS = 5


def steady_median(times) -> Optional[float]:
    """The median of ``times`` after :data:`WARMUP_ITERS`, or None where
    fewer than :data:`MIN_TIMED_ITERS` remain."""
    timed = list(times or [])[WARMUP_ITERS:]
    return statistics.median(timed) if len(timed) >= MIN_TIMED_ITERS else None


class WorkDirError(FileNotFoundError):
    """A work dir lacks what a report needs."""


@dataclass
class Run:
    """One trained and tested model, as its work dir records it.

    Args:
        name (str): A label (default: the work dir's name).
        work_dir (str): The work dir.
        cfg (Config): The training run's config.
        train (list[dict]): Logged training iterations, by iteration.
        val (list[dict]): Validation results, by iteration.
        test (dict): The latest test run's metrics (``time`` is seconds per
            test iteration).
        test_cfg (Config): The test run's config.
        train_times (list[float]): Every training iteration's seconds, or
            None where the run did not keep them (no ``StepTimesHook``).
        test_times (list[float]): Every test iteration's seconds, or None.
    """
    name: str
    work_dir: str
    cfg: Config
    train: list
    val: list
    test: dict
    test_cfg: Config = field(repr=False)
    train_times: Optional[list] = field(default=None, repr=False)
    test_times: Optional[list] = field(default=None, repr=False)

    @property
    def iterations(self) -> int:
        return max(entry['iter'] for entry in self.train)

    @property
    def seconds_per_iter(self) -> Optional[float]:
        """Steady-state seconds per training iteration (data loading
        included): the median after warm-up (:func:`steady_median`), or
        None (see :meth:`speed_note`)."""
        return steady_median(self.train_times)

    @property
    def images_per_second(self) -> Optional[float]:
        """Steady-state test images per second: the test batch over the
        median time per test iteration after warm-up, or None."""
        seconds = steady_median(self.test_times)
        if not seconds:
            return None
        return self.test_cfg.test_dataloader.batch_size / seconds

    def speed_note(self, mode: str) -> Optional[str]:
        """Why a speed column of ``mode`` (``'train'``/``'test'``) has no
        number, or None where it has one."""
        times = self.train_times if mode == 'train' else self.test_times
        if times is None:
            return (f'{self.name}: no per-iteration {mode} times (the run '
                    f'had no StepTimesHook in custom_hooks)')
        if steady_median(times) is None:
            return (f'{self.name}: {len(times)} {mode} iterations, too '
                    f'few for a steady state ({WARMUP_ITERS} warm-up + '
                    f'{MIN_TIMED_ITERS} timed)')
        return None

    @property
    def detector(self) -> str:
        return self.cfg.model.type

    @property
    def backbone(self) -> str:
        """``'SCConv-R50'``, ``'R101'``, ... or ``'<type>-<depth>'``."""
        backbone = self.cfg.model.backbone
        depth = backbone.get('depth', '')
        prefix = {
            'ResNet': 'R',
            'SCConvResNet': 'SCConv-R'
        }.get(backbone.type, f'{backbone.type}-')
        return f'{prefix}{depth}'

    @property
    def dataset(self) -> Optional[str]:
        """``'coco'`` for COCO val2017, ``'voc'`` for VOC2007 test (the
        paper's test sets: their files and all their classes), else None."""
        dataset = self.test_cfg.test_dataloader.dataset
        ann_file = (dataset.get('ann_file') or '').replace('\\', '/')
        head = self.cfg.model.get('bbox_head') or {}
        classes = head.get('num_classes')
        if (dataset.type == 'CocoDataset' and classes == 80
                and ann_file.endswith('instances_val2017.json')):
            return 'coco'
        if (dataset.type == 'VOCDataset' and classes == 20
                and ann_file.endswith('VOC2007/ImageSets/Main/test.txt')):
            return 'voc'
        return None

    @property
    def dataset_name(self) -> str:
        dataset = self.test_cfg.test_dataloader.dataset
        return DATASET_NAMES.get(
            self.dataset,
            f'{dataset.type} {osp.basename(dataset.get("ann_file", ""))}')


def _run_dirs(work_dir):
    return sorted(
        osp.join(work_dir, name) for name in os.listdir(work_dir)
        if _TIMESTAMP.match(name) and osp.isdir(osp.join(work_dir, name)))


def _read_json_lines(path):
    with open(path) as f:
        try:
            return [json.loads(line) for line in f if line.strip()]
        except json.JSONDecodeError as error:
            raise WorkDirError(
                f'{path} is not MMEngine scalars (one JSON object per '
                f'line): {error}.') from error


def _split_scalars(entries):
    """Training iterations and validations of one ``scalars.json``; each
    validation gets the iteration it followed as ``iter`` (its ``step`` is
    the epoch, 0 in iteration-based runs, unless the LoggerHook has
    ``log_metric_by_epoch=False``)."""
    train, val, last_iter = [], [], 0
    for entry in entries:
        if 'loss' in entry and 'iter' in entry:
            train.append(entry)
            last_iter = entry['iter']
        elif 'iter' not in entry:
            val.append(dict(entry, iter=last_iter))
    return train, val


def _merge_by_iter(entries):
    """Entries by iteration; a resumed run's override the earlier run's at
    the same iteration."""
    return [
        entry for _, entry in sorted({e['iter']: e
                                      for e in entries}.items())
    ]


def load_run(work_dir: str, name: Optional[str] = None) -> Run:
    """Read a work dir of ``tools/train.py`` and ``tools/test.py`` runs.

    Args:
        work_dir (str): The work dir (``--work-dir`` of both tools).
        name (str, optional): A label; default: the work dir's name.

    Raises:
        WorkDirError: No such dir, no logged training scalars, or no test
            result; the message names what is missing and how to get it.
    """
    if not osp.isdir(work_dir):
        raise WorkDirError(f'Work dir not found: {work_dir!r}.')
    train, val, train_config, test, test_config = [], [], None, None, None
    train_times, test_times = None, None
    for run_dir in _run_dirs(work_dir):
        times = _step_times(run_dir)
        scalars = osp.join(run_dir, 'vis_data', 'scalars.json')
        if osp.isfile(scalars):
            logged, validated = _split_scalars(_read_json_lines(scalars))
            if logged:
                train += logged
                val += validated
                train_config = osp.join(run_dir, 'vis_data', 'config.py')
                # A resumed run keeps timing where the earlier one stopped.
                if 'train' in times:
                    train_times = (train_times or []) + times['train']
        metrics = osp.join(run_dir, osp.basename(run_dir) + '.json')
        if osp.isfile(metrics):
            with open(metrics) as f:
                test = json.load(f)
            test_config = osp.join(run_dir, 'vis_data', 'config.py')
            test_times = times.get('test')
    if not train:
        raise WorkDirError(
            f'{work_dir!r} has no training scalars: no '
            f'<timestamp>/vis_data/scalars.json with logged losses. Train '
            f'into it first (python tools/train.py CONFIG --work-dir '
            f'{work_dir}) for at least default_hooks.logger.interval '
            f'iterations: the LoggerHook logs every that many.')
    if test is None:
        raise WorkDirError(
            f'{work_dir!r} has no test result: no <timestamp>/'
            f'<timestamp>.json from a test run. Test its checkpoint first: '
            f'python tools/test.py CONFIG {work_dir}/iter_N.pth --work-dir '
            f'{work_dir}')
    for path in (train_config, test_config):
        if not osp.isfile(path):
            raise WorkDirError(f'{path!r} is missing: MMEngine writes the '
                               f'config of each run there.')
    return Run(
        name or osp.basename(osp.normpath(work_dir)), work_dir,
        Config.fromfile(train_config), _merge_by_iter(train),
        _merge_by_iter(val), test, Config.fromfile(test_config), train_times,
        test_times)


def _step_times(run_dir) -> dict:
    path = osp.join(run_dir, STEP_TIMES_FILE)
    if not osp.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f)

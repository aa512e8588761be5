"""Read what ``tools/train.py`` and ``tools/test.py`` leave in an MMEngine
work dir: the run's config, its logged scalars and its test metrics.

A work dir holds one folder per run of the Runner, named by its timestamp
(``YYYYMMDD_HHMMSS``):

* a training run writes ``<ts>/vis_data/config.py`` and
  ``<ts>/vis_data/scalars.json`` (one JSON object per logged iteration, and
  one per validation with its metrics); a resumed run adds a folder whose
  scalars continue the same iterations;
* a test run writes ``<ts>/<ts>.json``: the test metrics and the mean time
  per test iteration.
"""
import json
import os
import os.path as osp
import re
import statistics
from dataclasses import dataclass, field
from typing import Optional

from mmengine.config import Config

from .paper import DATASET_NAMES

_TIMESTAMP = re.compile(r'^\d{8}_\d{6}$')


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
    """
    name: str
    work_dir: str
    cfg: Config
    train: list
    val: list
    test: dict
    test_cfg: Config = field(repr=False)

    @property
    def iterations(self) -> int:
        return max(entry['iter'] for entry in self.train)

    @property
    def seconds_per_iter(self) -> float:
        """Median of the logged training ``time`` (the Runner's smoothed
        seconds per iteration, data loading included)."""
        return statistics.median(entry['time'] for entry in self.train)

    @property
    def images_per_second(self) -> Optional[float]:
        """Test images per second: the test batch over the mean time per
        test iteration (data loading included)."""
        seconds = self.test.get('time')
        if not seconds:
            return None
        return self.test_cfg.test_dataloader.batch_size / seconds

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
    for run_dir in _run_dirs(work_dir):
        scalars = osp.join(run_dir, 'vis_data', 'scalars.json')
        if osp.isfile(scalars):
            logged, validated = _split_scalars(_read_json_lines(scalars))
            if logged:
                train += logged
                val += validated
                train_config = osp.join(run_dir, 'vis_data', 'config.py')
        metrics = osp.join(run_dir, osp.basename(run_dir) + '.json')
        if osp.isfile(metrics):
            with open(metrics) as f:
                test = json.load(f)
            test_config = osp.join(run_dir, 'vis_data', 'config.py')
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
        _merge_by_iter(val), test, Config.fromfile(test_config))

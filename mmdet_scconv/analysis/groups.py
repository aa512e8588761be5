"""Runs grouped as the paper reports them: runs of one configuration that
differ only in their seed, each metric's median (the paper's number),
min-max and count, and the difference of two groups' medians with an
interval from resampling the runs.
"""
import statistics
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from .runs import Run

#: Config keys in which runs of one configuration may differ.
RUN_KEYS = ('randomness.seed', 'work_dir', 'experiment_name',
            'visualizer.name', 'launcher', 'resume', 'load_from')

#: Columns of box AP with CocoMetric's key suffix; VOC mAP@.5 by its key.
COCO_METRICS = (('AP', 'bbox_mAP'), ('AP50', 'bbox_mAP_50'), ('AP75',
                                                              'bbox_mAP_75'))
SIZE_METRICS = (('AP_S', 'bbox_mAP_s'), ('AP_M', 'bbox_mAP_m'), ('AP_L',
                                                                 'bbox_mAP_l'))
VOC_METRIC = ('VOC mAP@.5', 'pascal_voc/mAP')

#: Resamples of the percentile bootstrap, and its coverage.
RESAMPLES = 10000
LEVEL = 0.95


class GroupError(ValueError):
    """Runs cannot be grouped as asked; the message names the runs."""


def metric_value(run: Run, name: str) -> Optional[float]:
    """Metric ``name`` (a column of :data:`COCO_METRICS`, :data:`SIZE_METRICS`
    or :data:`VOC_METRIC`) of ``run``'s test, or None where the test did not
    report it (CocoMetric's -1 for a size without ground truth included)."""
    if name == VOC_METRIC[0]:
        return run.test.get(VOC_METRIC[1])
    suffix = dict(COCO_METRICS + SIZE_METRICS)[name]
    for key, value in run.test.items():
        if key.endswith('/' + suffix):
            return value if value >= 0 else None
    return None


@dataclass
class Summary:
    """One metric over a group's runs.

    Args:
        median (float): The median (the paper's number).
        low (float), high (float): The smallest and largest run.
        count (int): Runs that reported the metric.
        missing (list[str]): Runs of the group that did not.
    """
    median: float
    low: float
    high: float
    count: int
    missing: list = field(default_factory=list)


@dataclass
class RunGroup:
    """Runs of one configuration.

    Args:
        name (str): The group's label.
        runs (list[Run]): Its runs, in the order given.
    """
    name: str
    runs: list

    def values(self, metric: str) -> Dict[str, float]:
        """Run name -> value of ``metric`` for the runs that have it."""
        values = {run.name: metric_value(run, metric) for run in self.runs}
        return {name: v for name, v in values.items() if v is not None}

    def summary(self, metric: str) -> Optional[Summary]:
        """``metric`` over the runs, or None where no run reported it."""
        return summarise(self.values(metric), [r.name for r in self.runs])

    def speed(self, attribute: str) -> Optional[Summary]:
        """A speed property of :class:`Run` (``'seconds_per_iter'``,
        ``'images_per_second'``) over the runs that have it."""
        values = {run.name: getattr(run, attribute) for run in self.runs}
        return summarise({
            n: v
            for n, v in values.items() if v is not None
        }, list(values))


def summarise(values: Dict[str, float], names) -> Optional[Summary]:
    if not values:
        return None
    numbers = list(values.values())
    return Summary(
        statistics.median(numbers), min(numbers), max(numbers), len(numbers),
        [name for name in names if name not in values])


def comparable_config(run: Run) -> dict:
    """The run's config without :data:`RUN_KEYS`."""
    config = run.cfg.to_dict()
    for key in RUN_KEYS:
        *parents, last = key.split('.')
        node = config
        for parent in parents:
            node = node.get(parent) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    return config


def config_differences(a, b, prefix='') -> List[str]:
    """Dotted keys whose values differ between config dicts ``a`` and
    ``b``."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(set(a) | set(b), key=str)
        return [
            diff for key in keys for diff in config_differences(
                a.get(key, '<absent>'), b.get(key, '<absent>'),
                f'{prefix}{key}.')
        ]
    return [] if a == b else [prefix.rstrip('.')]


def group_runs(
        runs: Sequence[Run],
        named: Optional[Dict[str, Sequence[str]]] = None) -> List[RunGroup]:
    """Group ``runs``: those of ``named`` (group name -> work dirs) as
    given, the others by their config beyond the seed (:data:`RUN_KEYS`),
    in the order of their first run.

    Raises:
        GroupError: A named group's runs differ beyond the seed, or it names
            a work dir that is not among ``runs``; the message says which
            keys and runs.
    """
    by_dir = {run.work_dir: run for run in runs}
    groups, taken = [], set()
    for name, work_dirs in (named or {}).items():
        twice = [d for d in work_dirs if d in taken]
        if twice:
            raise GroupError(
                f'--group {name} names {twice}, which another group has '
                f'already; a run belongs to one group.')
        unknown = [d for d in work_dirs if d not in by_dir]
        if unknown:
            raise GroupError(
                f'--group {name} names {unknown}, which are not among the '
                f'work dirs given; list every work dir of a group as well.')
        members = [by_dir[d] for d in work_dirs]
        _require_one_configuration(name, members)
        groups.append(RunGroup(name, members))
        taken.update(work_dirs)
    automatic = []  # (config, members), in the order of the first run
    for run in runs:
        if run.work_dir in taken:
            continue
        config = comparable_config(run)
        for group_config, members in automatic:
            if group_config == config:
                members.append(run)
                break
        else:
            automatic.append((config, [run]))
    groups += [
        RunGroup(_group_name(members), members) for _, members in automatic
    ]
    _make_names_unique(groups)
    return groups


def _require_one_configuration(name, members):
    first = comparable_config(members[0])
    for run in members[1:]:
        differences = config_differences(first, comparable_config(run))
        if differences:
            shown = ', '.join(differences[:6])
            more = f' (+{len(differences) - 6})' if len(
                differences) > 6 else ''
            raise GroupError(
                f'Group {name!r}: {run.work_dir!r} differs from '
                f'{members[0].work_dir!r} beyond the seed, in {shown}{more}. '
                f'A group holds runs of one configuration; put the other '
                f'run in a group of its own.')


def _group_name(members) -> str:
    """The runs' common name prefix without a trailing seed or separator
    (``scconv_r50_seed0``, ``scconv_r50_seed1`` -> ``scconv_r50``), else
    the first run's name when alone, else its backbone."""
    if len(members) == 1:
        return members[0].name
    names = [run.name for run in members]
    prefix = names[0]
    for name in names[1:]:
        while not name.startswith(prefix):
            prefix = prefix[:-1]
    prefix = prefix.rstrip('0123456789')
    if prefix.lower().endswith('seed'):
        prefix = prefix[:-4]
    prefix = prefix.rstrip('_-. ')
    return prefix or members[0].backbone


def _make_names_unique(groups):
    seen = {}
    for group in groups:
        count = seen.get(group.name, 0)
        seen[group.name] = count + 1
        if count:
            group.name = f'{group.name} ({count + 1})'


@dataclass
class Difference:
    """``second``'s median minus ``first``'s for one metric.

    Args:
        first (str), second (str): The groups.
        metric (str): The metric.
        value (float): The difference of the medians, or None.
        low (float), high (float): The interval (percentile bootstrap), or
            None where it cannot be computed.
        note (str): Why there is no interval, if there is none.
    """
    first: str
    second: str
    metric: str
    value: Optional[float]
    low: Optional[float] = None
    high: Optional[float] = None
    note: str = ''

    @property
    def distinguishable(self) -> Optional[bool]:
        """Whether the interval excludes 0 (None without an interval)."""
        if self.low is None:
            return None
        return self.low > 0 or self.high < 0


def bootstrap_interval(a, b, resamples=RESAMPLES, level=LEVEL, seed=0):
    """The ``level`` percentile-bootstrap interval of
    ``median(b) - median(a)``: each group's runs resampled with replacement
    ``resamples`` times (a fixed seed, so a report is reproducible)."""
    rng = np.random.default_rng(seed)
    a, b = np.asarray(a, float), np.asarray(b, float)
    medians_a = np.median(rng.choice(a, (resamples, a.size)), axis=1)
    medians_b = np.median(rng.choice(b, (resamples, b.size)), axis=1)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(medians_b - medians_a, [tail, 100 - tail])
    return float(low), float(high)


def difference(first: RunGroup, second: RunGroup, metric: str) -> Difference:
    """:class:`Difference` of ``metric`` between two groups."""
    a, b = first.values(metric), second.values(metric)
    if not a or not b:
        return Difference(
            first.name,
            second.name,
            metric,
            None,
            note='not reported by every group')
    value = statistics.median(b.values()) - statistics.median(a.values())
    small = [(g, len(v)) for g, v in ((first, a), (second, b)) if len(v) < 2]
    if small:
        return Difference(
            first.name,
            second.name,
            metric,
            value,
            note='no interval: ' + ', '.join(f'{g.name!r} has {count} run'
                                             for g, count in small) +
            ' (an interval needs at least 2 runs per group)')
    low, high = bootstrap_interval(list(a.values()), list(b.values()))
    return Difference(first.name, second.name, metric, value, low, high)

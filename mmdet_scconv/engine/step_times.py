"""Keep the time of every training and test iteration, for speed columns
that measure the steady state.

MMEngine logs a smoothed time every ``logger.interval`` iterations and, for
a test, the mean over all its iterations, first-iteration costs included
(building workers, the first kernel calls, allocator growth). mmdet's own
``analysis_tools/benchmark.py`` skips warm-up iterations and times the rest;
:class:`StepTimesHook` writes every iteration's time
(``IterTimerHook``'s, data loading included) to
``<log_dir>/step_times.json`` as ``{"train": [...], "test": [...]}``, from
which :mod:`mmdet_scconv.analysis` takes medians after warm-up.
"""
import json
import os.path as osp

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

STEP_TIMES_FILE = 'step_times.json'


@HOOKS.register_module()
class StepTimesHook(Hook):
    """Write every training and test iteration's time to
    ``<log_dir>/step_times.json`` at the end of training and of testing."""

    # After IterTimerHook (NORMAL) has timed the iteration.
    priority = 'LOW'

    def __init__(self):
        self.times = {}

    def _after_iter(self,
                    runner,
                    batch_idx,
                    data_batch=None,
                    outputs=None,
                    mode='train'):
        # mmengine's Hook routes after_{train,val,test}_iter here.
        if mode in ('train', 'test'):
            time = runner.message_hub.get_scalar(f'{mode}/time').current()
            self.times.setdefault(mode, []).append(float(time))

    def before_test(self, runner):
        self.times.pop('test', None)

    def after_train(self, runner):
        self._write(runner)

    def after_test(self, runner):
        self._write(runner)

    def _write(self, runner):
        with open(osp.join(runner.log_dir, STEP_TIMES_FILE), 'w') as f:
            json.dump(self.times, f)

"""Stop a diverging run at the iteration it diverges.

MMEngine trains on through ``nan`` losses to the last iteration and saves
checkpoints of non-finite weights on the way. :class:`DivergenceHook` stops
the run with an error that names the iteration, the non-finite loss terms
(and gradient norm), the lr and the last checkpoint to resume from, and no
checkpoint of non-finite weights is ever written.
"""
import math
import os.path as osp

import torch
from mmengine.hooks import Hook
from mmengine.optim import AmpOptimWrapper
from mmengine.registry import HOOKS


class TrainingDivergedError(RuntimeError):
    """Training met non-finite losses, gradients or weights."""


def _finite(value) -> bool:
    if torch.is_tensor(value):
        return bool(torch.isfinite(value).all())
    return math.isfinite(value)


def weights_finite(model) -> bool:
    """Whether every parameter of ``model`` is finite (one norm each,
    batched: a single host synchronisation)."""
    params = [p.detach() for p in model.parameters()]
    if not params:
        return True
    return bool(torch.isfinite(torch.stack(torch._foreach_norm(params))).all())


@HOOKS.register_module()
class DivergenceHook(Hook):
    """Stop training at a non-finite loss or gradient norm.

    After each iteration the logged loss terms and the gradient norm (logged
    when the optimizer wrapper clips gradients) are checked. A bad
    iteration whose update left the weights finite (mixed precision's loss
    scaler skips such updates: its overflowing gradient norms are its own
    business and are not counted) is tolerated up to ``max_bad_iters``
    times; non-finite weights stop the run at once. Before any checkpoint
    is written the weights are checked too.

    Args:
        max_bad_iters (int): Bad iterations tolerated before stopping, as
            long as the weights stay finite. Default: 0.
    """

    # Before the LoggerHook (BELOW_NORMAL) and CheckpointHook (VERY_LOW).
    priority = 'ABOVE_NORMAL'

    def __init__(self, max_bad_iters: int = 0):
        if not isinstance(max_bad_iters, int) or max_bad_iters < 0:
            raise ValueError(f'DivergenceHook: max_bad_iters must be an int '
                             f'>= 0, got {max_bad_iters!r}.')
        self.max_bad_iters = max_bad_iters
        self.bad_iters = 0

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None) -> None:
        bad = [
            f'{name}={float(value)}'
            for name, value in (outputs or {}).items()
            if 'loss' in name and not _finite(value)
        ]
        grad_norm = runner.message_hub.log_scalars.get('train/grad_norm')
        if (grad_norm is not None
                and not isinstance(runner.optim_wrapper, AmpOptimWrapper)
                and not math.isfinite(grad_norm.current())):
            bad.append(f'grad_norm={grad_norm.current()}')
        if not bad:
            return
        self.bad_iters += 1
        model = runner.model
        if not weights_finite(model):
            self._stop(runner, bad, 'the weights are no longer finite')
        if self.bad_iters > self.max_bad_iters:
            self._stop(
                runner, bad, f'{self.bad_iters} bad iteration(s), more than '
                f'max_bad_iters={self.max_bad_iters}')
        runner.logger.warning(
            f'Iteration {runner.iter + 1}: non-finite {", ".join(bad)}; the '
            f'weights are finite, so training goes on ({self.bad_iters} of '
            f'{self.max_bad_iters} bad iterations tolerated).')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if not weights_finite(runner.model):
            self._stop(
                runner, [], 'the weights are not finite, so the '
                'checkpoint was not written')

    @staticmethod
    def _stop(runner, bad, why):
        lr = ', '.join(f'{value:g}'
                       for values in runner.optim_wrapper.get_lr().values()
                       for value in values)
        terms = f'non-finite {", ".join(bad)}; ' if bad else ''
        raise TrainingDivergedError(
            f'Training diverged at iteration {runner.iter + 1}: {terms}'
            f'{why}. lr: {lr}. {_resume_hint(runner)} Lower the lr (or '
            f'lengthen its warmup), or clip gradients '
            f'(optim_wrapper.clip_grad).')


def _resume_hint(runner) -> str:
    """Which checkpoint to resume from, from the CheckpointHook's record."""
    record = osp.join(runner.work_dir, 'last_checkpoint')
    if osp.isfile(record):
        with open(record) as f:
            last = f.read().strip()
        if last:
            return (f'Last checkpoint: {last} (resume with --resume '
                    f'{last}).')
    return 'No checkpoint was written yet.'

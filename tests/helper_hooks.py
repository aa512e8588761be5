"""Hooks the robustness tests load into real runs via custom_imports."""
import os.path as osp

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


class Interrupted(RuntimeError):
    """Raised by :class:`InterruptAfterIterHook`."""


@HOOKS.register_module()
class InterruptAfterIterHook(Hook):
    """Stop the run with an exception once ``iters`` iterations are done."""

    priority = 'LOWEST'  # after the CheckpointHook of the same iteration

    def __init__(self, iters):
        self.iters = iters

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None):
        if runner.iter + 1 >= self.iters:
            raise Interrupted(f'interrupted after iteration {self.iters}')


@HOOKS.register_module()
class DumpRankWeightsHook(Hook):
    """Each rank saves its parameters and norm layer types after training.

    (BatchNorm running statistics are per-rank buffers: mmengine's DDP does
    not broadcast buffers.)
    """

    def after_run(self, runner):
        model = getattr(runner.model, 'module', runner.model)
        norms = sorted({
            type(m).__name__
            for m in model.backbone.modules() if 'Norm' in type(m).__name__
        })
        torch.save(
            dict(
                params={
                    k: v.detach()
                    for k, v in model.named_parameters()
                },
                norms=norms),
            osp.join(runner.work_dir, f'rank{runner.rank}.pth'))

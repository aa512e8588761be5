"""Where a trunk's step spends its time: torch.profiler's top kernels.

Torch only, like the trunk benchmark, so it runs on a GPU machine without
mmcv/mmengine/mmdet.
"""
import torch

from .models import trunk_loss, trunk_models
from .timing import make_step, synchronize


def profile_trunk(depth=50,
                  impl='fast',
                  device='cuda',
                  batch=2,
                  height=800,
                  width=1216,
                  dtype='bf16',
                  channels_last=True,
                  train=False,
                  steps=3,
                  rows=25) -> str:
    """Profile ``steps`` steps of one trunk; return the profiler's table of
    the ``rows`` most expensive operators, sorted by device time (self time
    on the CPU).

    Args:
        depth (int): 50 or 101.
        impl (str): ``'resnet'`` for the plain trunk, else an SCConv variant
            of :func:`trunk_models` (``'fast'``, ``'deploy'``,
            ``'reference'``).
        device (str): ``'cuda'`` or ``'cpu'``.
        batch (int), height (int), width (int): Input shape.
        dtype (str): ``'fp32'``, ``'bf16'`` or ``'fp16'`` autocast.
        channels_last (bool): Model and input in channels-last.
        train (bool): Profile training steps instead of inference.
        steps (int): Profiled steps (after three warm-up steps).
        rows (int): Table rows.
    """
    device = torch.device(device)
    name = f'resnet{depth}' if impl == 'resnet' else f'scconv{depth}-{impl}'
    model = trunk_models(depth, [] if impl == 'resnet' else [impl])[name]
    model = model.to(device).train(train)
    x = torch.randn(batch, 3, height, width, device=device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    step = make_step(model, x, trunk_loss, train, dtype, device)
    for _ in range(3):
        step()
    synchronize(device)
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == 'cuda':
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(steps):
            step()
        synchronize(device)
    sort = ('self_cuda_time_total'
            if device.type == 'cuda' else 'self_cpu_time_total')
    return prof.key_averages().table(sort_by=sort, row_limit=rows)


__all__ = ['profile_trunk']

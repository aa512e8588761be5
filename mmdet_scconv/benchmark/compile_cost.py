"""What SCConv's self-compiling CPU path costs before it is fast: the first
call (inductor compiles), recompilations over new image sizes, and the same
first call in a later process that finds inductor's caches warm.

Torch only: the benchmark's trunk compiles itself as ``SCConvResNet``
does (:func:`..layers.run_backbone`).
"""
import json
import subprocess
import sys
import time

import torch

from .trunk import ResNetTrunk

#: Ten image sizes (height, width), as a detector's test set gives them.
SIZES = ((512, 768), (480, 640), (544, 800), (512, 512), (448, 704),
         (576, 768), (416, 608), (512, 672), (608, 800), (384, 576))


def _graphs() -> int:
    return torch._dynamo.utils.counters['stats']['unique_graphs']


def compile_cost(train=False, batch=1, sizes=SIZES, depth=50) -> dict:
    """Seconds of the first call, then per size of ``sizes`` seconds and
    graphs compiled, for an SCConv trunk in this process.

    Args:
        train (bool): A training step (forward and backward) instead of
            inference. Default: False.
        batch (int): Images per call. Default: 1.
        sizes (tuple): ``(height, width)`` per call; the first is the first
            call. Default: :data:`SIZES`.
        depth (int): ResNet depth. Default: 50.
    """
    torch.manual_seed(0)
    model = ResNetTrunk(depth, scconv_cfg={}).train(train)
    calls = []
    for h, w in sizes:
        x = torch.randn(batch, 3, h, w)
        before, start = _graphs(), time.perf_counter()
        if train:
            sum(out.mean() for out in model(x)).backward()
        else:
            with torch.inference_mode():
                model(x)
        calls.append(
            dict(
                size=[h, w],
                seconds=round(time.perf_counter() - start, 3),
                graphs=_graphs() - before))
    return dict(
        first_call_s=calls[0]['seconds'],
        recompiles_after_first=sum(c['graphs'] for c in calls[1:]),
        calls=calls)


def first_call_in_new_process(train=False, batch=1, size=SIZES[0]) -> float:
    """Seconds of the first call in a fresh Python process (which finds
    the caches this one may have warmed)."""
    code = ('import json, sys; '
            'from mmdet_scconv.benchmark.compile_cost import compile_cost; '
            f'print(json.dumps(compile_cost({train}, {batch}, '
            f'({tuple(size)},))))')
    out = subprocess.run([sys.executable, '-c', code],
                         capture_output=True,
                         text=True,
                         check=True).stdout
    return json.loads(out.strip().splitlines()[-1])['first_call_s']

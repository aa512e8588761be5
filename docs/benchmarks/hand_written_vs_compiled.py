"""The measurement behind the CPU path (docs/speed.md, "CPU: the compiled
reference against the hand-written path"): in one process, interleaved,
ResNet-50 eager, SCConv-R50 on the hand-written CPU path of ``d641743``
(compiled C++ kernels, in-place inference), the reference modules eagerly,
the reference with each SCConv layer compiled by inductor on its own, and
the whole trunk compiled by inductor.

Run it in a checkout of ``d641743`` (the hand-written path is gone after
it) set up with ``bash tools/install.sh``:
    .venv/bin/python docs/benchmarks/hand_written_vs_compiled.py \
        BATCH HEIGHT WIDTH infer|train [REPEATS]
"""
import copy
import statistics
import sys
import time
import types

import torch
from mmdet_scconv.benchmark.trunk import ResNetTrunk
from mmdet_scconv.benchmark.timing import make_step, time_interleaved
from mmdet_scconv.benchmark.models import trunk_loss
from mmdet_scconv.layers import SCConv, set_scconv_impl

torch.set_num_threads(2)
batch, h, w = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
train = sys.argv[4] == 'train'
repeats = int(sys.argv[5]) if len(sys.argv) > 5 else 5


def ref_forward(layer, x):
    return layer.cru(layer.sru(x))


compiled_ref = torch.compile(ref_forward)


def per_layer(model):
    for m in model.modules():
        if isinstance(m, SCConv):

            def fwd(self, x):
                torch._dynamo.maybe_mark_dynamic(x, 0)
                torch._dynamo.maybe_mark_dynamic(x, 2)
                torch._dynamo.maybe_mark_dynamic(x, 3)
                return compiled_ref(self, x)

            m.forward = types.MethodType(fwd, m)
    return model


torch._dynamo.config.recompile_limit = 64
base = ResNetTrunk(50)
sc = ResNetTrunk(50, scconv_cfg={})
models = {
    'resnet50':
    base,
    'fast':
    set_scconv_impl(copy.deepcopy(sc), 'fast'),
    'reference':
    set_scconv_impl(copy.deepcopy(sc), 'reference'),
    'layer-compiled':
    per_layer(set_scconv_impl(copy.deepcopy(sc), 'reference')),
    'whole-compiled':
    torch.compile(set_scconv_impl(copy.deepcopy(sc), 'reference')),
}
x = torch.randn(batch, 3, h, w)
steps = {}
for name, m in models.items():
    m.train(train)
    steps[name] = make_step(m, x, trunk_loss, train, 'fp32',
                            torch.device('cpu'))
    t = time.perf_counter()
    steps[name]()
    print(
        f'first call {name}: {time.perf_counter()-t:.1f} s', flush=True)
times = time_interleaved(steps, torch.device('cpu'), warmup=2, repeats=repeats)
ref = statistics.median(times['resnet50'])
for name, ts in times.items():
    med = statistics.median(ts)
    print(f'{name:16s} {med*1e3:8.1f} ms  ratio {med/ref:.3f}')

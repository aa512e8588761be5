"""The benchmark's cases, run one after another, written to JSON and PNG."""
import copy
import itertools
import json
import os.path as osp
from dataclasses import asdict, dataclass, field

import torch

from . import models as model_zoo
from .cpu_heap import keep_freed_memory
from .environment import describe, environment_of
from .timing import compare, format_table


@dataclass
class BenchmarkConfig:
    """What to measure.

    Args:
        scope (str): ``'trunk'`` (backbone alone, torch only),
            ``'detector'`` (RetinaNet, needs mmdet) or ``'layers'`` (each
            distinct SCConv of the trunk with its BatchNorm against the 3x3
            convolution and BatchNorm it replaces, torch only).
        depth (int): 50 or 101.
        device (str): ``'cpu'`` or ``'cuda'``.
        batch (int): Images per step.
        height (int), width (int): Input size.
        modes (list[str]): ``'infer'`` and/or ``'train'``.
        dtypes (list[str]): ``'fp32'``, ``'bf16'``, ``'fp16'`` (autocast).
        channels_last (list[bool]): Memory formats to try.
        impls (list[str]): SCConv variants to time: ``'fast'``,
            ``'reference'``, ``'deploy'`` (inference cases only).
        compile (bool): Wrap every model in ``torch.compile``.
        cuda_graph (bool): Time CUDA graph replays of each step (no CPU
            launch cost) instead of eager steps.
        warmup (int), repeats (int): Steps per model before / while timing.
        config_dir (str): Where the detector configs live.
        threads (int, optional): ``torch.set_num_threads`` on CPU; ONNX
            Runtime's intra-op threads.
        runtime (str): ``'pytorch'``, ``'onnxruntime'`` or ``'openvino'``
            (the models exported to ONNX and run in that engine, CPU fp32
            inference; see :mod:`.engines`).
        profile (bool): With an engine runtime, also each model's time per
            operator type from the engine's counters.
        cpu_heap (str): ``'default'``, or ``'keep'``: before anything runs,
            glibc's malloc is set to keep the memory tensors free, for the
            rest of the process (:func:`.cpu_heap.keep_freed_memory`), so
            no model's step page-faults its activations back in.
    """
    scope: str = 'trunk'
    depth: int = 50
    device: str = 'cpu'
    batch: int = 1
    height: int = 512
    width: int = 768
    modes: list = field(default_factory=lambda: ['infer', 'train'])
    dtypes: list = field(default_factory=lambda: ['fp32'])
    channels_last: list = field(default_factory=lambda: [False, True])
    impls: list = field(
        default_factory=lambda: ['fast', 'deploy', 'reference'])
    compile: bool = False
    cuda_graph: bool = False
    warmup: int = 3
    repeats: int = 10
    config_dir: str = 'configs'
    threads: int = None
    runtime: str = 'pytorch'
    cpu_heap: str = 'default'
    profile: bool = False


def _suites(cfg, device):
    """``(label, models, batch, loss_fn, baseline)`` per group of models
    compared side by side: one for the trunk or detector scope, one per
    distinct SCConv shape for the layers scope."""
    if cfg.scope == 'layers':
        return [
            (label, models, batch, model_zoo.layer_loss, 'conv3x3')
            for label, models, batch in model_zoo.layer_suites(
                cfg.depth, cfg.impls, cfg.batch, cfg.height, cfg.width, device)
        ]
    baseline = f'resnet{cfg.depth}'
    if cfg.scope == 'trunk':
        models = model_zoo.trunk_models(cfg.depth, cfg.impls)
        batch = torch.randn(cfg.batch, 3, cfg.height, cfg.width, device=device)
        return [('', models, batch, model_zoo.trunk_loss, baseline)]
    models = model_zoo.detector_models(cfg.depth, cfg.impls, cfg.config_dir)
    batch = model_zoo.detector_batch(cfg.batch, cfg.height, cfg.width, device)
    return [('', models, batch, model_zoo.detector_loss, baseline)]


def _prepared(model, train, channels_last, compile_model, device):
    model = copy.deepcopy(model).to(device)
    model.train(train)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return torch.compile(model) if compile_model else model


def run_benchmark(cfg: BenchmarkConfig, log=print) -> dict:
    """Run every case of ``cfg``; return ``{'config', 'env', 'results'}``."""
    if cfg.cpu_heap not in ('default', 'keep'):
        raise ValueError(f"cpu_heap must be 'default' or 'keep', got "
                         f'{cfg.cpu_heap!r}')
    if cfg.cpu_heap == 'keep':
        keep_freed_memory()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.runtime != 'pytorch':
        from .engines import run_engine
        return run_engine(cfg, log)
    device = torch.device(cfg.device)
    # Every model gets cuDNN's fastest algorithms for the one input shape.
    torch.backends.cudnn.benchmark = device.type == 'cuda'
    env = environment_of(cfg.device)
    log(describe(env))
    results = []
    for (label, models, batch, loss_fn, baseline), mode, dtype, \
            channels_last in itertools.product(
                _suites(cfg, device), cfg.modes, cfg.dtypes,
                cfg.channels_last):
        train = mode == 'train'
        case = ' '.join([cfg.scope] + [label] * bool(label) + [mode, dtype] +
                        ['channels-last'] * channels_last +
                        ['cuda-graph'] * cfg.cuda_graph +
                        ['compiled'] * cfg.compile)
        inputs = batch
        if channels_last and torch.is_tensor(batch):
            inputs = batch.contiguous(memory_format=torch.channels_last)
        elif channels_last:
            inputs = dict(
                batch,
                inputs=batch['inputs'].contiguous(
                    memory_format=torch.channels_last))
        if train and cfg.scope == 'layers':
            # Inside a trunk a layer's input gradient is computed too.
            inputs = inputs.detach().requires_grad_()
        prepared = {
            name: _prepared(m, train, channels_last, cfg.compile, device)
            for name, m in models.items()
            if not (train and name.endswith('-deploy'))
        }
        case_results = compare(prepared, inputs, loss_fn, case, train, dtype,
                               device, cfg.batch, baseline, cfg.warmup,
                               cfg.repeats, cfg.cuda_graph)
        log(format_table(case_results))
        results.extend(case_results)
    return dict(
        config=asdict(cfg), env=env, results=[r.as_dict() for r in results])


def write_json(report, path):
    with open(path, 'w') as f:
        json.dump(report, f, indent=2)


def write_chart(report, path):
    """A bar chart of each model's time ratio to the ResNet, per case.

    Raises:
        ImportError: matplotlib is not installed (the caller says so).
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    results = report['results']
    cases = list(dict.fromkeys(r['case'] for r in results))
    names = list(dict.fromkeys(r['model'] for r in results))
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(cases)), 4))
    width = 0.8 / len(names)
    ratio = {(r['case'], r['model']): r['ratio'] for r in results}
    for i, name in enumerate(names):
        # A model absent from a case (deploy in training) gets no bar.
        ratios = [ratio.get((c, name), float('nan')) for c in cases]
        ax.bar([j + i * width for j in range(len(cases))],
               ratios,
               width,
               label=name)
    ax.axhline(1.0, color='black', linewidth=0.8)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(cases))])
    ax.set_xticklabels(cases, rotation=20, ha='right', fontsize=8)
    ax.set_ylabel('time / ResNet time')
    env = report['env']
    ax.set_title(describe(env), fontsize=8)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def output_paths(out_dir, cfg):
    stem = (f'{cfg.scope}_r{cfg.depth}_{cfg.device}_b{cfg.batch}_'
            f'{cfg.height}x{cfg.width}' +
            ('_compiled' if cfg.compile else '') +
            ('' if cfg.runtime == 'pytorch' else f'_{cfg.runtime}') +
            ('_graph' if cfg.cuda_graph else ''))
    return osp.join(out_dir, f'{stem}.json'), osp.join(out_dir, f'{stem}.png')

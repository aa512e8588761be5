"""``--runtime onnxruntime`` and ``--runtime openvino``: the trunk or
detector models exported to ONNX and timed side by side in a graph engine
on the CPU (fp32, inference).

Each SCConv variant is exported as deployment exports it for the engine:
``fast`` and ``deploy`` in the engine's export form
(:func:`..layers.scconv.to_export_form`; ``deploy`` with the BatchNorms
folded), ``reference`` as the SRU and CRU modules are written (what a plain
export of SCConv gives). OpenVINO runs the IR its own converter makes of the
ONNX file, compiled in fp32. The detector is exported with its raw head
outputs (no NMS), as the PyTorch detector scope times it. With ``profile``,
each model's time per operator type from the engine's own counters. Needs
the ``export`` extra.
"""
import collections
import copy
import json
import os.path as osp
import tempfile
from dataclasses import asdict

import torch

from ..deployment.onnx_export import (export_onnx, onnxruntime_session,
                                      require_export_dependencies)
from ..deployment.openvino import (INFERENCE_PRECISION, convert_to_openvino,
                                   ir_path_beside, openvino_model,
                                   openvino_version, require_openvino)
from ..deployment.wrappers import RawOutputs
from ..layers.scconv import to_export_form
from . import models as model_zoo
from .environment import describe, environment_of
from .timing import format_table, summarise, time_interleaved

#: What each ``--runtime`` value names.
ENGINES = {'onnxruntime': 'ONNX Runtime', 'openvino': 'OpenVINO'}


def exported_module(name: str, model: torch.nn.Module, scope: str,
                    engine: str):
    """What is exported for ``name``: the trunk, or the detector's raw
    outputs; SCConv variants other than ``reference`` in ``engine``'s
    export form."""
    model = copy.deepcopy(model).eval()
    if scope == 'detector':
        model = RawOutputs(model.detector).eval()
    if '-reference' not in name:
        to_export_form(model, engine)
    return model


def _check_config(cfg):
    flag = f'--runtime {cfg.runtime}'
    if cfg.scope not in ('trunk', 'detector'):
        raise ValueError(f'{flag} times the trunk or the detector scope, not '
                         f'{cfg.scope!r}.')
    if cfg.device != 'cpu' or cfg.modes != ['infer'] or cfg.dtypes != [
            'fp32'
    ] or cfg.compile or cfg.cuda_graph:
        raise ValueError(
            f'{flag} measures CPU fp32 inference: use --device cpu --modes '
            f'infer --dtypes fp32, without --compile or --cuda-graph.')


def engine_environment(engine: str) -> dict:
    """The engine's version (and OpenVINO's inference precision)."""
    if engine == 'openvino':
        return dict(
            openvino=openvino_version(),
            openvino_inference_precision=INFERENCE_PRECISION)
    import onnxruntime
    return dict(onnxruntime=onnxruntime.__version__)


def engine_step(engine: str, path: str, threads: int, image: torch.Tensor):
    """One inference of the ONNX model ``path`` in ``engine``, as a
    callable (OpenVINO: of the IR converted beside it)."""
    feeds = {'image': image.numpy()}
    if engine == 'openvino':
        request = openvino_model(path, threads).create_infer_request()
        return lambda: request.infer(feeds)
    session = onnxruntime_session(path, threads)
    return lambda: session.run(None, feeds)


def operator_times(engine: str,
                   path: str,
                   threads: int,
                   image: torch.Tensor,
                   runs: int = 3) -> dict:
    """Milliseconds per inference by operator type (OpenVINO: its
    executed node types, e.g. ``Reorder``; ONNX Runtime: its ONNX operator
    types), from the engine's own counters, the mean of ``runs`` runs after
    one untimed run.

    Args:
        engine (str): ``'onnxruntime'`` or ``'openvino'``.
        path (str): The model (OpenVINO: its IR).
        threads (int): Intra-op threads; 0 lets the engine choose.
        image (Tensor): The input.
        runs (int): Profiled runs. Default: 3.
    """
    totals = collections.Counter()
    feeds = {'image': image.numpy()}
    if engine == 'openvino':
        request = openvino_model(
            path, threads, profile=True).create_infer_request()
        request.infer(feeds)
        for _ in range(runs):
            request.infer(feeds)
            for node in request.profiling_info:
                totals[node.node_type] += node.real_time.total_seconds() * 1e3
    else:
        with tempfile.TemporaryDirectory() as tmp:
            session = onnxruntime_session(
                path, threads, profile_prefix=osp.join(tmp, 'profile'))
            for _ in range(runs + 1):
                session.run(None, feeds)
            with open(session.end_profiling()) as f:
                events = json.load(f)
        totals.update(_onnxruntime_node_times(events))
    return {op: ms / runs for op, ms in totals.most_common()}


def _onnxruntime_node_times(events) -> collections.Counter:
    """Milliseconds by operator type over the runs of an ONNX Runtime
    profile after its first."""
    runs = sorted(e['ts'] + e['dur'] for e in events
                  if e.get('name') == 'model_run')
    totals = collections.Counter()
    for event in events:
        if (event.get('cat') == 'Node'
                and event['name'].endswith('_kernel_time')
                and event['ts'] > runs[0]):
            totals[event['args']['op_name']] += event['dur'] / 1e3
    return totals


def format_operator_table(profiles: dict) -> str:
    """A markdown table of :func:`operator_times` per model (columns),
    operator types by their largest time (those under 0.05 ms everywhere
    left out), a total row last."""
    models = list(profiles)
    largest = collections.Counter()
    for times in profiles.values():
        for op, ms in times.items():
            largest[op] = max(largest[op], ms)
    rows = [
        '| operator | ' + ' | '.join(f'{m} ms' for m in models) + ' |',
        '|---|' + '---:|' * len(models)
    ]
    for op, ms in largest.most_common():
        if ms < 0.05:
            break
        cells = [f'{profiles[m].get(op, 0.0):.1f}' for m in models]
        rows.append(f'| {op} | ' + ' | '.join(cells) + ' |')
    totals = [f'{sum(profiles[m].values()):.1f}' for m in models]
    rows.append('| total | ' + ' | '.join(totals) + ' |')
    return '\n'.join(rows)


def run_engine(cfg, log=print) -> dict:
    """Export and time every model of ``cfg`` (a ``BenchmarkConfig``) in
    the engine ``cfg.runtime``; return ``{'config', 'env', 'results'}`` as
    :func:`.runner.run_benchmark` does, and ``'operators'`` (per model,
    :func:`operator_times`) with ``cfg.profile``."""
    _check_config(cfg)
    engine = cfg.runtime
    require_export_dependencies()
    if engine == 'openvino':
        require_openvino()
    env = dict(environment_of('cpu'), **engine_environment(engine))
    versions = ', '.join(f'{k} {v}' for k, v in env.items()
                         if k.startswith(engine))
    log(describe(env) + f', {versions}')
    if cfg.scope == 'trunk':
        models = model_zoo.trunk_models(cfg.depth, cfg.impls)
    else:
        models = model_zoo.detector_models(cfg.depth, cfg.impls,
                                           cfg.config_dir)
    image = torch.randn(cfg.batch, 3, cfg.height, cfg.width)
    threads = cfg.threads or 0
    steps, profiles = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, model in models.items():
            path = osp.join(tmp, f'{name}.onnx')
            export_onnx(
                exported_module(name, model, cfg.scope, engine), image, path)
            if engine == 'openvino':
                convert_to_openvino(path, ir_path_beside(path))
                path = ir_path_beside(path)
            steps[name] = engine_step(engine, path, threads, image)
            if cfg.profile:
                profiles[name] = operator_times(engine, path, threads, image)
        times = time_interleaved(steps, torch.device('cpu'), cfg.warmup,
                                 cfg.repeats)
    results = summarise(f'{engine} {cfg.scope} infer fp32', times, cfg.batch,
                        f'resnet{cfg.depth}')
    log(format_table(results))
    report = dict(
        config=asdict(cfg), env=env, results=[r.as_dict() for r in results])
    if cfg.profile:
        log(f'{ENGINES[engine]} time per operator type (ms per inference, '
            f"the engine's counters):")
        log(format_operator_table(profiles))
        report['operators'] = profiles
    return report

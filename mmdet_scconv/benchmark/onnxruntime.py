"""``--runtime onnxruntime``: the trunk or detector models exported to ONNX
and timed side by side in ONNX Runtime on the CPU (fp32, inference).

Each SCConv variant is exported as deployment exports it: ``fast`` and
``deploy`` in :class:`..layers.export_form.ExportSCConv` (``deploy`` with
the BatchNorms folded), ``reference`` as the SRU and CRU modules are
written (what a plain export of SCConv gives). The detector is exported
with its raw head outputs (no NMS), as the PyTorch detector scope times it.
Needs the ``export`` extra.
"""
import copy
import os.path as osp
import tempfile
from dataclasses import asdict

import torch

from ..deployment.onnx_export import (export_onnx, onnxruntime_session,
                                      require_export_dependencies)
from ..deployment.wrappers import RawOutputs
from ..layers.scconv import to_export_form
from . import models as model_zoo
from .environment import describe, environment_of
from .timing import format_table, summarise, time_interleaved


def exported_module(name: str, model: torch.nn.Module, scope: str):
    """What is exported for ``name``: the trunk, or the detector's raw
    outputs; SCConv variants other than ``reference`` in export form."""
    model = copy.deepcopy(model).eval()
    if scope == 'detector':
        model = RawOutputs(model.detector).eval()
    if '-reference' not in name:
        to_export_form(model)
    return model


def _check_config(cfg):
    if cfg.scope not in ('trunk', 'detector'):
        raise ValueError(f'--runtime onnxruntime times the trunk or the '
                         f'detector scope, not {cfg.scope!r}.')
    if cfg.device != 'cpu' or cfg.modes != ['infer'] or cfg.dtypes != [
            'fp32'
    ] or cfg.compile or cfg.cuda_graph:
        raise ValueError(
            '--runtime onnxruntime measures CPU fp32 inference: use '
            '--device cpu --modes infer --dtypes fp32, without --compile '
            'or --cuda-graph.')


def run_onnxruntime(cfg, log=print) -> dict:
    """Export and time every model of ``cfg`` (a ``BenchmarkConfig``) in
    ONNX Runtime; return ``{'config', 'env', 'results'}`` as
    :func:`.runner.run_benchmark` does."""
    _check_config(cfg)
    require_export_dependencies()
    import onnxruntime
    env = dict(environment_of('cpu'), onnxruntime=onnxruntime.__version__)
    log(describe(env) + f', ONNX Runtime {onnxruntime.__version__}')
    if cfg.scope == 'trunk':
        models = model_zoo.trunk_models(cfg.depth, cfg.impls)
    else:
        models = model_zoo.detector_models(cfg.depth, cfg.impls,
                                           cfg.config_dir)
    image = torch.randn(cfg.batch, 3, cfg.height, cfg.width)
    feeds = {'image': image.numpy()}
    steps = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, model in models.items():
            path = osp.join(tmp, f'{name}.onnx')
            export_onnx(exported_module(name, model, cfg.scope), image, path)
            session = onnxruntime_session(path, cfg.threads or 0)
            steps[name] = (lambda s=session: s.run(None, feeds))
    times = time_interleaved(steps, torch.device('cpu'), cfg.warmup,
                             cfg.repeats)
    results = summarise(f'onnxruntime {cfg.scope} infer fp32', times,
                        cfg.batch, f'resnet{cfg.depth}')
    log(format_table(results))
    return dict(
        config=asdict(cfg), env=env, results=[r.as_dict() for r in results])

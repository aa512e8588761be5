"""ONNX export: the export forms equal the reference, the NMS op equals
mmcv's, any ONNX export of SCConv takes ONNX Runtime's export form, the
ONNX Runtime benchmark scope runs, and bad input is refused clearly. The
exported forms in both engines are tested in ``test_engines.py``; the
exported detector (raw outputs and detections, through the tool) on the
demo's trained checkpoint in ``test_demo.py``, which trains it."""
import itertools
import json
import sys

import onnx
import pytest
import torch
from mmengine.config import Config
from test_layers import randomise
from tiny import CONFIGS, ROOT, engine_benchmark_config, run_tool

from mmdet_scconv.benchmark import BenchmarkConfig, run_benchmark
from mmdet_scconv.benchmark.exactness import batchnorm_with_stats
from mmdet_scconv.deployment import (export_detector, export_onnx, graph_of,
                                     onnxruntime_session)
from mmdet_scconv.deployment.nms import nms
from mmdet_scconv.layers import SCConv
from mmdet_scconv.layers._numerics import relative_error
from mmdet_scconv.layers.conv_export_form import ConvExportSCConv
from mmdet_scconv.layers.export_form import ExportSCConv
from mmdet_scconv.layers.scconv import to_export_form

DEMO_CONFIG = f'{CONFIGS}/demo/retinanet_scconv_r50_shapes.py'


@pytest.mark.parametrize(
    'form,stride,gate,alpha,fused',
    list(
        itertools.product([ExportSCConv, ConvExportSCConv], [1, 2],
                          ['soft', 'hard'], [0.5, 0.75], [False, True])))
def test_export_form_equals_reference(form, stride, gate, alpha, fused):
    """Odd and even sizes, batch 2, a post-ReLU-like input (positive mean,
    where the one-pass variance is most at risk) and a centred one."""
    scconv = randomise(
        SCConv(
            32,
            48,
            stride=stride,
            gate=gate,
            alpha=alpha,
            gn_groups=8,
            impl='reference')).eval()
    if fused:
        scconv.fuse_norm(batchnorm_with_stats(48))
    export = form(scconv)
    for x in (torch.randn(2, 32, 9,
                          7), torch.relu(torch.randn(2, 32, 8, 8)) * 3 + 1):
        with torch.no_grad():
            assert relative_error(export(x), scconv(x)) <= 1e-5


@pytest.mark.parametrize('form', [ExportSCConv, ConvExportSCConv])
@pytest.mark.parametrize('threshold', [1e-7, 0.3, 0.999])
def test_export_form_gate_at_any_threshold(form, threshold):
    """The mask holds at any threshold (an arithmetic form for the
    sigmoid's boundaries from 2**-40 to 2**60, a comparison beyond)."""
    scconv = randomise(
        SCConv(
            16, 16, gn_groups=4, gate_threshold=threshold,
            impl='reference')).eval()
    x = torch.randn(1, 16, 6, 5)
    with torch.no_grad():
        assert relative_error(form(scconv)(x), scconv(x)) <= 1e-5


@pytest.mark.parametrize('dynamo', [True, False])
def test_any_onnx_export_of_scconv_uses_the_export_form(dynamo, tmp_path):
    """A plain ``torch.onnx.export`` of a model holding SCConv gets the
    export form's operators and ONNX Runtime runs it; so does the
    TorchScript exporter (mmdeploy's), with the mask as arithmetic (and
    ``Where`` nodes of its own translations)."""
    scconv = randomise(SCConv(16, 16, gn_groups=4)).eval()
    x = torch.randn(1, 16, 12, 10)
    path = str(tmp_path / 'layer.onnx')
    with torch.no_grad():
        if dynamo:
            torch.onnx.export(scconv, (x, ), dynamo=True).save(path)
        else:
            torch.onnx.export(scconv, (x, ), path, dynamo=False)
        expected = scconv(x)
    ops = [node.op_type for node in onnx.load(path).graph.node]
    assert 'MatMul' in ops and 'InstanceNormalization' not in ops
    assert ops.count('HardSigmoid') == (1 if dynamo else 0)
    if dynamo:
        assert 'Where' not in ops
    session = onnxruntime_session(path)
    (out, ) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    assert relative_error(torch.from_numpy(out), expected) <= 1e-5


def test_to_export_form_replaces_every_scconv():
    model = torch.nn.Sequential(
        SCConv(16, 16, gn_groups=4),
        torch.nn.Sequential(SCConv(16, 16, gn_groups=4, stride=2)))
    to_export_form(model)
    assert [
        type(m).__name__ for m in model.modules()
        if 'SCConv' in type(m).__name__
    ] == ['ExportSCConv'] * 2


def test_nms_op_equals_mmcv_and_passes_opcheck():
    from mmcv.ops import nms as mmcv_nms
    generator = torch.Generator().manual_seed(0)
    corners = torch.rand(200, 2, generator=generator) * 100
    sizes = torch.rand(200, 2, generator=generator) * 30 + 1
    boxes = torch.cat([corners, corners + sizes], dim=1)
    scores = torch.rand(200, generator=generator)
    kept = nms(boxes, scores, 0.5, 0.2, 50)
    above = scores > 0.2
    _, expected = mmcv_nms(boxes[above], scores[above], 0.5)
    assert kept.tolist() == torch.nonzero(above).flatten()[expected][:50] \
        .tolist()
    torch.library.opcheck(torch.ops.mmdet_scconv.nms,
                          (boxes, scores, 0.5, 0.2, 50))


@pytest.fixture(scope='module')
def demo_detector():
    """The demo's SCConv-R50 RetinaNet with random weights, in eval mode."""
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    torch.manual_seed(0)
    return MODELS.build(Config.fromfile(DEMO_CONFIG).model).eval()


def test_export_detector_refuses_bad_input(demo_detector, tmp_path):
    """What ``tools/deployment/pytorch2onnx.py`` passes on (its successful
    runs are in test_demo.py, on the trained checkpoint)."""
    checkpoint = tmp_path / 'random.pth'
    torch.save(dict(state_dict=demo_detector.state_dict()), checkpoint)
    out = str(tmp_path / 'model.onnx')
    with pytest.raises(FileNotFoundError, match='Checkpoint file not found'):
        export_detector(DEMO_CONFIG, str(tmp_path / 'none.pth'), out)
    with pytest.raises(ValueError, match='--shape must be two positive'):
        export_detector(DEMO_CONFIG, str(checkpoint), out, shape=(0, 64))
    with pytest.raises(ValueError, match='one image per call'):
        export_detector(DEMO_CONFIG, str(checkpoint), out, dynamic_batch=True)
    with pytest.raises(FileNotFoundError, match='Config file not found'):
        export_detector(str(tmp_path / 'none.py'), str(checkpoint), out)
    with pytest.raises(ValueError, match='one image per call'):
        export_onnx(
            graph_of(demo_detector),
            torch.randn(1, 3, 64, 64),
            out,
            dynamic_batch=True)


def test_onnxruntime_benchmark_scope(tmp_path):
    cfg = engine_benchmark_config('onnxruntime')
    report = run_benchmark(cfg, log=lambda line: None)
    assert [r['model']
            for r in report['results']] == ['resnet50', 'scconv50-deploy']
    assert report['results'][0]['ratio'] == 1.0
    assert report['env']['onnxruntime']
    # The profile: ONNX Runtime's operator types, from its own counters.
    operators = report['operators']
    assert operators['resnet50']['Conv'] > 0
    assert 'MatMul' not in operators['resnet50']
    assert operators['scconv50-deploy']['MatMul'] > 0
    json.dumps(report)
    with pytest.raises(ValueError, match='CPU fp32 inference'):
        run_benchmark(BenchmarkConfig(runtime='onnxruntime', modes=['train']))
    refused = run_tool(
        f'{ROOT}/tools/benchmark.py',
        '--runtime',
        'onnxruntime',
        '--channels-last',
        'on',
        check=False)
    assert 'drop --channels-last' in refused.stderr


def test_deploy_form_leaves_the_detector_as_it_was(demo_detector):
    before = {k: v.clone() for k, v in demo_detector.state_dict().items()}
    graph_of(demo_detector)
    after = demo_detector.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(
        isinstance(m, ExportSCConv) for m in demo_detector.modules())


def test_export_dependency_message(monkeypatch):
    from mmdet_scconv.deployment import ExportDependencyError
    from mmdet_scconv.deployment.onnx_export import require_export_dependencies

    # A None entry makes ``import onnxscript`` fail as if it were missing.
    monkeypatch.setitem(sys.modules, 'onnxscript', None)
    with pytest.raises(ExportDependencyError, match=r'mmdet-scconv\[export\]'):
        require_export_dependencies()

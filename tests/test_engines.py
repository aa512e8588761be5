"""Every export form computes SCConv as PyTorch does in ONNX Runtime and in
OpenVINO, gates at and next to the threshold included; OpenVINO's IR,
benchmark scope and profile run; bad input to the OpenVINO side is refused
clearly. The trained demo detector in OpenVINO is tested in
``test_demo.py``."""
import itertools
import sys

import onnx
import openvino as ov
import pytest
import torch
from mmengine.config import Config
from test_layers import randomise
from tiny import CONFIGS, ROOT, engine_benchmark_config, run_tool

from mmdet_scconv.benchmark import BenchmarkConfig, run_benchmark
from mmdet_scconv.benchmark.exactness import batchnorm_with_stats
from mmdet_scconv.deployment import (ExportDependencyError, RawOutputs,
                                     check_with_onnxruntime, export_detector,
                                     export_onnx, graph_of,
                                     onnxruntime_session)
from mmdet_scconv.deployment.openvino import (check_ir_path,
                                              check_with_openvino,
                                              convert_to_openvino,
                                              openvino_model, require_openvino,
                                              run_openvino)
from mmdet_scconv.layers import SCConv
from mmdet_scconv.layers.export_form import gate_mask, mask_boundary
from mmdet_scconv.layers.scconv import to_export_form
from mmdet_scconv.layers.sru import normalised_gamma

ENGINES = ('onnxruntime', 'openvino')
#: GN outputs ``Z`` given to whole groups of channels: at the threshold
#: (``sigmoid(0) = 0.5``) and within a few fp32 steps of it on both sides,
#: where engines' sigmoids round differently (OpenVINO's gives 0.5 up to
#: about 2e-7, PyTorch's the next number up from 9e-8).
NEAR_THRESHOLD = (0.0, 1e-7, 1.5e-7, 2e-7, 3e-7, -1e-7, -1.5e-7, -2e-7)


def at_the_threshold(stride, gate, fused):
    """A 32-channel layer and an input whose first 8 channels (two GN
    groups) are constant, so that ``GN(X) = 0`` there and ``Z`` is the
    folded GN bias, set to :data:`NEAR_THRESHOLD`; the rest random."""
    scconv = randomise(
        SCConv(32, 32, stride=stride, gate=gate, gn_groups=8,
               impl='fast')).eval()
    gn = scconv.sru.gn
    with torch.no_grad():
        # Tiny gammas: the constant channels' X * a stays far below the
        # targets' spacing, so every engine's rounding keeps Z on them.
        gn.weight[:8] = 1e-4
        w_gamma = normalised_gamma(gn.weight)
        gn.bias[:8] = torch.tensor(NEAR_THRESHOLD) / w_gamma[:8]
    if fused:
        scconv.fuse_norm(batchnorm_with_stats(32))
    x = torch.randn(2, 32, 10, 12)
    x[:, :8] = 1.0
    return scconv, x


def test_threshold_inputs_put_gates_at_and_next_to_the_threshold():
    scconv, x = at_the_threshold(1, 'soft', False)
    with torch.no_grad():
        r = scconv.sru.reweights(x)
    values = set(r[:, :8].flatten().tolist())
    next_up = torch.tensor(0.5).nextafter(torch.tensor(1.0)).item()
    assert {0.5, next_up} <= values
    assert any(0.5 - 1e-7 < value < 0.5 for value in values)


@pytest.mark.parametrize(
    'form,stride,gate,fused',
    list(itertools.product(ENGINES, [1, 2], ['soft', 'hard'], [False, True])))
def test_export_form_equals_pytorch_in_both_engines(form, stride, gate, fused,
                                                    tmp_path):
    """Each form, exported, in ONNX Runtime and in OpenVINO (its IR) gives
    PyTorch's output: a gate flipped on one of the constant channels would
    cost far more than 1e-5."""
    scconv, x = at_the_threshold(stride, gate, fused)
    path = str(tmp_path / 'layer.onnx')
    export_onnx(to_export_form(scconv, form).eval(), x, path)
    convert_to_openvino(path, str(tmp_path / 'layer.xml'))
    for check in (check_with_onnxruntime(path, scconv, x),
                  check_with_openvino(str(tmp_path / 'layer.xml'), scconv, x)):
        assert check.relative_error <= 1e-5, check.summary()


class GateMask(torch.nn.Module):

    def __init__(self, boundary):
        super().__init__()
        self.boundary = boundary

    def forward(self, z):
        return gate_mask(z, self.boundary)


@pytest.mark.parametrize('threshold', [2**-20, 0.3, 0.5, 0.999])
def test_gate_mask_is_pytorchs_in_both_engines(threshold, tmp_path):
    """The exported mask (one ``HardSigmoid`` of ``Z``) is ``sigmoid(Z) >
    t`` as PyTorch computes it, in both engines, for ``Z`` at, next to and
    far from the boundary."""
    boundary = torch.tensor(mask_boundary(threshold))
    assert torch.sigmoid(boundary) <= threshold
    up = boundary.nextafter(torch.tensor(torch.inf))
    assert torch.sigmoid(up) > threshold
    z = torch.stack([
        boundary, up,
        boundary.nextafter(torch.tensor(-torch.inf)),
        torch.tensor(0.0),
        torch.tensor(-30.0),
        torch.tensor(30.0)
    ]).reshape(1, 6, 1, 1)
    expected = (torch.sigmoid(z) > threshold).float()
    module = GateMask(float(boundary))
    assert torch.equal(module(z), expected)
    path = str(tmp_path / 'mask.onnx')
    torch.onnx.export(module.eval(), (z, ), dynamo=True).save(path)
    assert [n.op_type for n in onnx.load(path).graph.node] == ['HardSigmoid']
    session = onnxruntime_session(path)
    feeds = {session.get_inputs()[0].name: z.numpy()}
    for out in (session.run(None, feeds)[0],
                openvino_model(path)(list(feeds.values()))[0]):
        assert torch.equal(torch.from_numpy(out), expected)


@pytest.fixture(scope='module')
def random_detector():
    """The demo's SCConv-R50 RetinaNet with random weights and non-trivial
    norms (GroupNorm and BatchNorm), in eval mode."""
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    torch.manual_seed(0)
    detector = MODELS.build(
        Config.fromfile(
            f'{CONFIGS}/demo/retinanet_scconv_r50_shapes.py').model).eval()
    with torch.no_grad():
        for m in detector.modules():
            if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.GroupNorm)):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.5)
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2)
    return detector


@pytest.mark.parametrize('form', ENGINES)
def test_random_detector_raw_outputs_in_both_engines(form, random_detector,
                                                     tmp_path):
    """Both forms of the whole detector, dynamic batch, in both engines, at
    two sizes."""
    path = str(tmp_path / 'raw.onnx')
    image = torch.randn(1, 3, 64, 96)
    export_onnx(
        graph_of(random_detector, raw=True, engine=form),
        image,
        path,
        dynamic_batch=True)
    xml = str(tmp_path / 'raw.xml')
    convert_to_openvino(path, xml)
    reference = RawOutputs(random_detector)
    for batch in (image, torch.randn(2, 3, 96, 64)):
        for check in (check_with_onnxruntime(path, reference, batch),
                      check_with_openvino(xml, reference, batch)):
            assert check.relative_error <= 1e-4, check.summary()


def test_openvino_ir_keeps_fp32_weights(tmp_path):
    scconv, x = at_the_threshold(1, 'soft', True)
    path = str(tmp_path / 'layer.onnx')
    export_onnx(to_export_form(scconv, "openvino").eval(), x, path)
    convert_to_openvino(path, str(tmp_path / 'layer.xml'))
    model = ov.Core().read_model(str(tmp_path / 'layer.xml'))
    types = {
        op.get_output_element_type(0).get_type_name()
        for op in model.get_ops() if op.get_type_name() == 'Constant'
    }
    assert 'f16' not in types
    compiled = openvino_model(str(tmp_path / 'layer.xml'))
    assert compiled.get_property('INFERENCE_PRECISION_HINT') == ov.Type.f32


def test_openvino_bad_input(random_detector, tmp_path, monkeypatch):
    # An IR path that cannot be written.
    with pytest.raises(ValueError, match='does not exist.*mkdir -p'):
        check_ir_path(str(tmp_path / 'missing' / 'model.xml'))
    (tmp_path / 'ir.xml').mkdir()
    with pytest.raises(ValueError, match='is a folder'):
        check_ir_path(str(tmp_path / 'ir.xml'))
    with pytest.raises(ValueError, match=r'must end in \.xml'):
        check_ir_path(str(tmp_path / 'model.onnx'))
    # A shape the model does not take.
    path = str(tmp_path / 'raw.onnx')
    export_onnx(
        graph_of(random_detector, raw=True, engine='openvino'),
        torch.randn(1, 3, 64, 64), path)
    request = openvino_model(path).create_infer_request()
    with pytest.raises(
            ValueError,
            match=r'rejects a \(2, 3, 64, 64\) input.*'
            r'takes \[1,3,\?,\?\].*--dynamic'):
        run_openvino(request, torch.randn(2, 3, 64, 64))
    with pytest.raises(ValueError, match=r'rejects a \(1, 4, 64, 64\)'):
        run_openvino(request, torch.randn(1, 4, 64, 64))
    # The tool: a folder for the IR, refused before anything is exported.
    checkpoint = tmp_path / 'random.pth'
    torch.save({'state_dict': random_detector.state_dict()}, checkpoint)
    refused = run_tool(
        f'{ROOT}/tools/deployment/pytorch2onnx.py',
        f'{CONFIGS}/demo/retinanet_scconv_r50_shapes.py',
        str(checkpoint),
        '--out',
        str(tmp_path / 'x.onnx'),
        '--openvino',
        str(tmp_path / 'no' / 'x.xml'),
        check=False)
    assert refused.returncode != 0
    assert 'does not exist' in refused.stderr
    assert not (tmp_path / 'x.onnx').exists()
    # No openvino package: a None entry makes the import fail.
    monkeypatch.setitem(sys.modules, 'openvino', None)
    with pytest.raises(ExportDependencyError, match=r'mmdet-scconv\[export\]'):
        require_openvino()
    with pytest.raises(ExportDependencyError, match='--openvino'):
        export_detector(
            f'{CONFIGS}/demo/retinanet_scconv_r50_shapes.py',
            str(checkpoint),
            str(tmp_path / 'y.onnx'),
            openvino_ir=str(tmp_path / 'y.xml'))
    assert not (tmp_path / 'y.onnx').exists()


def test_openvino_benchmark_scope_and_profile(tmp_path):
    cfg = engine_benchmark_config('openvino')
    lines = []
    report = run_benchmark(cfg, log=lines.append)
    assert [r['model']
            for r in report['results']] == ['resnet50', 'scconv50-deploy']
    assert report['env']['openvino'] == ov.__version__.split('-')[0]
    assert report['env']['openvino_inference_precision'] == 'f32'
    operators = report['operators']
    assert operators['resnet50']['Convolution'] > 0
    # The convolution-only form: no matrix products, no reshapes.
    assert 'MatMul' not in operators['scconv50-deploy']
    assert 'Reshape' not in operators['scconv50-deploy']
    assert '\n| Convolution | ' in '\n'.join(lines)
    with pytest.raises(ValueError, match='--runtime openvino measures CPU'):
        run_benchmark(BenchmarkConfig(runtime='openvino', modes=['train']))
    refused = run_tool(f'{ROOT}/tools/benchmark.py', '--profile', check=False)
    assert '--runtime onnxruntime or --runtime openvino' in refused.stderr

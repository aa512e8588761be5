"""The README's demo command really detects (300 iterations, 2 to 5
minutes on 2 cores), and its checkpoint deploys: exported to ONNX (and
OpenVINO's IR), ONNX Runtime and OpenVINO give PyTorch's raw outputs and
mmdet's detections."""
import glob
import re
import shutil

import onnx
import pytest
import torch
from tiny import ROOT, run_tool

from mmdet_scconv.datasets import SHAPES_CLASSES
from mmdet_scconv.deployment import (RawOutputs, check_with_onnxruntime,
                                     load_detector, onnxruntime_session)
from mmdet_scconv.deployment.openvino import (check_with_openvino,
                                              openvino_model, run_openvino)
from mmdet_scconv.deployment.parity import (compare_detections,
                                            mmdet_detections, preprocessed)

DEMO_CONFIG = 'configs/demo/retinanet_scconv_r50_shapes.py'


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    """The demo run from a copy of the configs, so that its relative
    data_root lands in tmp: ``(root, work_dir, log)``."""
    root = tmp_path_factory.mktemp('demo')
    shutil.copytree(f'{ROOT}/configs', root / 'configs')
    work = root / 'work'
    result = run_tool(
        f'{ROOT}/tools/demo.py',
        DEMO_CONFIG,
        '--work-dir',
        str(work),
        cwd=str(root))
    return root, work, result.stdout + result.stderr


def test_demo_trains_a_detector(demo):
    root, _, log = demo
    found = re.search(r'mAP@\.5 = ([0-9.]+), mAP@\[\.5:\.95\] = ([0-9.]+)',
                      log)
    assert found, log[-3000:]
    map50, map_coco = map(float, found.groups())
    # Far above an untrained model's ~0, below a perfect score on this set
    # (docs/demo.md: 3 seeds of each model).
    assert 0.3 <= map50 < 0.95
    assert 0 < map_coco <= map50
    assert (root / 'data/shapes/coco/annotations/instances_val.json').is_file()
    assert (root /
            'data/shapes/VOCdevkit/VOC2007/ImageSets/Main/test.txt').is_file()


def _export(work, *args):
    (checkpoint, ) = glob.glob(str(work / 'iter_*.pth'))
    config = str(work / 'retinanet_scconv_r50_shapes.py')
    result = run_tool(f'{ROOT}/tools/deployment/pytorch2onnx.py', config,
                      checkpoint, *args)
    assert 'ONNX Runtime vs PyTorch' in result.stdout, result.stdout
    if '--openvino' in args:
        assert 'OpenVINO vs PyTorch' in result.stdout, result.stdout
    return load_detector(config, checkpoint)


def onnxruntime_detections(path):
    session = onnxruntime_session(path)
    assert [o.name for o in session.get_outputs()] == ['dets', 'labels']
    return lambda inputs: session.run(None, {'image': inputs.numpy()})


def openvino_detections(path):
    request = openvino_model(path).create_infer_request()
    return lambda inputs: list(run_openvino(request, inputs).values())


def assert_detections_equal_mmdet(root, detector, engines):
    """Every held-out image: the same number of detections, labels and
    order by score, boxes within 1e-3 relative, in every engine."""
    images = sorted(glob.glob(str(root / 'data/shapes/coco/val/*.jpg')))
    assert len(images) == 40
    total = 0
    for image in images:
        inputs, sample = preprocessed(detector, image)
        expected = mmdet_detections(detector, inputs, sample)
        for name, detect in engines.items():
            parity = compare_detections(*detect(inputs), expected)
            assert parity.ok(1e-3), f'{name}, {image}: {parity.summary()}'
        total += parity.count
    assert total >= 40  # the trained model finds the shapes


def test_onnx_detections_equal_mmdet_predictions(demo):
    root, work, _ = demo
    out = work / 'demo.onnx'
    detector = _export(work, '--out', str(out), '--shape', '128', '128')
    nodes = onnx.load(str(out)).graph.node
    assert 'NonMaxSuppression' in {node.op_type for node in nodes}
    assert {node.domain for node in nodes} <= {'', 'ai.onnx'}
    assert_detections_equal_mmdet(
        root, detector, {'ONNX Runtime': onnxruntime_detections(str(out))})


def test_openvino_detections_equal_mmdet_predictions(demo):
    """``--openvino``: the IR beside the ONNX file (SCConv in OpenVINO's
    form), both checked by the tool; on every held-out image OpenVINO (and
    ONNX Runtime on the same file) give mmdet's detections."""
    root, work, _ = demo
    out = work / 'demo_ov.onnx'
    detector = _export(work, '--out', str(out), '--shape', '128', '128',
                       '--openvino')
    xml = work / 'demo_ov.xml'
    assert xml.is_file() and (work / 'demo_ov.bin').is_file()
    assert 'MatMul' not in {n.op_type for n in onnx.load(str(out)).graph.node}
    assert_detections_equal_mmdet(
        root, detector, {
            'OpenVINO': openvino_detections(str(xml)),
            'ONNX Runtime': onnxruntime_detections(str(out))
        })


@pytest.mark.parametrize('engine', ['onnxruntime', 'openvino'])
def test_raw_outputs_equal_pytorch_at_two_sizes(demo, engine):
    root, work, _ = demo
    out = work / f'raw_{engine}.onnx'
    openvino = ['--openvino'] if engine == 'openvino' else []
    detector = _export(work, '--out', str(out), '--shape', '128', '128',
                       '--raw', '--dynamic', *openvino)
    (image, ) = glob.glob(str(root / 'data/shapes/coco/val/val_00000.jpg'))
    inputs, _ = preprocessed(detector, image)
    resized = torch.nn.functional.interpolate(
        inputs, size=(96, 160), mode='bilinear')
    for batch in (inputs, torch.cat([resized, resized.flip(3)])):
        checks = [
            check_with_onnxruntime(str(out), RawOutputs(detector), batch)
        ]
        if engine == 'openvino':
            checks.append(
                check_with_openvino(
                    str(out.with_suffix('.xml')), RawOutputs(detector), batch))
        for check in checks:
            assert check.relative_error <= 1e-4, check.summary()
            names = [name for name, _ in check.outputs]
            assert names == [f'cls_score_{i}' for i in range(5)
                             ] + [f'bbox_pred_{i}' for i in range(5)]
            # 6 classes x 9 anchors at stride 8, then 4 x 9 box deltas.
            assert tuple(check.outputs[0][1]) == (len(batch),
                                                  len(SHAPES_CLASSES) * 9,
                                                  batch.shape[2] // 8,
                                                  batch.shape[3] // 8)
            assert check.outputs[5][1][1] == 36

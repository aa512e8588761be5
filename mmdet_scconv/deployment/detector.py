"""Export a config's detector from a checkpoint: what
``tools/deployment/pytorch2onnx.py`` does."""
import torch

from .onnx_export import (check_dynamic_batch, check_with_onnxruntime,
                          export_onnx, graph_of, require_export_dependencies)
from .openvino import (check_ir_path, check_with_openvino, convert_to_openvino,
                       require_openvino)
from .wrappers import Detections, RawOutputs


def load_detector(config: str, checkpoint: str, cfg_options=None):
    """The config's detector with the checkpoint's weights, on the CPU, in
    eval mode (mmdet's ``init_detector``)."""
    from mmdet.apis import init_detector

    from ..apis import load_config
    cfg = load_config(config, cfg_options)
    return init_detector(cfg, checkpoint, device='cpu')


def export_detector(config: str,
                    checkpoint: str,
                    out: str,
                    shape=(800, 1216),
                    raw: bool = False,
                    dynamic_batch: bool = False,
                    cfg_options=None,
                    openvino_ir: str = None):
    """Export the detector of ``config`` with ``checkpoint``'s weights to
    ``out`` and check it in ONNX Runtime against PyTorch on a random
    ``shape`` image; with ``openvino_ir``, export SCConv in OpenVINO's form,
    convert the model to OpenVINO's IR there and check it in OpenVINO too.

    Args:
        config (str): Config file.
        checkpoint (str): Checkpoint file.
        out (str): Output ``.onnx`` file.
        shape (tuple[int, int]): Example input height and width.
        raw (bool): Raw head outputs instead of detections.
        dynamic_batch (bool): Dynamic batch too (raw outputs only).
        cfg_options (dict, optional): ``--cfg-options`` overrides.
        openvino_ir (str, optional): The IR's ``.xml``. Default: None (no
            IR; SCConv in ONNX Runtime's form).

    Returns:
        list[RuntimeCheck]: The comparisons that ran, ONNX Runtime first.
    """
    require_export_dependencies()
    if openvino_ir is not None:
        require_openvino()
        check_ir_path(openvino_ir)
    height, width = shape
    if height <= 0 or width <= 0:
        raise ValueError(f'--shape must be two positive sizes, got {shape}.')
    # Before loading anything.
    check_dynamic_batch(not raw, dynamic_batch)
    detector = load_detector(config, checkpoint, cfg_options)
    engine = 'onnxruntime' if openvino_ir is None else 'openvino'
    graph = graph_of(detector, raw, engine=engine)
    image = torch.randn(
        1, 3, height, width, generator=torch.Generator().manual_seed(0))
    export_onnx(graph, image, out, dynamic_batch)
    reference = (RawOutputs(detector) if raw else Detections(detector)).eval()
    checks = [check_with_onnxruntime(out, reference, image)]
    if openvino_ir is not None:
        convert_to_openvino(out, openvino_ir)
        checks.append(check_with_openvino(openvino_ir, reference, image))
    return checks

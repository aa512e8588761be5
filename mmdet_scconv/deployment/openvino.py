"""OpenVINO: an exported ONNX model converted to OpenVINO's IR (``.xml``
and ``.bin``) by OpenVINO's own converter, run and checked on the CPU.

Models are compiled with an explicit fp32 inference precision: OpenVINO's
CPU plugin otherwise picks bf16 on CPUs that have it (AVX512-BF16, AMX),
which changes every result in its third digit.
"""
import os
import os.path as osp

import torch

from .onnx_export import ExportDependencyError, RuntimeCheck, compare_outputs

#: The inference precision every model is compiled with.
INFERENCE_PRECISION = 'f32'


def require_openvino():
    """Import openvino, or say how to install it.

    Raises:
        ExportDependencyError: naming the fix.
    """
    try:
        import openvino
    except ImportError as error:
        raise ExportDependencyError(
            'OpenVINO output (--openvino, --runtime openvino) needs the '
            'openvino package, which is not installed: pip install '
            '"mmdet-scconv[export]" (or run tools/install.sh, which installs '
            'that extra).') from error
    return openvino


def openvino_version() -> str:
    """OpenVINO's version, e.g. ``'2026.4.1'`` (the build suffix cut)."""
    return require_openvino().__version__.split('-')[0]


def ir_path_beside(onnx_path: str) -> str:
    """The IR's ``.xml`` next to an ``.onnx`` file, of the same name."""
    return osp.splitext(onnx_path)[0] + '.xml'


def check_ir_path(path: str) -> None:
    """Refuse an IR path that cannot be written, before anything is
    exported.

    Raises:
        ValueError: naming the problem and the fix.
    """
    folder = osp.dirname(osp.abspath(path))
    if osp.isdir(path):
        raise ValueError(f'The OpenVINO IR path {path!r} is a folder: pass '
                         f'a file name, e.g. {osp.join(path, "model.xml")}.')
    if not path.endswith('.xml'):
        raise ValueError(
            f'The OpenVINO IR path {path!r} must end in .xml (its weights '
            f'go beside it, in .bin): pass e.g. --openvino model.xml.')
    if not osp.isdir(folder):
        raise ValueError(
            f'Cannot write the OpenVINO IR {path!r}: the folder {folder!r} '
            f'does not exist. Create it first (mkdir -p {folder}).')
    for target in (path, path[:-len('.xml')] + '.bin'):
        if not os.access(target if osp.exists(target) else folder, os.W_OK):
            raise ValueError(
                f'Cannot write the OpenVINO IR file {target!r}: permission '
                f'denied. Choose a writable place with --openvino PATH.xml.')


def convert_to_openvino(onnx_path: str, xml_path: str) -> None:
    """Convert an ONNX model to OpenVINO's IR with OpenVINO's converter,
    weights kept in fp32 (not compressed to fp16).

    Args:
        onnx_path (str): The ``.onnx`` file.
        xml_path (str): The IR's ``.xml``; the ``.bin`` goes beside it.
    """
    ov = require_openvino()
    check_ir_path(xml_path)
    ov.save_model(
        ov.convert_model(onnx_path), xml_path, compress_to_fp16=False)


def openvino_model(path: str, threads: int = 0, profile: bool = False):
    """An OpenVINO CPU compiled model of an IR or ONNX file, in fp32.

    Args:
        path (str): The ``.xml`` (or ``.onnx``) file.
        threads (int): Inference threads; 0 lets OpenVINO choose.
            Default: 0.
        profile (bool): Keep per-node performance counters. Default: False.
    """
    ov = require_openvino()
    config = {
        'INFERENCE_PRECISION_HINT': INFERENCE_PRECISION,
        'PERF_COUNT': profile
    }
    if threads:
        config['INFERENCE_NUM_THREADS'] = threads
    return ov.Core().compile_model(path, 'CPU', config)


def run_openvino(request, image: torch.Tensor) -> dict:
    """Outputs (name to array, in the graph's order) of one inference.

    Args:
        request: An infer request of :func:`openvino_model`'s model.
        image (Tensor): The ``image`` input.

    Raises:
        ValueError: where OpenVINO rejects the input's shape, naming it and
            the fix.
    """
    ov = require_openvino()
    model = request.get_compiled_model()
    takes = model.input('image').get_partial_shape()
    shape = tuple(image.shape)
    fix = ('Give it (N, 3, H, W) images as the model was exported (any '
           'batch size only if exported with --dynamic), or export it again '
           'for this shape.')
    if not takes.compatible(ov.PartialShape(list(shape))):
        raise ValueError(f'OpenVINO rejects a {shape} input: the model takes '
                         f'{takes} (? is any size). {fix}')
    try:
        request.infer({'image': image.numpy()})
    except RuntimeError as error:
        lines = [line for line in str(error).splitlines() if line.strip()]
        raise ValueError(f'OpenVINO cannot run the model on a {shape} '
                         f'input: {lines[-1]} {fix}') from error
    return {
        output.get_any_name(): request.get_output_tensor(i).data.copy()
        for i, output in enumerate(model.outputs)
    }


def check_with_openvino(path: str, reference: torch.nn.Module,
                        image: torch.Tensor) -> RuntimeCheck:
    """Run ``path`` (IR or ONNX) in OpenVINO and ``reference`` in PyTorch
    on ``image`` and compare every output.

    Args:
        path (str): The IR's ``.xml`` (or an ``.onnx``).
        reference (nn.Module): What it was exported from.
        image (Tensor): The input.

    Raises:
        AssertionError: if the outputs differ in number or shape.
    """
    request = openvino_model(path).create_infer_request()
    return compare_outputs('OpenVINO', path, run_openvino(request, image),
                           reference, image)

"""Export a detector to ONNX and check it in ONNX Runtime.

The exported graph is the deploy form (BatchNorms folded into the SCConv
layers before them) with every SCConv in the export form for the engine it
is meant for (:func:`..layers.scconv.to_export_form`), traced by
``torch.onnx.export(dynamo=True)``: standard ONNX ops only (NMS included),
height and width dynamic.
"""
import copy
from dataclasses import dataclass

import torch

from ..layers._numerics import relative_error
from ..layers.scconv import to_export_form
from .nms import ONNX_TRANSLATIONS
from .wrappers import Detections, RawOutputs

#: ONNX opset of the exported graphs.
OPSET = 18


class ExportDependencyError(ImportError):
    """onnx, onnxscript or onnxruntime is missing."""


def require_export_dependencies():
    """Import onnx, onnxscript and onnxruntime, or say how to install them.

    Raises:
        ExportDependencyError: naming the missing package and the fix.
    """
    for package in ('onnx', 'onnxscript', 'onnxruntime'):
        try:
            __import__(package)
        except ImportError as error:
            raise ExportDependencyError(
                f'ONNX export needs the {package} package, which is not '
                f'installed: pip install "mmdet-scconv[export]" (or run '
                f'tools/install.sh, which installs that extra).') from error


def check_dynamic_batch(detections: bool, dynamic_batch: bool) -> None:
    """Refuse a dynamic batch for the detections graph, which takes one
    image per call.

    Raises:
        ValueError: naming the fix (``--raw``).
    """
    if detections and dynamic_batch:
        raise ValueError(
            'The detections graph takes one image per call; a dynamic batch '
            '(--dynamic) needs the raw outputs (--raw).')


def deploy_form(detector: torch.nn.Module,
                engine: str = 'onnxruntime') -> torch.nn.Module:
    """A copy of ``detector`` in eval mode with its backbone's BatchNorms
    folded (``switch_to_deploy``, where the backbone has it) and every
    SCConv in its export form for ``engine`` (``'onnxruntime'`` or
    ``'openvino'``); ``detector`` is left as it was."""
    model = copy.deepcopy(detector).eval()
    backbone = getattr(model, 'backbone', None)
    if hasattr(backbone, 'switch_to_deploy'):
        backbone.switch_to_deploy()
    return to_export_form(model, engine)


def graph_of(detector: torch.nn.Module,
             raw: bool = False,
             test_cfg=None,
             engine: str = 'onnxruntime'):
    """The module that is exported: :class:`RawOutputs` or
    :class:`Detections` of the deploy form of ``detector`` for ``engine``
    (:func:`deploy_form`)."""
    model = deploy_form(detector, engine)
    graph = RawOutputs(model) if raw else Detections(model, test_cfg)
    return graph.eval()


def export_onnx(graph: torch.nn.Module,
                example: torch.Tensor,
                path: str,
                dynamic_batch: bool = False) -> None:
    """Trace ``graph`` on ``example`` and write the ONNX model to ``path``,
    checked by ``onnx.checker`` (full check, shapes included).

    Args:
        graph (nn.Module): :class:`RawOutputs`, :class:`Detections` or any
            module of one image tensor.
        example (Tensor): ``(N, 3, H, W)`` preprocessed image batch.
        path (str): Output ``.onnx`` file.
        dynamic_batch (bool): Leave the batch size open too (raw outputs
            only; detections take one image); a one-image example is traced
            as two. Default: False.
    """
    require_export_dependencies()
    import onnx
    check_dynamic_batch(isinstance(graph, Detections), dynamic_batch)
    dims = {2: torch.export.Dim.DYNAMIC, 3: torch.export.Dim.DYNAMIC}
    if dynamic_batch:
        dims[0] = torch.export.Dim.DYNAMIC
        # A traced size of 1 may be specialised (matmul folds the batch
        # into rows, a reshape that would then hold for one image only).
        example = example.repeat(2 if len(example) == 1 else 1, 1, 1, 1)
    with torch.no_grad():
        program = torch.onnx.export(
            graph, (example, ),
            dynamo=True,
            input_names=['image'],
            output_names=getattr(graph, 'output_names', lambda: None)(),
            dynamic_shapes=(dims, ),
            custom_translation_table=ONNX_TRANSLATIONS,
            opset_version=OPSET,
            verbose=False)
    program.save(path)
    onnx.checker.check_model(onnx.load(path), full_check=True)


@dataclass
class RuntimeCheck:
    """An engine against PyTorch on one input."""
    #: ``'ONNX Runtime'`` or ``'OpenVINO'``.
    engine: str
    shape: tuple
    #: ``||engine - torch|| / ||torch||`` of the output where it is largest.
    relative_error: float
    #: Per output: its name and shape in the engine.
    outputs: list

    def summary(self) -> str:
        shapes = ', '.join(f'{name} {tuple(shape)}'
                           for name, shape in self.outputs)
        return (f'{self.engine} vs PyTorch on a {tuple(self.shape)} input: '
                f'relative error {self.relative_error:.2e} (worst output) '
                f'({shapes})')


def onnxruntime_session(path: str, threads: int = 0, profile_prefix=None):
    """An ONNX Runtime CPU session of an ONNX file.

    Args:
        path (str): The ``.onnx`` file.
        threads (int): Intra-op threads; 0 lets ONNX Runtime choose.
            Default: 0.
        profile_prefix (str, optional): Profile every run into a JSON file
            of this prefix (``session.end_profiling()`` names it). Default:
            None (no profile).
    """
    require_export_dependencies()
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return ort.InferenceSession(
        path, options, providers=['CPUExecutionProvider'])


def check_with_onnxruntime(path: str, reference: torch.nn.Module,
                           image: torch.Tensor) -> RuntimeCheck:
    """Run ``path`` in ONNX Runtime and ``reference`` in PyTorch on
    ``image`` and compare every output.

    Args:
        path (str): The exported model.
        reference (nn.Module): What it was exported from, e.g. a
            :class:`RawOutputs` of the original detector.
        image (Tensor): The input.

    Raises:
        AssertionError: if the outputs differ in number or shape.
    """
    session = onnxruntime_session(path)
    outputs = session.run(None, {'image': image.numpy()})
    names = [output.name for output in session.get_outputs()]
    return compare_outputs('ONNX Runtime', path, dict(zip(names, outputs)),
                           reference, image)


def compare_outputs(engine: str, path: str, outputs: dict,
                    reference: torch.nn.Module,
                    image: torch.Tensor) -> RuntimeCheck:
    """Compare an engine's ``outputs`` (name to array, in the graph's
    order) with ``reference(image)`` in PyTorch.

    Raises:
        AssertionError: if the outputs differ in number or shape.
    """
    with torch.no_grad():
        expected = reference(image)
    if isinstance(expected, torch.Tensor):  # a module of one output
        expected = (expected, )
    if len(expected) != len(outputs):
        raise AssertionError(
            f'{path} gives {len(outputs)} outputs in {engine}, PyTorch '
            f'{len(expected)}.')
    worst = 0.0
    for ours, theirs in zip(outputs.values(), expected):
        if tuple(ours.shape) != tuple(theirs.shape):
            raise AssertionError(
                f'{path}: an output of shape {tuple(ours.shape)} in {engine} '
                f'where PyTorch gives {tuple(theirs.shape)}.')
        worst = max(worst, relative_error(torch.from_numpy(ours), theirs))
    return RuntimeCheck(engine, tuple(image.shape), worst,
                        [(name, out.shape) for name, out in outputs.items()])

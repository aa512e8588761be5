"""Deployment: ONNX export of detectors with SCConv backbones, checked in
ONNX Runtime, and their OpenVINO IR, checked in OpenVINO. Needs the
``export`` extra (onnx, onnxscript, onnxruntime, openvino) only when
exporting."""
from .detector import export_detector, load_detector
from .onnx_export import (ExportDependencyError, RuntimeCheck,
                          check_with_onnxruntime, deploy_form, export_onnx,
                          graph_of, onnxruntime_session)
from .openvino import check_with_openvino, convert_to_openvino, openvino_model
from .wrappers import Detections, RawOutputs

__all__ = [
    'export_detector', 'load_detector', 'ExportDependencyError',
    'RuntimeCheck', 'check_with_onnxruntime', 'deploy_form', 'export_onnx',
    'graph_of', 'onnxruntime_session', 'check_with_openvino',
    'convert_to_openvino', 'openvino_model', 'Detections', 'RawOutputs'
]

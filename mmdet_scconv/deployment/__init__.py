"""Deployment: ONNX export of detectors with SCConv backbones, checked in
ONNX Runtime. Needs the ``export`` extra (onnx, onnxscript, onnxruntime)
only when exporting."""
from .detector import export_detector, load_detector
from .onnx_export import (ExportDependencyError, RuntimeCheck,
                          check_with_onnxruntime, deploy_form, export_onnx,
                          graph_of, onnxruntime_session)
from .wrappers import Detections, RawOutputs

__all__ = [
    'export_detector', 'load_detector', 'ExportDependencyError',
    'RuntimeCheck', 'check_with_onnxruntime', 'deploy_form', 'export_onnx',
    'graph_of', 'onnxruntime_session', 'Detections', 'RawOutputs'
]

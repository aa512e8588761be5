"""Side-by-side speed and memory of SCConv-ResNet against ResNet.

``scope='trunk'`` needs torch only (mmdet is imported only for
``scope='detector'``)."""
from .runner import BenchmarkConfig, run_benchmark
from .timing import Result, format_table
from .trunk import ResNetTrunk

__all__ = [
    'BenchmarkConfig', 'run_benchmark', 'Result', 'format_table', 'ResNetTrunk'
]

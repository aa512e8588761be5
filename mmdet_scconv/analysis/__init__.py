from .complexity import (BackboneComplexity, backbone_complexity,
                         compare_backbones, format_comparison)
from .report import plot_curves, runs_table, write_report
from .runs import Run, WorkDirError, load_run

__all__ = [
    'BackboneComplexity', 'backbone_complexity', 'compare_backbones',
    'format_comparison', 'Run', 'WorkDirError', 'load_run', 'plot_curves',
    'runs_table', 'write_report'
]

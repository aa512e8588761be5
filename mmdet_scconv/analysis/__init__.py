from .complexity import (BackboneComplexity, backbone_complexity,
                         compare_backbones, format_comparison)
from .groups import (GroupError, RunGroup, bootstrap_interval, difference,
                     group_runs)
from .report import (differences_table, groups_table, plot_curves,
                     plot_metrics, runs_table, write_report)
from .runs import Run, WorkDirError, load_run

__all__ = [
    'BackboneComplexity', 'backbone_complexity', 'compare_backbones',
    'format_comparison', 'GroupError', 'Run', 'RunGroup', 'WorkDirError',
    'bootstrap_interval', 'difference', 'differences_table', 'group_runs',
    'groups_table', 'load_run', 'plot_curves', 'plot_metrics', 'runs_table',
    'write_report'
]

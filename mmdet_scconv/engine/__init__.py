"""MMEngine-side helpers: safe checkpoints, CPU mixed precision, stopping
diverged runs."""
from .checkpoint import (CheckpointLoadError, load_local_checkpoint,
                         register_safe_checkpoints, trust_checkpoint)
from .divergence import DivergenceHook, TrainingDivergedError
from .optim_wrapper import AutocastOptimWrapper

__all__ = [
    'AutocastOptimWrapper', 'CheckpointLoadError', 'DivergenceHook',
    'TrainingDivergedError', 'load_local_checkpoint',
    'register_safe_checkpoints', 'trust_checkpoint'
]

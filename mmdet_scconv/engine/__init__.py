"""MMEngine-side helpers: safe checkpoints, CPU mixed precision."""
from .checkpoint import (CheckpointLoadError, load_local_checkpoint,
                         register_safe_checkpoints, trust_checkpoint)
from .optim_wrapper import AutocastOptimWrapper

__all__ = [
    'AutocastOptimWrapper', 'CheckpointLoadError', 'load_local_checkpoint',
    'register_safe_checkpoints', 'trust_checkpoint'
]

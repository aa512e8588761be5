"""MMEngine-side helpers: safe checkpoints."""
from .checkpoint import (CheckpointLoadError, load_local_checkpoint,
                         register_safe_checkpoints, trust_checkpoint)

__all__ = [
    'CheckpointLoadError', 'load_local_checkpoint',
    'register_safe_checkpoints', 'trust_checkpoint'
]

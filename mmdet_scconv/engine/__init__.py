"""MMEngine-side helpers: safe, atomic and remote checkpoints, CPU mixed
precision, stopping diverged runs, skipping unreadable training images."""
from .atomic_checkpoints import (newest_complete_checkpoint,
                                 register_atomic_checkpoints)
from .bad_images import BadImageHook, TooManyBadImagesError
from .checkpoint import (CheckpointLoadError, load_local_checkpoint,
                         register_safe_checkpoints, trust_checkpoint)
from .divergence import DivergenceHook, TrainingDivergedError
from .optim_wrapper import AutocastOptimWrapper
from .remote_checkpoint import register_remote_checkpoints
from .step_times import StepTimesHook

__all__ = [
    'AutocastOptimWrapper', 'BadImageHook', 'CheckpointLoadError',
    'DivergenceHook', 'StepTimesHook', 'TooManyBadImagesError',
    'TrainingDivergedError', 'load_local_checkpoint',
    'newest_complete_checkpoint', 'register_atomic_checkpoints',
    'register_remote_checkpoints', 'register_safe_checkpoints',
    'trust_checkpoint'
]

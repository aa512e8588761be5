"""mmdet-scconv: SCConv (CVPR 2023) for MMDetection.

``mmdet_scconv.layers`` is pure PyTorch. Importing the package itself also
registers ``SCConvResNet``, the ``SCConv`` conv layer, the hooks and
transforms with MMDetection, makes checkpoints load with torch's
``weights_only=True``, downloaded ones included
(:mod:`mmdet_scconv.engine.checkpoint`), and be written
atomically (:mod:`mmdet_scconv.engine.atomic_checkpoints`) whenever mmdet is
installed; a broken mmdet install makes this import fail instead of
skipping the registration.
"""
import importlib.util

from .version import __version__, check_torch_version

check_torch_version()

MMDET_AVAILABLE = importlib.util.find_spec('mmdet') is not None

if MMDET_AVAILABLE:
    from . import models  # noqa: F401  (registers the modules)
    from .datasets import skipped_images  # noqa: F401  (LoadImageOrSkip)
    from .engine import (register_atomic_checkpoints,
                         register_remote_checkpoints,
                         register_safe_checkpoints)

    register_safe_checkpoints()
    register_remote_checkpoints()
    register_atomic_checkpoints()

__all__ = ['__version__', 'MMDET_AVAILABLE']

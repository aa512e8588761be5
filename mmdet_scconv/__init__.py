"""mmdet-scconv: SCConv (CVPR 2023) for MMDetection.

``mmdet_scconv.layers`` is pure PyTorch. Importing the package itself also
registers ``SCConvResNet`` and the ``SCConv`` conv layer with MMDetection
and makes checkpoints load with torch's ``weights_only=True`` (see
:mod:`mmdet_scconv.engine.checkpoint`) whenever mmdet is installed; a broken
mmdet install makes this import fail instead of skipping the registration.
"""
import importlib.util

from .version import __version__

MMDET_AVAILABLE = importlib.util.find_spec('mmdet') is not None

if MMDET_AVAILABLE:
    from . import models  # noqa: F401  (registers the modules)
    from .datasets import skipped_images  # noqa: F401  (LoadImageOrSkip)
    from .engine import register_safe_checkpoints

    register_safe_checkpoints()

__all__ = ['__version__', 'MMDET_AVAILABLE']

"""Make ``SCConv`` a conv layer type for ``mmcv.cnn.build_conv_layer``."""
from mmengine.registry import MODELS as ROOT_MODELS

from ..layers import SCConv


def register_scconv_conv_layer() -> None:
    """Register ``SCConv`` beside mmcv's ``Conv2d``, ``DCN`` and friends.

    mmcv registers its conv layers in MMEngine's root ``MODELS`` registry,
    which every downstream registry (mmdet's included) searches as a parent,
    so ``conv_cfg=dict(type='SCConv', ...)`` resolves in any scope.
    """
    if ROOT_MODELS.get('SCConv') is not SCConv:
        ROOT_MODELS.register_module('SCConv', module=SCConv)

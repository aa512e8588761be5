from .pretrained import (MatchSummary, convert_resnet_checkpoint,
                         load_pretrained)
from .scconv_resnet import SCConvBottleneck, SCConvResNet

__all__ = [
    'SCConvBottleneck', 'SCConvResNet', 'MatchSummary',
    'convert_resnet_checkpoint', 'load_pretrained'
]

"""The MMDetection side: registers SCConvResNet and the SCConv conv layer."""
from .backbones import SCConvResNet
from .conv_layer import register_scconv_conv_layer

register_scconv_conv_layer()

__all__ = ['SCConvResNet', 'register_scconv_conv_layer']

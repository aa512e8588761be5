from .scconv_resnet import SCConvBottleneck, SCConvResNet

__all__ = ['SCConvBottleneck', 'SCConvResNet']

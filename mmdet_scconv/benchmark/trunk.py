"""A pure-PyTorch ResNet trunk (stem + 4 bottleneck stages, no fc) whose
bottleneck 3x3 convs are plain or SCConv; the same layout as mmdet's ResNet
(``style='pytorch'``) so it benchmarks without mmcv, mmengine or mmdet."""
import torch.nn as nn

from ..layers import SCConv, run_backbone
from ..layers.cru import strided_size

STAGE_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


class ConvNorm(nn.Module):
    """A 3x3 convolution (or SCConv) and its BatchNorm: what SCConv replaces
    in a bottleneck; optionally the activation after them.

    Args:
        channels (int): Input and output channels.
        stride (int): Stride.
        scconv_cfg (dict, optional): SCConv options; None for the plain
            3x3 convolution. Default: None.
        activation (nn.Module, optional): Applied last. Default: None.
    """

    def __init__(self, channels, stride, scconv_cfg=None, activation=None):
        super().__init__()
        if scconv_cfg is None:
            self.conv = nn.Conv2d(channels, channels, 3, stride, 1, bias=False)
        else:
            self.conv = SCConv(channels, channels, 3, stride, **scconv_cfg)
        self.bn = nn.BatchNorm2d(channels)
        self.activation = activation

    def switch_to_deploy(self):
        """Fold the BatchNorm into an SCConv (inference only)."""
        if isinstance(self.conv, SCConv):
            self.conv.fuse_norm(self.bn)
            self.bn = nn.Identity()
        return self

    def forward(self, x):
        y = self.bn(self.conv(x))
        return y if self.activation is None else self.activation(y)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (or SCConv) -> 1x1 with BN and a projection shortcut."""
    expansion = 4

    def __init__(self, inplanes, planes, stride, scconv_cfg=None):
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = ConvNorm(planes, stride, scconv_cfg, self.relu)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.downsample = None
        if stride != 1 or inplanes != out:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, out, 1, stride, bias=False),
                nn.BatchNorm2d(out))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.conv2(y)
        return self.relu(self.bn3(self.conv3(y)) + identity)


def layer_label(stage, channels, h, w, stride, count) -> str:
    """A :func:`scconv_layer_shapes` entry as text, e.g.
    ``'stage2 128x100x152 s2 (x1)'``."""
    return (f'stage{stage} {channels}x{h}x{w}'
            f'{" s2" if stride == 2 else ""} (x{count})')


def scconv_layer_shapes(depth, height, width):
    """Each distinct input of the trunk's SCConvs for a ``height x width``
    image: ``(stage, channels, h, w, stride, count)``, ``count`` being how
    many of the trunk's SCConvs see it."""
    h, w = height, width
    for _ in range(2):  # the stem's strided 7x7 convolution and max pool
        h, w = strided_size(h, 2), strided_size(w, 2)
    shapes = []
    for i, blocks in enumerate(STAGE_BLOCKS[depth]):
        channels = 64 * 2**i
        if i > 0:
            shapes.append((i + 1, channels, h, w, 2, 1))
            h, w = strided_size(h, 2), strided_size(w, 2)
            blocks -= 1
        shapes.append((i + 1, channels, h, w, 1, blocks))
    return shapes


class ResNetTrunk(nn.Module):
    """ResNet-{50,101,152} without fc, returning the four stage outputs.

    Args:
        depth (int): 50, 101 or 152.
        scconv_cfg (dict, optional): SCConv options; None for plain 3x3
            convs (the ResNet baseline). Default: None.
    """

    def __init__(self, depth=50, scconv_cfg=None):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64),
            nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        stages, inplanes = [], 64
        for i, blocks in enumerate(STAGE_BLOCKS[depth]):
            planes = 64 * 2**i
            layers = []
            for j in range(blocks):
                stride = 2 if (i > 0 and j == 0) else 1
                layers.append(Bottleneck(inplanes, planes, stride, scconv_cfg))
                inplanes = planes * Bottleneck.expansion
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)

    def switch_to_deploy(self):
        """Inference form: every SCConv absorbs the BatchNorm after it."""
        for module in self.modules():
            if isinstance(module, ConvNorm):
                module.switch_to_deploy()
        return self

    def forward(self, x):
        """The four stage outputs; with SCConv layers compiled whole on the
        CPU, as ``SCConvResNet`` is (:func:`..layers.run_backbone`)."""
        return run_backbone(ResNetTrunk._stages, self, x)

    def _stages(self, x):
        x = self.stem(x)
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return tuple(outs)

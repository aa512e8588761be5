"""Parameters and FLOPs of backbones, counted by MMEngine's FlopAnalyzer."""
from dataclasses import dataclass
from typing import Sequence

import torch
from mmdet.registry import MODELS
from mmengine.analysis import FlopAnalyzer, parameter_count

from ..layers import set_scconv_impl


@dataclass
class BackboneComplexity:
    """One backbone's size and cost.

    Args:
        name (str): A label, e.g. ``'SCConvResNet-50'``.
        params (int): Parameters.
        flops (int): Multiply-accumulates of one forward pass (the FLOPs
            convention of the paper and of mmdet's ``get_flops.py``).
    """
    name: str
    params: int
    flops: int


def backbone_complexity(backbone_cfg: dict,
                        input_size=(224, 224),
                        name=None) -> BackboneComplexity:
    """Count a backbone's parameters and FLOPs for one image.

    Args:
        backbone_cfg (dict): A backbone config for mmdet's ``MODELS``.
        input_size (tuple[int, int]): Image height and width.
            Default: (224, 224).
        name (str, optional): Label; defaults to ``type-depth``.
    """
    model = MODELS.build(backbone_cfg)
    model.eval()  # mmdet's ResNet.train() returns None: do not chain
    # Count the equations as written: the tracer cannot see inside the fast
    # path's autograd Functions.
    set_scconv_impl(model, 'reference')
    image = torch.zeros(1, 3, *input_size)
    analyzer = FlopAnalyzer(model, image)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    label = name or f"{backbone_cfg['type']}-{backbone_cfg.get('depth', '')}"
    return BackboneComplexity(label,
                              parameter_count(model)[''], analyzer.total())


def compare_backbones(depths: Sequence[int] = (50, 101),
                      input_size=(224, 224),
                      scconv_cfg=None) -> list:
    """SCConvResNet against mmdet's ResNet at each depth.

    Returns:
        list[tuple[BackboneComplexity, BackboneComplexity]]: One
        ``(resnet, scconv_resnet)`` pair per depth.
    """
    pairs = []
    for depth in depths:
        resnet = backbone_complexity(
            dict(type='ResNet', depth=depth), input_size)
        scconv = backbone_complexity(
            dict(type='SCConvResNet', depth=depth, scconv_cfg=scconv_cfg),
            input_size)
        pairs.append((resnet, scconv))
    return pairs


def format_comparison(pairs, input_size) -> str:
    """A markdown table of :func:`compare_backbones`' result."""
    rows = [
        f'Backbone complexity at 1x3x{input_size[0]}x{input_size[1]} '
        '(no fc; FLOPs = multiply-accumulates)',
        '| backbone | params (M) | FLOPs (G) | params ratio | FLOPs ratio |',
        '|---|---:|---:|---:|---:|',
    ]
    for resnet, scconv in pairs:
        rows.append(f'| {resnet.name} | {resnet.params / 1e6:.2f} | '
                    f'{resnet.flops / 1e9:.2f} | 1.000 | 1.000 |')
        rows.append(f'| {scconv.name} | {scconv.params / 1e6:.2f} | '
                    f'{scconv.flops / 1e9:.2f} | '
                    f'{scconv.params / resnet.params:.3f} | '
                    f'{scconv.flops / resnet.flops:.3f} |')
    return '\n'.join(rows)

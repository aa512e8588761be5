from .complexity import (BackboneComplexity, backbone_complexity,
                         compare_backbones, format_comparison)

__all__ = [
    'BackboneComplexity', 'backbone_complexity', 'compare_backbones',
    'format_comparison'
]

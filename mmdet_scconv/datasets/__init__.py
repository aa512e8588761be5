from .shapes import CLASSES as SHAPES_CLASSES
from .shapes import ShapesSpec, make_shapes_dataset

__all__ = ['SHAPES_CLASSES', 'ShapesSpec', 'make_shapes_dataset']

"""A small deterministic detection set of shapes, for demos and tests.

Six shapes on textured, cluttered backgrounds, hard enough that detectors
trained for the demo's few hundred iterations stay well below a perfect
score (so that models can differ): colours come from one palette shared by
all classes (a shape takes its class's own colour only some of the time,
``ShapesSpec.own_colour``), fills are flat, striped or speckled, shapes may
overlap and occlude each other, and unannotated strokes and blotches lie on
a shaded, striped, noisy background. The set is written in both of
MMDetection's layouts:

* COCO: ``<root>/coco/annotations/instances_{train,val}.json`` with images
  in ``<root>/coco/{train,val}/``;
* PASCAL VOC: ``<root>/VOCdevkit/VOC2007/{JPEGImages,Annotations}`` with
  ``ImageSets/Main/{trainval,test}.txt``.
"""
import json
import os
import os.path as osp
from dataclasses import dataclass
from xml.etree import ElementTree as ET

import cv2
import numpy as np

CLASSES = ('square', 'circle', 'triangle', 'diamond', 'ring', 'cross')
#: Colours (RGB) shared by all classes.
_PALETTE = ((220, 60, 50), (60, 200, 70), (60, 90, 230), (230, 200, 60),
            (200, 80, 200), (70, 200, 210))


@dataclass(frozen=True)
class ShapesSpec:
    """What to generate.

    Args:
        num_train (int): Training images. Default: 160.
        num_val (int): Held-out images. Default: 40.
        image_size (int): Square image side in pixels. Default: 128.
        max_objects (int): At most this many shapes per image. Default: 3.
        min_size (int): Smallest shape side in pixels. Default: 24.
        max_size (int): Largest shape side in pixels. Default: 56.
        max_overlap (float): Largest IoU of two shapes' boxes; the later one
            is drawn over the earlier. Default: 0.2.
        clutter (int): Unannotated strokes and blotches per image.
            Default: 2.
        own_colour (float): How often a shape takes its class's own colour
            (else any of the palette, which all classes share).
            Default: 0.75.
        seed (int): Random seed; the same spec always gives the same data.
            Default: 0.
    """
    num_train: int = 160
    num_val: int = 40
    image_size: int = 128
    max_objects: int = 3
    min_size: int = 24
    max_size: int = 56
    max_overlap: float = 0.2
    clutter: int = 2
    own_colour: float = 0.75
    seed: int = 0


def _colour(rng, label=None, own_colour=0.0):
    """A palette colour, jittered: class ``label``'s own one with
    probability ``own_colour``, else any."""
    index = (
        label if label is not None and rng.random() < own_colour else int(
            rng.integers(len(_PALETTE))))
    base = np.array(_PALETTE[index])
    colour = np.clip(base + rng.integers(-30, 31, 3), 0, 255)
    return tuple(int(c) for c in colour[::-1])  # BGR for cv2


def _outline(label, box):
    """The shape of class ``label`` in ``box``, as polygon points (or an
    ellipse for the round ones)."""
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
    name = CLASSES[label]
    if name == 'square':
        return [(x1, y1), (x2 - 1, y1), (x2 - 1, y2 - 1), (x1, y2 - 1)]
    if name == 'triangle':
        return [(cx, y1), (x1, y2 - 1), (x2 - 1, y2 - 1)]
    if name == 'diamond':
        return [(cx, y1), (x2 - 1, cy), (cx, y2 - 1), (x1, cy)]
    if name == 'cross':
        w, h = max((x2 - x1) // 6, 1), max((y2 - y1) // 6, 1)
        return [(cx - w, y1), (cx + w, y1), (cx + w, cy - h), (x2 - 1, cy - h),
                (x2 - 1, cy + h), (cx + w, cy + h), (cx + w, y2 - 1),
                (cx - w, y2 - 1), (cx - w, cy + h), (x1, cy + h), (x1, cy - h),
                (cx - w, cy - h)]
    return None  # circle, ring


def _shape_mask(label, box, size):
    mask = np.zeros((size, size), np.uint8)
    x1, y1, x2, y2 = box
    points = _outline(label, box)
    if points is not None:
        cv2.fillPoly(mask, [np.array(points, np.int32)], 1)
        return mask
    centre = ((x1 + x2) // 2, (y1 + y2) // 2)
    axes = ((x2 - x1) // 2, (y2 - y1) // 2)
    cv2.ellipse(mask, centre, axes, 0, 0, 360, 1, -1)
    if CLASSES[label] == 'ring':
        inner = (max(axes[0] * 11 // 20, 1), max(axes[1] * 11 // 20, 1))
        cv2.ellipse(mask, centre, inner, 0, 0, 360, 0, -1)
    return mask


def _fill(rng, size, label, own_colour):
    """A ``size x size x 3`` fill: flat, striped or speckled."""
    colour = np.array(_colour(rng, label, own_colour), np.float32)
    kind = int(rng.choice(3, p=(0.7, 0.15, 0.15)))
    fill = np.broadcast_to(colour, (size, size, 3)).copy()
    if kind == 1:
        period = int(rng.integers(3, 7))
        stripes = (np.add.outer(np.arange(size), np.arange(size)) //
                   period) % 2
        fill[stripes == 1] = np.array(_colour(rng), np.float32)
    elif kind == 2:
        fill += rng.normal(0, 25, (size, size, 1))
    return fill


def _background(rng, size):
    """Noise over a shaded gradient with faint stripes."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    angle = rng.uniform(0, np.pi)
    shade = 40 * (np.cos(angle) * x + np.sin(angle) * y)
    stripes = 6 * np.sin(2 * np.pi * rng.uniform(4, 12) *
                         (x * np.sin(angle) - y * np.cos(angle)))
    base = rng.uniform(80, 170, 3).astype(np.float32)
    image = base + (shade + stripes)[..., None]
    image += rng.normal(0, 10, (size, size, 3))
    return image


def _clutter(image, rng, count):
    """Unannotated strokes and blotches, in the shapes' colours."""
    size = image.shape[0]
    for _ in range(count):
        colour = _colour(rng)
        if rng.random() < 0.6:
            start = rng.integers(0, size, 2)
            points = start + rng.integers(-size // 4, size // 4 + 1,
                                          (int(rng.integers(2, 4)), 2))
            cv2.polylines(image, [points.astype(np.int32)], False, colour,
                          int(rng.integers(1, 4)))
        else:
            centre = tuple(int(v) for v in rng.integers(0, size, 2))
            axes = tuple(int(v) for v in rng.integers(2, 7, 2))
            cv2.ellipse(image, centre, axes, float(rng.uniform(0, 180)), 0,
                        360, colour, -1)


def _iou(a, b):
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
    return inter / (area - inter)


def make_image(rng, spec: ShapesSpec):
    """One BGR image and its ``[(label, (x1, y1, x2, y2)), ...]`` objects."""
    size = spec.image_size
    image = _background(rng, size)
    clutter = np.zeros((size, size, 3), np.uint8)
    _clutter(clutter, rng, spec.clutter // 2)
    drawn = clutter.any(axis=2)
    image[drawn] = clutter[drawn]
    objects = []
    for _ in range(int(rng.integers(1, spec.max_objects + 1))):
        for _attempt in range(20):
            w, h = rng.integers(spec.min_size, spec.max_size + 1, 2)
            x1, y1 = int(rng.integers(0, size - w)), int(
                rng.integers(0, size - h))
            box = (x1, y1, x1 + int(w), y1 + int(h))
            if all(_iou(box, b) <= spec.max_overlap for _, b in objects):
                label = int(rng.integers(len(CLASSES)))
                mask = _shape_mask(label, box, size).astype(bool)
                image[mask] = _fill(rng, size, label, spec.own_colour)[mask]
                objects.append((label, box))
                break
    clutter[:] = 0
    _clutter(clutter, rng, spec.clutter - spec.clutter // 2)
    drawn = clutter.any(axis=2)
    image[drawn] = clutter[drawn]
    return np.clip(image, 0, 255).astype(np.uint8), objects


def _write_coco(root, split, records, spec):
    image_dir = osp.join(root, 'coco', split)
    os.makedirs(image_dir, exist_ok=True)
    images, annotations = [], []
    for image_id, (name, image, objects) in enumerate(records, start=1):
        cv2.imwrite(osp.join(image_dir, f'{name}.jpg'), image)
        images.append(
            dict(
                id=image_id,
                file_name=f'{name}.jpg',
                width=spec.image_size,
                height=spec.image_size))
        for label, (x1, y1, x2, y2) in objects:
            w, h = x2 - x1, y2 - y1
            annotations.append(
                dict(
                    id=len(annotations) + 1,
                    image_id=image_id,
                    category_id=label + 1,
                    bbox=[x1, y1, w, h],
                    area=w * h,
                    iscrowd=0))
    categories = [dict(id=i + 1, name=n) for i, n in enumerate(CLASSES)]
    ann_dir = osp.join(root, 'coco', 'annotations')
    os.makedirs(ann_dir, exist_ok=True)
    with open(osp.join(ann_dir, f'instances_{split}.json'), 'w') as f:
        json.dump(
            dict(
                images=images, annotations=annotations, categories=categories),
            f)


def _voc_xml(name, objects, size):
    node = ET.Element('annotation')
    ET.SubElement(node, 'filename').text = f'{name}.jpg'
    size_node = ET.SubElement(node, 'size')
    for key, value in (('width', size), ('height', size), ('depth', 3)):
        ET.SubElement(size_node, key).text = str(value)
    for label, (x1, y1, x2, y2) in objects:
        obj = ET.SubElement(node, 'object')
        ET.SubElement(obj, 'name').text = CLASSES[label]
        ET.SubElement(obj, 'difficult').text = '0'
        box = ET.SubElement(obj, 'bndbox')
        # VOC boxes are 1-based and inclusive.
        for key, value in (('xmin', x1 + 1), ('ymin', y1 + 1), ('xmax', x2),
                           ('ymax', y2)):
            ET.SubElement(box, key).text = str(value)
    return ET.ElementTree(node)


def _write_voc(root, split, records, spec):
    voc = osp.join(root, 'VOCdevkit', 'VOC2007')
    for sub in ('JPEGImages', 'Annotations', 'ImageSets/Main'):
        os.makedirs(osp.join(voc, sub), exist_ok=True)
    for name, image, objects in records:
        cv2.imwrite(osp.join(voc, 'JPEGImages', f'{name}.jpg'), image)
        _voc_xml(name, objects, spec.image_size).write(
            osp.join(voc, 'Annotations', f'{name}.xml'))
    with open(osp.join(voc, 'ImageSets', 'Main', f'{split}.txt'), 'w') as f:
        f.write(''.join(f'{name}\n' for name, _, _ in records))


def make_shapes_dataset(root: str, spec: ShapesSpec = ShapesSpec()) -> str:
    """Write the shapes set under ``root`` unless it is already there.

    Args:
        root (str): Output directory.
        spec (ShapesSpec): What to generate.

    Returns:
        str: ``root``.
    """
    marker = osp.join(root, 'shapes_spec.json')
    if osp.isfile(marker):
        with open(marker) as f:
            if json.load(f) == spec.__dict__:
                return root
    rng = np.random.default_rng(spec.seed)
    splits = (('train', 'trainval', spec.num_train), ('val', 'test',
                                                      spec.num_val))
    for coco_split, voc_split, count in splits:
        records = [(f'{coco_split}_{i:05d}', *make_image(rng, spec))
                   for i in range(count)]
        _write_coco(root, coco_split, records, spec)
        _write_voc(root, voc_split, records, spec)
    with open(marker, 'w') as f:
        json.dump(spec.__dict__, f)
    return root

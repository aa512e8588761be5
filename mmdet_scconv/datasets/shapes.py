"""A small deterministic detection set of coloured shapes, for demos and tests.

Each class is one shape drawn in its own colour family on a noisy
background. The set is written in both of MMDetection's layouts:

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

CLASSES = ('square', 'circle', 'triangle')
_BASE_COLOURS = ((220, 60, 50), (60, 200, 70), (60, 90, 230))  # RGB


@dataclass(frozen=True)
class ShapesSpec:
    """What to generate.

    Args:
        num_train (int): Training images. Default: 160.
        num_val (int): Held-out images. Default: 40.
        image_size (int): Square image side in pixels. Default: 128.
        max_objects (int): At most this many shapes per image. Default: 3.
        min_size (int): Smallest shape side in pixels. Default: 28.
        max_size (int): Largest shape side in pixels. Default: 60.
        seed (int): Random seed; the same spec always gives the same data.
            Default: 0.
    """
    num_train: int = 160
    num_val: int = 40
    image_size: int = 128
    max_objects: int = 3
    min_size: int = 28
    max_size: int = 60
    seed: int = 0


def _draw(image, label, box, rng):
    x1, y1, x2, y2 = box
    colour = np.clip(
        np.array(_BASE_COLOURS[label]) + rng.integers(-25, 26, 3), 0, 255)
    colour = tuple(int(c) for c in colour[::-1])  # BGR for cv2
    if CLASSES[label] == 'square':
        cv2.rectangle(image, (x1, y1), (x2 - 1, y2 - 1), colour, -1)
    elif CLASSES[label] == 'circle':
        ellipse = (((x1 + x2) / 2, (y1 + y2) / 2), (x2 - x1, y2 - y1), 0)
        cv2.ellipse(image, ellipse, colour, -1)
    else:
        points = np.array([[(x1 + x2) // 2, y1], [x1, y2 - 1],
                           [x2 - 1, y2 - 1]])
        cv2.fillPoly(image, [points], colour)


def _overlaps(box, boxes):
    return any(
        box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3]
        for b in boxes)


def make_image(rng, spec: ShapesSpec):
    """One BGR image and its ``[(label, (x1, y1, x2, y2)), ...]`` objects."""
    size = spec.image_size
    image = rng.integers(90, 160, (size, size, 3), dtype=np.uint8)
    objects = []
    for _ in range(int(rng.integers(1, spec.max_objects + 1))):
        for _attempt in range(20):
            w, h = rng.integers(spec.min_size, spec.max_size + 1, 2)
            x1, y1 = int(rng.integers(0, size - w)), int(
                rng.integers(0, size - h))
            box = (x1, y1, x1 + int(w), y1 + int(h))
            if not _overlaps(box, [b for _, b in objects]):
                label = int(rng.integers(len(CLASSES)))
                _draw(image, label, box, rng)
                objects.append((label, box))
                break
    return image, objects


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

"""A full check of a dataset's files before a long run: every annotated
image exists and decodes at its annotated size, and every box is valid
(positive size, inside its image, a known category).

mmdet's datasets drop some invalid COCO boxes silently and meet a missing
or undecodable image only when they draw it, hours into a run; this check
reads the annotation files themselves (COCO json, PASCAL VOC xml) and
reports every problem at once. Images are decoded in parallel.
"""
import json
import os.path as osp
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from xml.etree import ElementTree as ET

import cv2

from .data_checks import join_root, leaf_datasets

#: Boxes may reach this many pixels past their image's border (rounding).
BORDER_TOLERANCE = 1.0


@dataclass
class DataReport:
    """Problems found in one split.

    Args:
        split (str): ``'train'``, ``'val'`` or ``'test'``.
        images (int): Images checked.
        boxes (int): Boxes checked.
        problems (list[tuple[str, str]]): ``(kind, 'file: detail')``.
    """
    split: str
    images: int = 0
    boxes: int = 0
    problems: list = field(default_factory=list)

    def summary(self, first: int = 5) -> str:
        """Counts per kind of problem and the first files of each."""
        head = (f'{self.split}: {self.images} images, {self.boxes} boxes, '
                f'{len(self.problems)} problem(s)')
        lines = [head]
        for kind, count in Counter(k for k, _ in self.problems).items():
            examples = [d for k, d in self.problems if k == kind][:first]
            lines.append(f'  {kind}: {count}, first: ' + '; '.join(examples))
        return '\n'.join(lines)


class DataCheckError(ValueError):
    """The data check found problems."""


def _image_problem(args):
    """``(kind, detail)`` for an image that is missing, does not decode or
    has another size than annotated, else None."""
    path, width, height = args
    if not osp.isfile(path):
        return 'missing image', path
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if image is None:
        return 'undecodable image', path
    if width and height and image.shape[:2] != (height, width):
        return ('image size differs from annotation',
                f'{path}: {image.shape[1]}x{image.shape[0]}, annotated '
                f'{width}x{height}')
    return None


def _box_problem(box, width, height, known):
    """``(kind, detail)`` for an invalid ``(x1, y1, x2, y2, category)``."""
    x1, y1, x2, y2, category = box
    if not known(category):
        return 'unknown category', f'{category!r}'
    if not (x2 > x1 and y2 > y1):
        return 'box without area', f'[{x1}, {y1}, {x2}, {y2}]'
    if (x1 < -BORDER_TOLERANCE or y1 < -BORDER_TOLERANCE
            or x2 > width + BORDER_TOLERANCE
            or y2 > height + BORDER_TOLERANCE):
        return ('box outside its image',
                f'[{x1}, {y1}, {x2}, {y2}] in {width}x{height}')
    return None


def _coco_entries(cfg, data_root):
    """``(image path, width, height, boxes)`` per image of a COCO json;
    boxes as ``(x1, y1, x2, y2, category_id)``."""
    with open(join_root(data_root, cfg['ann_file'])) as f:
        coco = json.load(f)
    prefix = join_root(data_root, (cfg.get('data_prefix')
                                   or {}).get('img', ''))
    boxes = {}
    for ann in coco.get('annotations', []):
        x, y, w, h = ann['bbox']
        boxes.setdefault(ann['image_id'], []).append(
            (x, y, x + w, y + h, ann['category_id']))
    categories = {c['id'] for c in coco.get('categories', [])}
    entries = [(osp.join(prefix, image['file_name']), image.get('width'),
                image.get('height'), boxes.get(image['id'], []))
               for image in coco.get('images', [])]
    return entries, categories.__contains__, []


def _voc_entries(cfg, data_root, classes):
    """The same from a VOC ``ImageSets/Main/*.txt`` and its xml files."""
    root = join_root(data_root, (cfg.get('data_prefix')
                                 or {}).get('sub_data_root', ''))
    with open(join_root(data_root, cfg['ann_file'])) as f:
        ids = [line.strip() for line in f if line.strip()]
    entries, problems = [], []
    for image_id in ids:
        xml = osp.join(root, 'Annotations', f'{image_id}.xml')
        image = osp.join(root, 'JPEGImages', f'{image_id}.jpg')
        if not osp.isfile(xml):
            problems.append(('missing annotation xml', xml))
            continue
        tree = ET.parse(xml).getroot()
        size = tree.find('size')
        width = int(size.find('width').text) if size is not None else None
        height = int(size.find('height').text) if size is not None else None
        boxes = []
        for obj in tree.findall('object'):
            bnd = obj.find('bndbox')
            boxes.append(
                tuple(
                    float(bnd.find(k).text)
                    for k in ('xmin', 'ymin', 'xmax', 'ymax')) +
                (obj.find('name').text, ))
        entries.append((image, width, height, boxes))
    return entries, set(classes).__contains__, problems


def check_data_files(cfg, splits=('train', ), workers: int = 8) -> list:
    """Check every image and box of the splits' datasets (COCO json or VOC
    xml annotations; other dataset types are not checked).

    Args:
        cfg (Config): A loaded config.
        splits (Sequence[str]): Dataloaders to check.
        workers (int): Processes decoding images.

    Returns:
        list[DataReport]: One per split checked.
    """
    reports = []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for split in splits:
            loader = cfg.get(f'{split}_dataloader')
            if not loader:
                continue
            report = DataReport(split)
            for dataset in leaf_datasets(loader['dataset']):
                _check_dataset(dataset, report, pool)
            reports.append(report)
    return reports


def _check_dataset(dataset, report, pool):
    data_root = dataset.get('data_root') or ''
    classes = (dataset.get('metainfo') or {}).get('classes')
    if dataset.get('type') == 'VOCDataset':
        if classes is None:
            from mmdet.datasets import VOCDataset
            classes = VOCDataset.METAINFO['classes']
        entries, known, problems = _voc_entries(dataset, data_root, classes)
    elif dataset.get('type') == 'CocoDataset':
        entries, known, problems = _coco_entries(dataset, data_root)
    else:
        return
    report.images += len(entries)
    report.problems += problems
    for path, width, height, boxes in entries:
        for box in boxes:
            report.boxes += 1
            problem = _box_problem(box, width or float('inf'), height
                                   or float('inf'), known)
            if problem:
                report.problems.append((problem[0], f'{path}: {problem[1]}'))
    jobs = [(path, width, height) for path, width, height, _ in entries]
    for problem in pool.map(_image_problem, jobs, chunksize=64):
        if problem:
            report.problems.append(problem)


def require_clean_data(cfg, splits, workers=8) -> None:
    """:func:`check_data_files`, raising on any problem.

    Raises:
        DataCheckError: Every problem, counted by kind, with the first
            files of each.
    """
    reports = check_data_files(cfg, splits, workers)
    if any(report.problems for report in reports):
        raise DataCheckError(
            'The data check found problems:\n' +
            '\n'.join(report.summary() for report in reports) +
            '\nFix or remove these files and annotations, then run again.')

"""Check a config's data paths before any model is built.

MMDetection only notices a missing data root or annotation file when it
builds the dataloader, after the model, and an empty split can surface as a
hang in an infinite sampler. These checks fail first, naming the path and
the layout the config expects.
"""
import json
import os.path as osp

LAYOUTS = {
    'CocoDataset':
    'data/coco/annotations/instances_{train,val}2017.json '
    'with images in data/coco/{train,val}2017/',
    'VOCDataset':
    'data/VOCdevkit/VOC{2007,2012}/ with Annotations/*.xml, '
    'JPEGImages/*.jpg and ImageSets/Main/{trainval,test}.txt',
}
_WRAPPER_KEYS = ('dataset', 'datasets')
# A json this large is a real annotation file; not worth parsing to count.
_MAX_JSON_BYTES_TO_PARSE = 50 * 2**20


class DataLayoutError(FileNotFoundError):
    """A dataset path is missing or a split is empty."""


def leaf_datasets(dataset_cfg):
    """Yield the dataset configs inside wrappers (Concat, Repeat, ...)."""
    for key in _WRAPPER_KEYS:
        inner = dataset_cfg.get(key)
        if inner is not None:
            for cfg in (inner if isinstance(inner,
                                            (list, tuple)) else [inner]):
                yield from leaf_datasets(cfg)
            return
    yield dataset_cfg


def join_root(root, path):
    return path if not root or osp.isabs(path) else osp.join(root, path)


def _split_is_empty(ann_path):
    if osp.getsize(ann_path) == 0:
        return True
    if ann_path.endswith('.txt'):
        with open(ann_path) as f:
            return not any(line.strip() for line in f)
    if (ann_path.endswith('.json')
            and osp.getsize(ann_path) <= _MAX_JSON_BYTES_TO_PARSE):
        with open(ann_path) as f:
            return not json.load(f).get('images')
    return False


def check_dataset(dataset_cfg, split='train') -> None:
    """Check one (possibly wrapped) dataset config's files.

    Args:
        dataset_cfg (dict): The ``dataset`` of a dataloader config.
        split (str): Which dataloader it belongs to, for the message.

    Raises:
        DataLayoutError: A path is missing or the split has no images.
    """
    for cfg in leaf_datasets(dataset_cfg):
        layout = LAYOUTS.get(cfg.get('type'), 'the paths in the config')
        data_root = cfg.get('data_root') or ''
        where = f'{split} dataset ({cfg.get("type")})'
        if data_root and not osp.isdir(data_root):
            raise DataLayoutError(
                f'Data root of the {where} not found: {data_root!r}. '
                f'Expected layout: {layout}. Put the data there, symlink '
                f'it, or set data_root in the config.')
        ann_file = cfg.get('ann_file')
        if ann_file:
            ann_path = join_root(data_root, ann_file)
            if not osp.isfile(ann_path):
                raise DataLayoutError(
                    f'Annotation file of the {where} not found: '
                    f'{ann_path!r}. Expected layout: {layout}.')
            if _split_is_empty(ann_path):
                raise DataLayoutError(
                    f'The {where} split is empty: {ann_path!r} lists no '
                    f'images. Expected layout: {layout}.')
        prefix = cfg.get('data_prefix') or {}
        for key in ('img', 'sub_data_root'):
            if prefix.get(key):
                image_root = join_root(data_root, prefix[key])
                if not osp.isdir(image_root):
                    raise DataLayoutError(
                        f'Image directory of the {where} not found: '
                        f'{image_root!r}. Expected layout: {layout}.')


def check_dataloaders(cfg, splits=('train', 'val')) -> None:
    """Check the datasets of the dataloaders a run will use.

    Args:
        cfg (Config): A loaded config.
        splits (Sequence[str]): ``'train'``, ``'val'`` and/or ``'test'``; a
            split is checked when the config defines both its dataloader and
            its loop (``<split>_cfg``).
    """
    for split in splits:
        loader = cfg.get(f'{split}_dataloader')
        if loader and cfg.get(f'{split}_cfg') is not None:
            check_dataset(loader['dataset'], split)

"""Missing data roots, annotation files and empty splits fail before the
model is built, naming the path and the expected layout."""
import os
import os.path as osp

import pytest
from tiny import CONFIGS, run_tool, write_tiny

import mmdet_scconv  # noqa: F401
from mmdet_scconv.apis import DataLayoutError, build_runner, load_config


def test_missing_coco_root_via_train_tool(tmp_path):
    result = run_tool(
        'tools/train.py',
        osp.join(CONFIGS, 'retinanet_scconv_r50_coco.py'),
        '--work-dir',
        str(tmp_path),
        '--cfg-options',
        f'train_dataloader.dataset.data_root={tmp_path}/nowhere',
        check=False)
    assert result.returncode != 0
    assert 'DataLayoutError' in result.stderr
    assert f'{tmp_path}/nowhere' in result.stderr
    assert 'instances_{train,val}2017.json' in result.stderr
    assert 'Building model' not in result.stdout + result.stderr


def test_missing_voc_root(tmp_path):
    cfg = load_config(
        osp.join(CONFIGS, 'retinanet_scconv_r50_voc.py'),
        work_dir=str(tmp_path))
    cfg.train_dataloader.dataset.datasets[0].data_root = str(tmp_path / 'v')
    with pytest.raises(DataLayoutError) as error:
        build_runner(cfg)
    assert str(tmp_path / 'v') in str(error.value)
    assert 'JPEGImages' in str(error.value)


def tiny_cfg(tmp_path, layout='coco'):
    base = f'retinanet_scconv_r50_{layout}.py'
    return load_config(
        write_tiny(tmp_path, layout, base), work_dir=str(tmp_path / 'work'))


def test_missing_annotation_file(tmp_path):
    cfg = tiny_cfg(tmp_path)
    os.remove(tmp_path / 'data/coco/annotations/instances_val.json')
    with pytest.raises(
            DataLayoutError,
            match='Annotation file of the val '
            r'dataset \(CocoDataset\) not found: .*instances_val'):
        build_runner(cfg)


def test_missing_image_directory(tmp_path):
    cfg = tiny_cfg(tmp_path)
    os.rename(tmp_path / 'data/coco/train', tmp_path / 'data/coco/elsewhere')
    with pytest.raises(
            DataLayoutError,
            match='Image directory of the train '
            'dataset .*coco/train'):
        build_runner(cfg)


def test_empty_coco_split(tmp_path):
    cfg = tiny_cfg(tmp_path)
    (tmp_path / 'data/coco/annotations/instances_train.json'
     ).write_text('{"images": [], "annotations": [], "categories": []}')
    with pytest.raises(
            DataLayoutError,
            match='train dataset .* split is '
            "empty: .*instances_train.json' lists no images"):
        build_runner(cfg)


def test_empty_voc_split(tmp_path):
    cfg = tiny_cfg(tmp_path, 'voc')
    (tmp_path /
     'data/VOCdevkit/VOC2007/ImageSets/Main/test.txt').write_text('\n')
    with pytest.raises(
            DataLayoutError,
            match='val dataset \\(VOCDataset\\) '
            'split is empty: .*test.txt'):
        build_runner(cfg)


def test_test_tool_checks_only_the_test_split(tmp_path):
    cfg = tiny_cfg(tmp_path)
    os.remove(tmp_path / 'data/coco/annotations/instances_train.json')
    cfg.load_from = None
    build_runner(cfg, check_splits=('test', ))  # no train data needed

"""Every shipped config loads, builds, and carries the paper's schedule."""
import argparse
import os
import os.path as osp

import pytest
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope
from tiny import CONFIGS, ROOT

import mmdet_scconv  # noqa: F401
from mmdet_scconv.apis import load_config
from mmdet_scconv.apis.cli import add_cfg_options
from mmdet_scconv.layers import SCConv

PAPER_CONFIGS = {
    # name: (backbone type, depth, dataset)
    'retinanet_scconv_r50_coco.py': ('SCConvResNet', 50, 'coco'),
    'retinanet_scconv_r101_coco.py': ('SCConvResNet', 101, 'coco'),
    'retinanet_r50_coco.py': ('ResNet', 50, 'coco'),
    'retinanet_r101_coco.py': ('ResNet', 101, 'coco'),
    'retinanet_scconv_r50_voc.py': ('SCConvResNet', 50, 'voc'),
    'retinanet_scconv_r101_voc.py': ('SCConvResNet', 101, 'voc'),
    'retinanet_r50_voc.py': ('ResNet', 50, 'voc'),
    'retinanet_r101_voc.py': ('ResNet', 101, 'voc'),
}
DEMO_CONFIG = 'demo/retinanet_scconv_r50_shapes.py'
# Numbers from the paper each config's header must quote.
PAPER_ROWS = {
    'retinanet_scconv_r50_coco.py': ('55.1', '38.2', '35.6'),
    'retinanet_r50_coco.py': ('54.2', '37.4', '35.2'),
    'retinanet_scconv_r50_voc.py': ('78.68', '56.26', '53.16'),
    'retinanet_scconv_r101_voc.py': ('80.36', '57.05', '54.12'),
    'retinanet_r50_voc.py': ('77.89', '55.31', '52.26'),
    'retinanet_r101_voc.py': ('79.23', '56.31', '53.32'),
}


def load(name):
    return Config.fromfile(osp.join(CONFIGS, name))


@pytest.mark.parametrize('name', sorted(PAPER_CONFIGS))
def test_config_builds_its_model(name):
    backbone_type, depth, dataset = PAPER_CONFIGS[name]
    cfg = load(name)
    init_default_scope(cfg.default_scope)
    model = MODELS.build(cfg.model)
    assert type(model.backbone).__name__ == backbone_type
    assert model.backbone.depth == depth
    num_scconv = sum(isinstance(m, SCConv) for m in model.modules())
    assert num_scconv == ({
        50: 16,
        101: 33
    }[depth] if backbone_type == 'SCConvResNet' else 0)
    assert model.bbox_head.num_classes == (80 if dataset == 'coco' else 20)


@pytest.mark.parametrize('name', sorted(PAPER_CONFIGS))
def test_backbones_start_from_scratch_with_synced_batchnorm(name):
    cfg = load(name)
    backbone = cfg.model.backbone
    assert backbone.init_cfg is None
    assert backbone.frozen_stages == -1 and backbone.norm_eval is False
    assert cfg.sync_bn == 'torch'


@pytest.mark.parametrize('name', sorted(PAPER_CONFIGS) + [DEMO_CONFIG])
def test_every_config_has_the_long_run_protections(name):
    cfg = load(name)
    dataset = cfg.train_dataloader.dataset
    for part in dataset.get('datasets', [dataset]):
        assert part.pipeline[0].type == 'LoadImageOrSkip'
    hooks = {hook.type: hook for hook in cfg.custom_hooks}
    assert hooks['DivergenceHook'].max_bad_iters == 0
    assert hooks['BadImageHook'].max_fraction == 0.01


def test_no_shipped_text_says_nothing_can_be_downloaded():
    texts = [osp.join(ROOT, 'README.md')] + [
        osp.join(folder, name) for top in ('configs', 'docs', 'mmdet_scconv')
        for folder, _, names in os.walk(osp.join(ROOT, top))
        for name in names if name.endswith(('.py', '.md'))
    ]
    for path in texts:
        with open(path) as f:
            text = ' '.join(f.read().lower().split())
        for phrase in ('nothing can be downloaded', 'nothing is downloaded',
                       'downloads nothing', 'works offline'):
            assert phrase not in text, (path, phrase)


def test_imagenet_recipe_with_cfg_options(tmp_path):
    """docs/usage.md's --cfg-options form of starting from ImageNet weights,
    parsed as tools/train.py parses it."""
    parser = argparse.ArgumentParser()
    add_cfg_options(parser)
    checkpoint = str(tmp_path / 'resnet50.pth')
    args = parser.parse_args([
        '--cfg-options', 'model.backbone.frozen_stages=0',
        'model.backbone.init_cfg._delete_=True',
        'model.backbone.init_cfg.type=Pretrained',
        f'model.backbone.init_cfg.checkpoint={checkpoint}'
    ])
    cfg = load_config(
        osp.join(CONFIGS, 'retinanet_scconv_r50_coco.py'), args.cfg_options)
    backbone = cfg.model.backbone
    assert backbone.init_cfg == dict(type='Pretrained', checkpoint=checkpoint)
    assert backbone.frozen_stages == 0 and backbone.norm_eval is False


@pytest.mark.parametrize('name', sorted(PAPER_ROWS))
def test_header_quotes_the_paper_row(name):
    with open(osp.join(CONFIGS, name)) as f:
        header = ''.join(line for line in f if line.startswith('#'))
    for number in PAPER_ROWS[name]:
        assert number in header


def schedule(cfg):
    warmup, steps = cfg.param_scheduler
    return dict(
        loop=cfg.train_cfg.type,
        iters=cfg.train_cfg.max_iters,
        sampler=cfg.train_dataloader.sampler.type,
        optimizer=(cfg.optim_wrapper.optimizer.type,
                   cfg.optim_wrapper.optimizer.lr,
                   cfg.optim_wrapper.optimizer.momentum,
                   cfg.optim_wrapper.optimizer.weight_decay),
        warmup=(warmup.type, warmup.by_epoch, warmup.begin, warmup.end),
        steps=(steps.type, steps.by_epoch, list(steps.milestones),
               steps.gamma),
        base_batch=cfg.auto_scale_lr.base_batch_size,
        batch_per_gpu=cfg.train_dataloader.batch_size)


@pytest.mark.parametrize(
    'name', [n for n, v in PAPER_CONFIGS.items() if v[2] == 'coco'])
def test_coco_schedule_is_the_papers(name):
    cfg = load(name)
    assert schedule(cfg) == dict(
        loop='IterBasedTrainLoop',
        iters=180000,
        sampler='InfiniteSampler',
        optimizer=('SGD', 0.1, 0.9, 1e-4),
        warmup=('LinearLR', False, 0, 500),
        steps=('MultiStepLR', False, [120000, 160000], 0.1),
        base_batch=16,
        batch_per_gpu=2)
    assert cfg.optim_wrapper.clip_grad.max_norm == 35
    assert cfg.val_evaluator.type == 'CocoMetric'
    assert cfg.val_evaluator.metric == 'bbox'
    assert cfg.test_evaluator == cfg.val_evaluator


@pytest.mark.parametrize(
    'name', [n for n, v in PAPER_CONFIGS.items() if v[2] == 'voc'])
def test_voc_schedule_is_the_papers(name):
    cfg = load(name)
    assert schedule(cfg) == dict(
        loop='IterBasedTrainLoop',
        iters=20000,
        sampler='InfiniteSampler',
        optimizer=('SGD', 0.1, 0.9, 1e-4),
        warmup=('LinearLR', False, 0, 500),
        steps=('MultiStepLR', False, [10000, 18000], 0.1),
        base_batch=32,
        batch_per_gpu=4)
    train_sets = cfg.train_dataloader.dataset.datasets
    assert [d.ann_file for d in train_sets] == [
        'VOC2007/ImageSets/Main/trainval.txt',
        'VOC2012/ImageSets/Main/trainval.txt'
    ]
    assert cfg.test_dataloader.dataset.ann_file == (
        'VOC2007/ImageSets/Main/test.txt')
    metrics = {m.type: m for m in cfg.test_evaluator}
    assert set(metrics) == {'VOCMetric', 'CocoMetric'}
    assert metrics['CocoMetric'].ann_file is None
    # CocoMetric builds the ground truth from the packed `instances`.
    assert 'instances' in cfg.test_dataloader.dataset.pipeline[-1].meta_keys

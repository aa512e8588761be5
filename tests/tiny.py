"""Tiny, fast variants of the project's configs on generated shapes data."""
import os.path as osp
import subprocess
import sys

from mmdet_scconv.benchmark import BenchmarkConfig
from mmdet_scconv.datasets import (SHAPES_CLASSES, ShapesSpec,
                                   make_shapes_dataset)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = osp.join(ROOT, 'configs')
TINY_SPEC = ShapesSpec(
    num_train=8,
    num_val=4,
    image_size=64,
    min_size=20,
    max_size=32,
    max_objects=2)

_PIPELINES = """
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=({scale}, {scale}), keep_ratio=True),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=({scale}, {scale}), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=(
        'img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor',
        'instances'))
]
"""

_SMALL_RUN = """
model = dict(
    neck=dict(out_channels=32),
    bbox_head=dict(num_classes={num_classes}, in_channels=32,
                   feat_channels=32,
                   stacked_convs=1),
    # A 4-iteration model scores below mmdet's 0.05; keep its boxes so that
    # the metrics have something to evaluate.
    test_cfg=dict(score_thr=0.0, max_per_img=20))
train_cfg = dict(max_iters={max_iters}, val_interval={max_iters})
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=2),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end={max_iters},
         milestones=[3], gamma=0.1)
]
optim_wrapper = dict(optimizer=dict(lr=0.01))
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(interval=2, max_keep_ckpts=10))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0, deterministic=True)
"""


def coco_config(data_root, base, max_iters=4, scale=64):
    """A config file text inheriting ``base`` on the COCO-layout shapes."""
    return f"""_base_ = {base!r}
data_root = {data_root + '/'!r}
metainfo = dict(classes={SHAPES_CLASSES!r})
{_PIPELINES.format(scale=scale)}
{_SMALL_RUN.format(max_iters=max_iters, num_classes=len(SHAPES_CLASSES))}
def split(name, pipeline):
    return dict(data_root=data_root, metainfo=metainfo,
                ann_file=f'coco/annotations/instances_{{name}}.json',
                data_prefix=dict(img=f'coco/{{name}}/'), pipeline=pipeline)
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=split('train', train_pipeline))
val_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                      dataset=split('val', test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(
    ann_file=data_root + 'coco/annotations/instances_val.json')
test_evaluator = val_evaluator
"""


def voc_config(data_root, base, max_iters=4, scale=64):
    """A config file text inheriting ``base`` on the VOC-layout shapes."""
    return f"""_base_ = {base!r}
data_root = {data_root + '/VOCdevkit/'!r}
metainfo = dict(classes={SHAPES_CLASSES!r})
{_PIPELINES.format(scale=scale)}
{_SMALL_RUN.format(max_iters=max_iters, num_classes=len(SHAPES_CLASSES))}
def split(ann_file, pipeline, **kwargs):
    return dict(type='VOCDataset', data_root=data_root, metainfo=metainfo,
                ann_file=f'VOC2007/ImageSets/Main/{{ann_file}}',
                data_prefix=dict(sub_data_root='VOC2007/'),
                pipeline=pipeline, **kwargs)
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(_delete_=True, **split('trainval.txt', train_pipeline)))
val_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(_delete_=True,
                 **split('test.txt', test_pipeline, test_mode=True)))
test_dataloader = val_dataloader
"""


def write_tiny(tmp_path, layout, base_name, max_iters=4, scale=64):
    """Generate the tiny shapes set and a config for ``layout`` whose
    pipelines resize images to ``scale`` pixels.

    Returns:
        str: The config file path.
    """
    data_root = str(tmp_path / 'data')
    make_shapes_dataset(data_root, TINY_SPEC)
    base = base_name if base_name.startswith('mmdet::') else osp.join(
        CONFIGS, base_name)
    text = {
        'coco': coco_config,
        'voc': voc_config
    }[layout](data_root, base, max_iters, scale)
    path = tmp_path / f'tiny_{layout}.py'
    path.write_text(text)
    return str(path)


def run_tool(*args, env=None, check=True, cwd=ROOT):
    """Run ``python <args>`` (from the repository root by default) and
    return the result; fail with its output unless it exits 0."""
    result = subprocess.run([sys.executable, *args],
                            cwd=cwd,
                            env=env,
                            capture_output=True,
                            text=True,
                            timeout=900)
    if check and result.returncode != 0:
        raise AssertionError(
            f'{args} failed ({result.returncode}):\n'
            f'{result.stdout[-3000:]}\n{result.stderr[-5000:]}')
    return result


def engine_benchmark_config(runtime):
    """The smallest engine benchmark: ResNet-50's and the deploy SCConv
    trunk at 64x64, one repeat, one thread, with the engine's profile."""
    return BenchmarkConfig(
        scope='trunk',
        height=64,
        width=64,
        modes=['infer'],
        channels_last=[False],
        impls=['deploy'],
        warmup=0,
        repeats=1,
        threads=1,
        runtime=runtime,
        profile=True)

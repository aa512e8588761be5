# Demo: SCConv-R50 RetinaNet trained from scratch on a generated shapes set
# (mmdet_scconv.datasets.shapes: 160 train / 40 held-out 128x128 images,
# 6 shapes with shared colours and fills on textured, cluttered backgrounds,
# hard enough that the models stay below a perfect score) on CPU, then
# evaluated with CocoMetric (mAP@[.5:.95], mAP@.5).
# Run: python tools/demo.py configs/demo/retinanet_scconv_r50_shapes.py
# which writes the data under data_root first when it is missing.
_base_ = [
    'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py', '../_base_/scconv.py'
]

custom_imports = dict(imports=['mmdet_scconv'], allow_failed_imports=False)
data_root = 'data/shapes/'
metainfo = dict(
    classes=('square', 'circle', 'triangle', 'diamond', 'ring', 'cross'))
image_size = (128, 128)
max_iters = 300

model = dict(
    backbone=dict(
        type='SCConvResNet',
        frozen_stages=-1,
        norm_eval=False,
        init_cfg=None,
        scconv_cfg={{_base_.scconv_cfg}}),
    # A lighter head than COCO's (2 x 128-channel convs instead of 4 x 256)
    # keeps the demo within minutes on two CPU cores.
    neck=dict(out_channels=128),
    bbox_head=dict(
        num_classes=6, in_channels=128, feat_channels=128, stacked_convs=2))

# The long-run protections of the paper configs, for those who start their
# own data from this config: a missing or undecodable training image is
# skipped and reported (BadImageHook's budget: 1% of the training set), and
# training stops at the iteration a loss or the gradient norm turns
# non-finite, never writing a checkpoint of non-finite weights.
train_pipeline = [
    dict(type='LoadImageOrSkip'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]

train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='coco/annotations/instances_train.json',
        data_prefix=dict(img='coco/train/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=8),
        pipeline=train_pipeline))
test_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='coco/annotations/instances_val.json',
        data_prefix=dict(img='coco/val/'),
        pipeline=test_pipeline))
test_evaluator = dict(
    type='CocoMetric',
    ann_file=data_root + 'coco/annotations/instances_val.json',
    metric='bbox')
# Evaluate once, on the held-out split, after training.
val_dataloader = None
val_cfg = None
val_evaluator = None

train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(
        type='MultiStepLR',
        by_epoch=False,
        begin=0,
        end=max_iters,
        milestones=[240, 285],
        gamma=0.1)
]
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=3e-4, weight_decay=0.05),
    clip_grad=dict(max_norm=35, norm_type=2))
auto_scale_lr = dict(enable=False, base_batch_size=4)

custom_hooks = [
    dict(type='DivergenceHook', max_bad_iters=0),
    dict(type='BadImageHook', max_fraction=0.01),
    # Every iteration's time, for steady-state speed in compare_runs.py.
    dict(type='StepTimesHook')
]

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters),
    visualization=dict(type='DetVisualizationHook', draw=False))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))

# RetinaNet-FPN on COCO with the SCConv paper's schedule (Sec. 3.1):
# SGD, total batch 16, lr 0.1, 180k iterations, x0.1 at 120k and 160k.
# mmdet's own RetinaNet uses lr 0.01 at batch 16; the paper says 0.1, kept
# here and made stable by a linear warmup and gradient clipping. To use
# mmdet's value: --cfg-options optim_wrapper.optimizer.lr=0.01
#
# The backbone starts from scratch, as in the paper. To start from an
# ImageNet ResNet instead (docs/usage.md, "Pretrained weights"):
#   model = dict(backbone=dict(
#       frozen_stages=0, norm_eval=False,
#       init_cfg=dict(_delete_=True, type='Pretrained',
#                     checkpoint='torchvision://resnet50')))  # or a path
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'

max_iters = 180000
lr_steps = [120000, 160000]
warmup_iters = 500
val_interval = 10000

# From scratch nothing may stay frozen and BatchNorm must learn its stats.
model = dict(backbone=dict(frozen_stages=-1, norm_eval=False, init_cfg=None))
# ... over the whole batch, not 2 images: a distributed run synchronises the
# BatchNorms across its GPUs (torch's SyncBatchNorm); a single-process run
# keeps plain BatchNorm. (He et al., "Rethinking ImageNet Pre-training",
# ICCV 2019: from-scratch detectors need statistics over many images.)
sync_bn = 'torch'

# mmdet's training pipeline, except that a missing or undecodable image is
# skipped and reported, within BadImageHook's budget (custom_hooks below);
# test images never are.
train_pipeline = [
    dict(type='LoadImageOrSkip', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
# 8 GPUs x 2 images = 16 images per iteration (the paper's 2 GPUs x 8:
# --cfg-options train_dataloader.batch_size=8 on 2 GPUs).
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(pipeline=train_pipeline))

train_cfg = dict(
    _delete_=True,
    type='IterBasedTrainLoop',
    max_iters=max_iters,
    val_interval=val_interval)

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.001,
        by_epoch=False,
        begin=0,
        end=warmup_iters),
    dict(
        type='MultiStepLR',
        by_epoch=False,
        begin=0,
        end=max_iters,
        milestones=lr_steps,
        gamma=0.1)
]

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4),
    clip_grad=dict(max_norm=35, norm_type=2))

auto_scale_lr = dict(enable=False, base_batch_size=16)

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(
        type='CheckpointHook',
        by_epoch=False,
        interval=val_interval,
        max_keep_ckpts=3))
log_processor = dict(by_epoch=False)
# A long run stops at the iteration its loss or gradient norm turns
# non-finite, naming the last checkpoint to resume from, and never writes
# a checkpoint of non-finite weights (mmdet_scconv.engine.DivergenceHook).
custom_imports = dict(imports=['mmdet_scconv'], allow_failed_imports=False)
custom_hooks = [
    dict(type='DivergenceHook', max_bad_iters=0),
    dict(type='BadImageHook', max_fraction=0.01),
    # Every iteration's time, for steady-state speed in compare_runs.py.
    dict(type='StepTimesHook')
]

# CocoMetric reports mAP@[.5:.95] (bbox_mAP), mAP@.5, mAP@.75 and S/M/L.
val_evaluator = dict(type='CocoMetric', metric='bbox')
test_evaluator = val_evaluator

# RetinaNet-FPN on PASCAL VOC with the SCConv paper's schedule (Sec. 3.1):
# train VOC2007+2012 trainval, test VOC2007 test, 20 classes; SGD, total
# batch 32, lr 0.1, 500-iteration linear warmup, 20k iterations, x0.1 at 10k
# and 18k. mmdet's stock VOC RetinaNet is epoch-based with lr 0.01 and no
# warmup. To use mmdet's lr: --cfg-options optim_wrapper.optimizer.lr=0.01
#
# Metrics: VOCMetric (mAP@.5, 11-point as mmdet's VOC2007 default) and
# CocoMetric (mAP@[.5:.95], mAP@.5, mAP@.75, S/M/L) computed straight from
# the VOC annotations: with ann_file=None it builds the COCO ground truth
# from each test image's `instances`, which the test pipeline packs.
#
# The backbone starts from scratch; see retinanet_paper_coco.py to start
# from an ImageNet ResNet.
_base_ = 'mmdet::pascal_voc/retinanet_r50_fpn_1x_voc0712.py'

max_iters = 20000
lr_steps = [10000, 18000]
warmup_iters = 500
val_interval = 2000
data_root = 'data/VOCdevkit/'
backend_args = None

model = dict(backbone=dict(frozen_stages=-1, norm_eval=False, init_cfg=None))
# BatchNorm statistics over the whole batch in distributed runs (see
# retinanet_paper_coco.py); a single-process run keeps plain BatchNorm.
sync_bn = 'torch'

# A missing or undecodable training image is skipped and reported, within
# BadImageHook's budget (custom_hooks below); test images never are.
train_pipeline = [
    dict(type='LoadImageOrSkip', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(1000, 600), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=(1000, 600), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor', 'instances'))
]


def voc_split(year, ann_file, pipeline, **kwargs):
    return dict(
        type='VOCDataset',
        data_root=data_root,
        ann_file=f'VOC{year}/ImageSets/Main/{ann_file}',
        data_prefix=dict(sub_data_root=f'VOC{year}/'),
        pipeline=pipeline,
        backend_args=backend_args,
        **kwargs)


train_filter = dict(filter_empty_gt=True, min_size=32, bbox_min_size=32)

# 8 GPUs x 4 images = 32 images per iteration (2 GPUs x 16:
# --cfg-options train_dataloader.batch_size=16 on 2 GPUs).
train_dataloader = dict(
    batch_size=4,
    num_workers=2,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        ignore_keys=['dataset_type'],
        datasets=[
            voc_split(
                2007, 'trainval.txt', train_pipeline, filter_cfg=train_filter),
            voc_split(
                2012, 'trainval.txt', train_pipeline, filter_cfg=train_filter)
        ]))
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        **voc_split(2007, 'test.txt', test_pipeline, test_mode=True)))
test_dataloader = val_dataloader

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

auto_scale_lr = dict(enable=False, base_batch_size=32)

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

val_evaluator = [
    dict(type='VOCMetric', metric='mAP', eval_mode='11points'),
    dict(type='CocoMetric', ann_file=None, metric='bbox'),
]
test_evaluator = val_evaluator

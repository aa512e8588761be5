# RetinaNet, SCConv-ResNet-50, COCO val2017, the paper's schedule.
# Paper (SCConv, CVPR 2023, RetinaNet table, COCO val2017, row
# "SCConv-R50"): backbone 16.78M params / 41.36G FLOPs; AP50 55.1,
# AP75 38.2, AP[.5:.95] 35.6.
_base_ = ['./retinanet_r50_coco.py', './_base_/scconv.py']
model = dict(
    backbone=dict(type='SCConvResNet', scconv_cfg={{_base_.scconv_cfg}}))

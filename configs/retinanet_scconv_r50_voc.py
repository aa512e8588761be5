# RetinaNet, SCConv-ResNet-50, VOC07+12 -> VOC07 test, the paper's schedule.
# Paper (SCConv, CVPR 2023, RetinaNet table, VOC07+12, row "SCConv-R50"):
#   backbone 16.78M params / 41.36G FLOPs; AP50 78.68, AP75 56.26,
#   AP[.5:.95] 53.16.
_base_ = ['./retinanet_r50_voc.py', './_base_/scconv.py']
model = dict(
    backbone=dict(type='SCConvResNet', scconv_cfg={{_base_.scconv_cfg}}))

# RetinaNet, SCConv-ResNet-101, VOC07+12 -> VOC07 test, the paper's schedule.
# Paper (RetinaNet table, VOC07+12, row "SCConv-R101"): backbone 27.90M
# params / 75.26G FLOPs; AP50 80.36, AP75 57.05, AP[.5:.95] 54.12.
_base_ = './retinanet_scconv_r50_voc.py'
model = dict(backbone=dict(depth=101))

# Baseline: RetinaNet, ResNet-101, VOC07+12 -> VOC07 test, the paper's
# schedule. Paper (RetinaNet table, VOC07+12, row "R101"): backbone
# 44.55M params / 121.3G FLOPs; AP50 79.23, AP75 56.31, AP[.5:.95] 53.32.
_base_ = './retinanet_r50_voc.py'
model = dict(backbone=dict(depth=101))

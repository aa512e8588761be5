# RetinaNet, SCConv-ResNet-101, COCO val2017, the paper's schedule.
# The paper reports no COCO row for SCConv-R101 (its VOC row: 27.90M params /
# 75.26G FLOPs); compare with retinanet_r101_coco.py.
_base_ = './retinanet_scconv_r50_coco.py'
model = dict(backbone=dict(depth=101))

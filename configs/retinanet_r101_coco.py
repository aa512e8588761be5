# Baseline: RetinaNet, ResNet-101, COCO val2017, the paper's schedule.
# The paper reports no COCO row for R101; this is the control for
# retinanet_scconv_r101_coco.py.
_base_ = './retinanet_r50_coco.py'
model = dict(backbone=dict(depth=101))

# Baseline: RetinaNet, ResNet-50, COCO val2017, the paper's schedule.
# Paper (SCConv, CVPR 2023, RetinaNet table, COCO val2017, row "R50"):
#   backbone 25.56M params / 63.09G FLOPs; AP50 54.2, AP75 37.4,
#   AP[.5:.95] 35.2.
_base_ = './_base_/retinanet_paper_coco.py'

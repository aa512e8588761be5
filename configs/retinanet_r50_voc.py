# Baseline: RetinaNet, ResNet-50, VOC07+12 -> VOC07 test, the paper's
# schedule. Paper (SCConv, CVPR 2023, RetinaNet table, VOC07+12, row "R50"):
#   backbone 25.56M params / 63.09G FLOPs; AP50 77.89, AP75 55.31,
#   AP[.5:.95] 52.26.
_base_ = './_base_/retinanet_paper_voc.py'

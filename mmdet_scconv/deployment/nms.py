"""``mmdet_scconv::nms``: greedy non-maximum suppression as a registered op
that exports to ONNX's ``NonMaxSuppression``.

The op, its PyTorch twin (what runs eagerly), its fake implementation (an
output of data-dependent length, for tracing) and its ONNX translation sit
side by side. No gradient: it only ever runs on detections.

The semantics are mmcv's ``nms`` and ONNX's (``center_point_box=0``): boxes
``(x1, y1, x2, y2)``, areas without the +1 offset, a box is dropped when its
IoU with a kept higher-scoring box is above ``iou_threshold``; only scores
above ``score_threshold`` take part; the kept indices come in descending
score order, at most ``max_boxes`` of them.
"""
import torch
from torch import Tensor


@torch.library.custom_op('mmdet_scconv::nms', mutates_args=())
def nms(boxes: Tensor, scores: Tensor, iou_threshold: float,
        score_threshold: float, max_boxes: int) -> Tensor:
    """Indices (int64) of the boxes kept, highest score first.

    Args:
        boxes (Tensor): ``(K, 4)`` boxes ``x1, y1, x2, y2``.
        scores (Tensor): ``(K,)`` scores.
        iou_threshold (float): Overlap above which the lower-scoring box
            goes.
        score_threshold (float): Only scores above it take part.
        max_boxes (int): At most this many indices.
    """
    candidates = torch.nonzero(scores > score_threshold).flatten()
    order = candidates[scores[candidates].argsort(
        descending=True, stable=True)]
    overlaps = box_iou(boxes[order], boxes[order]).cpu() > iou_threshold
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    kept = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        kept.append(i)
        if len(kept) == max_boxes:
            break
        suppressed |= overlaps[i]
    return order[kept]


@nms.register_fake
def _(boxes, scores, iou_threshold, score_threshold, max_boxes):
    count = torch.library.get_ctx().new_dynamic_size()
    return boxes.new_empty((count, ), dtype=torch.int64)


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU of every box of ``a`` with every box of ``b``, ``(len(a),
    len(b))``."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=2)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def nms_to_onnx(boxes, scores, iou_threshold: float, score_threshold: float,
                max_boxes: int):
    """The ONNX translation (onnxscript): one ``NonMaxSuppression`` of a
    single batch and class; its ``(K, 3)`` selection's box column."""
    from onnxscript import opset18 as op
    selected = op.NonMaxSuppression(
        op.Unsqueeze(boxes, [0]),
        op.Unsqueeze(scores, [0, 1]),
        op.Constant(value_ints=[max_boxes]),
        op.Constant(value_floats=[iou_threshold]),
        op.Constant(value_floats=[score_threshold]),
        center_point_box=0)
    return op.Reshape(op.Slice(selected, [2], [3], [1]), [-1])


#: What ``torch.onnx.export(custom_translation_table=...)`` needs for the op.
ONNX_TRANSLATIONS = {torch.ops.mmdet_scconv.nms.default: nms_to_onnx}

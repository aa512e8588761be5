"""What an exported detector computes: the head's raw outputs, or the
detections after the test config's score threshold and NMS, from the
preprocessed image tensor (the data preprocessor's output: normalised,
padded)."""
import torch
import torch.nn as nn

from .nms import nms


class RawOutputs(nn.Module):
    """``detector._forward`` as a flat tuple: the classification scores of
    every level, then the box deltas of every level.

    Args:
        detector (nn.Module): An mmdet single-stage detector.
    """

    def __init__(self, detector: nn.Module):
        super().__init__()
        self.detector = detector

    def output_names(self):
        """The exported graph's output names, in order."""
        levels = len(self.detector.bbox_head.prior_generator.strides)
        return ([f'cls_score_{i}' for i in range(levels)] +
                [f'bbox_pred_{i}' for i in range(levels)])

    def forward(self, image: torch.Tensor):
        cls_scores, bbox_preds = self.detector._forward(image)
        return (*cls_scores, *bbox_preds)


class Detections(nn.Module):
    """One image to detections, as mmdet's ``predict`` (``rescale=False``)
    makes them for a sigmoid-classifying dense head such as RetinaNet's:

    per level the ``nms_pre`` highest (anchor, class) scores, their boxes
    decoded by the head's coder and clipped to the image, boxes no larger
    than ``min_bbox_size`` dropped, then class-aware NMS (mmcv's
    ``batched_nms``: boxes offset by class) keeping ``max_per_img`` with
    scores above ``score_thr``.

    The image is the tensor the detector sees, so boxes are in its pixels
    and clipped to its size: give it an image whose padding is nil (sides
    multiples of the preprocessor's ``pad_size_divisor``) to match mmdet's
    clipping to the unpadded size exactly.

    Outputs ``dets`` ``(1, M, 5)`` (``x1, y1, x2, y2, score``, highest
    score first) and ``labels`` ``(1, M)``, as mmdeploy's end-to-end models
    do.

    Args:
        detector (nn.Module): An mmdet single-stage detector whose head
            classifies with a sigmoid.
        test_cfg (dict, optional): Overrides the head's ``test_cfg``.
    """

    def __init__(self, detector: nn.Module, test_cfg=None):
        super().__init__()
        head = detector.bbox_head
        if not getattr(head, 'use_sigmoid_cls', False):
            raise ValueError(
                f'Detections export needs a head that classifies with a '
                f'sigmoid (RetinaNet-like); {type(head).__name__} does not. '
                f'Export its raw outputs with --raw instead.')
        cfg = test_cfg if test_cfg is not None else head.test_cfg
        self.detector = detector
        self.num_classes = head.cls_out_channels
        self.nms_pre = cfg.get('nms_pre', -1)
        self.score_thr = float(cfg.get('score_thr', 0.0))
        self.iou_threshold = float(cfg['nms']['iou_threshold'])
        max_per_img = int(cfg.get("max_per_img", -1))
        self.max_per_img = max_per_img if max_per_img > 0 else 2**31 - 1
        self.min_bbox_size = cfg.get('min_bbox_size', -1)

    def output_names(self):
        """The exported graph's output names, in order."""
        return ['dets', 'labels']

    def candidates(self, image):
        """Per level's top ``nms_pre`` (anchor, class) pairs, decoded:
        ``(boxes, scores, labels)`` over all levels."""
        head = self.detector.bbox_head
        cls_scores, bbox_preds = self.detector._forward(image)
        anchors = head.prior_generator.grid_priors(
            [score.shape[-2:] for score in cls_scores],
            dtype=image.dtype,
            device=image.device)
        boxes, scores, labels = [], [], []
        for cls_score, bbox_pred, priors in zip(cls_scores, bbox_preds,
                                                anchors):
            level_scores = cls_score[0].permute(1, 2, 0).reshape(-1).sigmoid()
            deltas = bbox_pred[0].permute(1, 2, 0).reshape(-1, 4)
            if 0 < self.nms_pre:
                level_scores, pairs = level_scores.topk(
                    min(self.nms_pre, level_scores.shape[0]))
            else:
                pairs = torch.arange(
                    level_scores.shape[0], device=image.device)
            anchor = pairs // self.num_classes
            boxes.append(
                head.bbox_coder.decode(
                    priors[anchor], deltas[anchor],
                    max_shape=image.shape[-2:]))
            scores.append(level_scores)
            labels.append(pairs % self.num_classes)
        return torch.cat(boxes), torch.cat(scores), torch.cat(labels)

    def forward(self, image: torch.Tensor):
        boxes, scores, labels = self.candidates(image)
        valid = scores > self.score_thr
        if self.min_bbox_size >= 0:
            sizes = boxes[:, 2:] - boxes[:, :2]
            valid &= (sizes > self.min_bbox_size).all(dim=1)
        # mmcv's batched_nms: each class shifted beyond the largest valid
        # coordinate so that boxes of different classes never overlap.
        largest = torch.where(valid[:, None], boxes, 0).max()
        shifted = boxes + (labels.to(boxes) * (largest + 1))[:, None]
        keep = nms(shifted, torch.where(valid, scores, 0), self.iou_threshold,
                   self.score_thr, self.max_per_img)
        dets = torch.cat([boxes[keep], scores[keep, None]], dim=1)
        return dets[None], labels[keep][None]

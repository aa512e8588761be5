"""Exported detections against mmdet's own predictions on one image."""
from dataclasses import dataclass

import numpy as np
import torch


def preprocessed(detector, image_path: str):
    """``(inputs, data_sample)`` of one image file as mmdet's inference
    makes them: the config's test pipeline, then the data preprocessor
    (normalised, padded, batch of one)."""
    from mmcv.transforms import Compose
    from mmdet.utils import get_test_pipeline_cfg

    pipeline = Compose(get_test_pipeline_cfg(detector.cfg.copy()))
    sample = pipeline(dict(img_path=image_path, img_id=0))
    data = detector.data_preprocessor(
        dict(inputs=[sample['inputs']], data_samples=[sample['data_samples']]),
        False)
    return data['inputs'], data['data_samples'][0]


def mmdet_detections(detector, inputs, data_sample):
    """mmdet's ``predict`` without rescaling (boxes in ``inputs``' pixels):
    ``(boxes (M, 4), scores (M,), labels (M,))``."""
    with torch.no_grad():
        (result, ) = detector.predict(inputs, [data_sample], rescale=False)
    pred = result.pred_instances
    return pred.bboxes, pred.scores, pred.labels


@dataclass
class DetectionsParity:
    """How exported detections compare with mmdet's, matched in order."""
    count: int
    expected_count: int
    #: Largest ``|box - mmdet box|`` over the largest coordinate.
    box_difference: float
    score_difference: float
    same_labels: bool

    def ok(self, tolerance: float = 1e-3) -> bool:
        """Same count and labels, boxes and scores within ``tolerance``.

        Args:
            tolerance (float): Largest relative box difference and score
                difference accepted. Default: 1e-3.
        """
        return (self.count == self.expected_count and self.same_labels
                and self.box_difference <= tolerance
                and self.score_difference <= tolerance)

    def summary(self) -> str:
        return (f'{self.count} detections (mmdet: {self.expected_count}), '
                f'labels {"equal" if self.same_labels else "DIFFER"}, '
                f'max relative box difference {self.box_difference:.2e}, '
                f'score difference {self.score_difference:.2e}')


def compare_detections(dets, labels, expected) -> DetectionsParity:
    """Compare an exported model's ``dets`` ``(1, M, 5)`` and ``labels``
    ``(1, M)`` with ``expected = (boxes, scores, labels)`` from
    :func:`mmdet_detections`, detection by detection in score order."""
    boxes, scores = np.asarray(dets)[0, :, :4], np.asarray(dets)[0, :, 4]
    labels = np.asarray(labels)[0]
    want_boxes, want_scores, want_labels = (t.numpy() for t in expected)
    count = min(len(boxes), len(want_boxes))
    scale = max(float(np.abs(want_boxes).max(initial=0)), 1e-30)
    return DetectionsParity(
        count=len(boxes),
        expected_count=len(want_boxes),
        box_difference=float(
            np.abs(boxes[:count] - want_boxes[:count]).max(initial=0)) / scale,
        score_difference=float(
            np.abs(scores[:count] - want_scores[:count]).max(initial=0)),
        same_labels=bool((labels[:count] == want_labels[:count]).all()))

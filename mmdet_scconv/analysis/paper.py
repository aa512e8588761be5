"""The SCConv paper's RetinaNet results (CVPR 2023, RetinaNet table), as
printed, for the reports that put a run beside the paper's row."""
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class PaperRow:
    """One row of the paper's RetinaNet table.

    Args:
        dataset (str): ``'coco'`` (val2017) or ``'voc'`` (VOC07+12 train,
            VOC2007 test).
        backbone (str): ``'R50'``, ``'SCConv-R50'``, ``'R101'`` or
            ``'SCConv-R101'``.
        params (float): Backbone parameters as printed (with the ImageNet
            fc layer).
        flops (float): Backbone FLOPs as printed (input size not stated).
        ap (float), ap50 (float), ap75 (float): Box AP in percent.
    """
    dataset: str
    backbone: str
    params: float
    flops: float
    ap: float
    ap50: float
    ap75: float


PAPER_RETINANET = (
    PaperRow('voc', 'R50', 25.56e6, 63.09e9, 52.26, 77.89, 55.31),
    PaperRow('voc', 'SCConv-R50', 16.78e6, 41.36e9, 53.16, 78.68, 56.26),
    PaperRow('voc', 'R101', 44.55e6, 121.3e9, 53.32, 79.23, 56.31),
    PaperRow('voc', 'SCConv-R101', 27.90e6, 75.26e9, 54.12, 80.36, 57.05),
    PaperRow('coco', 'R50', 25.56e6, 63.09e9, 35.2, 54.2, 37.4),
    PaperRow('coco', 'SCConv-R50', 16.78e6, 41.36e9, 35.6, 55.1, 38.2),
)

DATASET_NAMES = {'coco': 'COCO val2017', 'voc': 'VOC2007 test'}


def paper_row(detector: str, dataset: Optional[str],
              backbone: str) -> Optional[PaperRow]:
    """The paper's row for a RetinaNet with ``backbone`` on ``dataset``, or
    None where the paper has none."""
    if detector != 'RetinaNet':
        return None
    for row in PAPER_RETINANET:
        if (row.dataset, row.backbone) == (dataset, backbone):
            return row
    return None

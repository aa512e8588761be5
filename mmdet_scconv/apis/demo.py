"""The embedded demo: shapes data, training and evaluation in one call."""
import time

from mmengine.logging import print_log

from ..datasets import make_shapes_dataset
from .runner import build_runner


def run_demo(cfg) -> dict:
    """Write the shapes set to ``cfg.data_root`` if absent, train, test.

    Args:
        cfg (Config): A loaded demo config (see ``configs/demo``).

    Returns:
        dict: The test metrics; mAP@.5 and mAP@[.5:.95] are also printed.
    """
    start = time.perf_counter()
    make_shapes_dataset(cfg.data_root)
    runner = build_runner(cfg, check_splits=('train', 'test'))
    runner.train()
    metrics = runner.test()
    minutes = (time.perf_counter() - start) / 60
    print_log(
        f'Demo result on the held-out split: '
        f'mAP@.5 = {metrics["coco/bbox_mAP_50"]:.3f}, '
        f'mAP@[.5:.95] = {metrics["coco/bbox_mAP"]:.3f} '
        f'(wall time {minutes:.1f} min)', logger='current')
    return metrics

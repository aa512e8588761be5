"""The embedded demo: shapes data, training and evaluation in one call, and
the same for SCConv-R50 against ResNet-50 with a report."""
import copy
import os.path as osp
import time

from mmengine.logging import print_log

from ..analysis import group_runs, load_run, write_report
from ..analysis.detections import draw_detections, first_predictions
from ..datasets import make_shapes_dataset
from .runner import build_runner

#: Held-out images pictured in the comparison's report.
PICTURED_IMAGES = 4


def _print_result(metrics, start, label='Demo result'):
    minutes = (time.perf_counter() - start) / 60
    if 'coco/bbox_mAP' in metrics:
        result = (f'mAP@.5 = {metrics["coco/bbox_mAP_50"]:.3f}, '
                  f'mAP@[.5:.95] = {metrics["coco/bbox_mAP"]:.3f}')
    else:  # CocoMetric logs an error and returns nothing
        result = ('no detections above the test score threshold (train '
                  'longer, or lower model.test_cfg.score_thr)')
    print_log(
        f'{label} on the held-out split: {result} (wall time '
        f'{minutes:.1f} min)',
        logger='current')


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
    _print_result(metrics, start)
    return metrics


def resnet_baseline(cfg):
    """A copy of an SCConvResNet config with mmdet's ResNet as backbone."""
    baseline = copy.deepcopy(cfg)
    backbone = baseline.model.backbone
    backbone.type = 'ResNet'
    for key in ('scconv_cfg', 'stage_with_scconv'):
        backbone.pop(key, None)
    return baseline


def _log_at_least_once(cfg):
    """A schedule shorter than the logger's interval would log no loss to
    compare: log every ``max_iters`` iterations then."""
    logger, max_iters = cfg.default_hooks.logger, cfg.train_cfg.max_iters
    if logger.get('interval', 10) > max_iters:
        print_log(
            f'Logging every {max_iters} iterations (the schedule is '
            f'shorter than the logger interval {logger.interval})',
            logger='current')
        logger.interval = max_iters


def run_comparison(cfg, seeds=None) -> str:
    """Train and test the demo's SCConv-R50 and ResNet-50 RetinaNets on the
    same data with the same schedule, in ``<work_dir>/scconv_r50`` and
    ``<work_dir>/r50`` (with ``seeds``: ``<work_dir>/scconv_r50_seed<K>``
    and ``<work_dir>/r50_seed<K>`` for each seed), then write
    ``<work_dir>/report.md``: the groups' table, differences, points and
    curves (:func:`..analysis.write_report`) and both models' detections on
    the same held-out images (of the first seed).

    Args:
        cfg (Config): A loaded demo config with an SCConvResNet backbone.
        seeds (Sequence[int], optional): Seeds to train each model with;
            default: the config's one run.

    Returns:
        str: The report's path.
    """
    make_shapes_dataset(cfg.data_root)
    root = cfg.work_dir
    models = (('scconv_r50', cfg), ('r50', resnet_baseline(cfg)))
    groups, predictions = {}, {}
    for name, model_cfg in models:
        for seed in seeds if seeds is not None else [None]:
            run_name = name if seed is None else f'{name}_seed{seed}'
            run_cfg = copy.deepcopy(model_cfg)
            if seed is not None:
                run_cfg.randomness = dict(
                    run_cfg.get('randomness', {}), seed=seed)
            runner = _train_and_test(run_cfg, root, run_name)
            groups.setdefault(name, []).append(run_cfg.work_dir)
            if name not in predictions:
                predictions[name] = first_predictions(runner, PICTURED_IMAGES)
    classes = cfg.test_dataloader.dataset.metainfo['classes']
    draw_detections(predictions, classes, osp.join(root, 'detections.png'))
    runs = [load_run(d) for dirs in groups.values() for d in dirs]
    pictured = '' if seeds is None else f' (seed {seeds[0]})'
    path = write_report(
        runs,
        root,
        groups=group_runs(runs, groups),
        extra=f'## Detections on held-out images\n\n'
        f'Boxes scoring at least 0.3{pictured}.\n\n'
        f'![detections](detections.png)')
    print_log(f'Comparison report: {path}', logger='current')
    return path


def _train_and_test(run_cfg, root, name):
    """Train and test one run of the comparison in ``root/name``; return
    its Runner."""
    start = time.perf_counter()
    run_cfg.work_dir = osp.join(root, name)
    # The Runner keeps one logger, message hub and visualizer per name: each
    # run needs its own, or a later one would log into an earlier's work dir.
    run_cfg.experiment_name = name
    if run_cfg.get('visualizer') is not None:
        run_cfg.visualizer.name = f'visualizer_{name}'
    _log_at_least_once(run_cfg)
    runner = build_runner(run_cfg, check_splits=('train', 'test'))
    runner.train()
    _print_result(runner.test(), start, label=name)
    return runner

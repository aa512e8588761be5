"""What ``tools/train.py``, ``tools/test.py`` and ``tools/demo.py`` do, as
functions: load a config, apply the command-line options, build the Runner.
"""
import os.path as osp

import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from ..engine import newest_complete_checkpoint
from .data_checks import check_dataloaders
from .data_files import require_clean_data


def load_config(config_path,
                cfg_options=None,
                work_dir=None,
                launcher='none') -> Config:
    """Load a config and apply the options every tool shares.

    Args:
        config_path (str): Config file.
        cfg_options (dict, optional): ``--cfg-options`` overrides.
        work_dir (str, optional): ``--work-dir``; defaults to the config's,
            else ``./work_dirs/<config name>``.
        launcher (str): ``none``, ``pytorch``, ``slurm`` or ``mpi``.
    """
    if not osp.isfile(config_path):
        raise FileNotFoundError(f'Config file not found: {config_path!r}.')
    cfg = Config.fromfile(config_path)
    cfg.launcher = launcher
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(config_path))[0])
    return cfg


def apply_train_options(cfg: Config,
                        amp=False,
                        auto_scale_lr=False,
                        resume=None) -> Config:
    """Apply ``--amp``, ``--auto-scale-lr`` and ``--resume`` like mmdet.

    Args:
        cfg (Config): The loaded config, changed in place.
        amp (bool): Mixed precision: mmdet's ``AmpOptimWrapper`` (fp16,
            dynamic loss scale) on CUDA; on a machine without CUDA, where
            that wrapper refuses to run, bf16 autocast through
            :class:`AutocastOptimWrapper`.
        auto_scale_lr (bool): Scale the lr by the actual total batch size
            against ``auto_scale_lr.base_batch_size``.
        resume (str, optional): ``'auto'`` for the newest complete
            checkpoint in the work dir, or a checkpoint path.
    """
    if amp and torch.cuda.is_available():
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    elif amp:
        print_log(
            '--amp without CUDA: training under bf16 autocast on the '
            'CPU (AutocastOptimWrapper)',
            logger='current')
        cfg.optim_wrapper.type = 'AutocastOptimWrapper'
        cfg.optim_wrapper.dtype = 'bfloat16'
    if auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise ValueError(
                '--auto-scale-lr needs auto_scale_lr.base_batch_size in the '
                'config, e.g. auto_scale_lr = dict(enable=False, '
                'base_batch_size=16).')
        cfg.auto_scale_lr.enable = True
    if resume == 'auto':
        # The newest complete checkpoint: a run killed while saving may
        # have left last_checkpoint naming a damaged one.
        latest = newest_complete_checkpoint(cfg.work_dir) if osp.isdir(
            cfg.work_dir) else None
        if latest is None:
            print_log(
                f'--resume: no complete checkpoint in {cfg.work_dir}; '
                f'training from the start.',
                logger='current')
        cfg.resume = latest is not None
        cfg.load_from = latest
    elif resume is not None:
        cfg.resume = True
        cfg.load_from = resume
    return cfg


def prepare_cpu_distributed(cfg: Config) -> None:
    """Make ``--launcher pytorch`` work on machines without CUDA.

    MMEngine 0.10.7's pytorch launcher calls ``torch.cuda.set_device`` and
    wraps the model with ``device_ids=[LOCAL_RANK]``, both CUDA-only. Here
    the process group is started with gloo from torchrun's environment (the
    Runner then skips its own start), and DDP gets ``device_ids=None``.

    Raises:
        ValueError: The config asks for ``sync_bn``, which torch's
            SyncBatchNorm cannot do on the CPU.
    """
    if cfg.get('launcher', 'none') != 'pytorch' or torch.cuda.is_available():
        return
    if cfg.get('sync_bn') is not None:
        raise ValueError(
            f'The config sets sync_bn={cfg.sync_bn!r}, but torch\'s '
            f'SyncBatchNorm runs only on GPUs and this machine has no CUDA. '
            f'To train on CPU processes, each normalising over its own '
            f'images, add --cfg-options sync_bn=None.')
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend='gloo')
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel',
        broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper


def build_runner(cfg: Config,
                 check_splits=('train', 'val'),
                 check_data=False) -> Runner:
    """Build the Runner (or ``cfg.runner_type``) after checking the data.

    Args:
        cfg (Config): A loaded config.
        check_splits (Sequence[str]): The dataloaders whose files must exist
            before anything is built: ``('train', 'val')`` to train,
            ``('test',)`` to test.
        check_data (bool): Also check every image and box of those splits
            (:func:`.data_files.require_clean_data`). Default: False.
    """
    check_dataloaders(cfg, check_splits)
    if check_data:
        require_clean_data(cfg, check_splits)
    prepare_cpu_distributed(cfg)
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)

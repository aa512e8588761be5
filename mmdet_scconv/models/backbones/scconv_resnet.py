"""SCConv-ResNet: mmdet's ResNet with SCConv as every bottleneck 3x3 conv."""
import warnings

import torch.nn as nn
from mmdet.models.backbones.resnet import Bottleneck, ResNet
from mmdet.models.layers import ResLayer
from mmdet.registry import MODELS
from mmengine.logging import print_log

from ...layers import SCConv, check_scconv_args, run_backbone
from .pretrained import load_pretrained

#: The SCConv options a config may set; the backbone fixes the others.
SCCONV_OPTIONS = ('alpha', 'squeeze_ratio', 'groups', 'gn_groups',
                  'gate_threshold', 'gate', 'impl')


def check_scconv_cfg(scconv_cfg) -> dict:
    """Return a copy of ``scconv_cfg`` after checking its keys.

    Raises:
        TypeError: ``scconv_cfg`` is not a dict.
        ValueError: A key is not an SCConv option the config may set.
    """
    if scconv_cfg is None:
        return {}
    if not isinstance(scconv_cfg, dict):
        raise TypeError(f'scconv_cfg must be a dict of SCConv options, got '
                        f'{type(scconv_cfg).__name__}: {scconv_cfg!r}.')
    unknown = sorted(set(scconv_cfg) - set(SCCONV_OPTIONS))
    if unknown:
        raise ValueError(
            f'scconv_cfg has unknown key(s) {unknown}; allowed: '
            f'{list(SCCONV_OPTIONS)}. Channels, kernel size, stride and '
            f'dilation come from the ResNet stage and cannot be set here.')
    return dict(scconv_cfg)


class SCConvBottleneck(Bottleneck):
    """ResNet bottleneck whose 3x3 ``conv2`` is an :class:`SCConv`.

    It keeps everything else of mmdet's ``Bottleneck`` (``style`` picks
    where the stride goes, plugins, ``with_cp``). With ``scconv_cfg=None``
    it is the plain bottleneck.

    Args:
        inplanes (int): Input channels.
        planes (int): Bottleneck width.
        scconv_cfg (dict, optional): SCConv options (see ``SCCONV_OPTIONS``),
            or None for a plain 3x3 conv. Default: None.
        **kwargs: The arguments of mmdet's ``Bottleneck``.
    """

    def __init__(self, inplanes, planes, scconv_cfg=None, **kwargs):
        super().__init__(inplanes, planes, **kwargs)
        self.with_scconv = scconv_cfg is not None
        if not self.with_scconv:
            return
        if self.with_dcn:
            raise ValueError(
                'A stage cannot use both DCN and SCConv for its 3x3 conv: set '
                'stage_with_dcn or stage_with_scconv to False for it.')
        self.conv2 = SCConv(
            planes,
            planes,
            kernel_size=3,
            stride=self.conv2_stride,
            dilation=self.dilation,
            **scconv_cfg)

    def switch_to_deploy(self):
        """Fold ``norm2`` into the SCConv ``conv2`` (inference only)."""
        if self.with_scconv:
            self.conv2.fuse_norm(self.norm2)
            setattr(self, self.norm2_name, nn.Identity())


@MODELS.register_module()
class SCConvResNet(ResNet):
    """SCConv-ResNet backbone (Li et al., CVPR 2023).

    mmdet's ``ResNet`` with every bottleneck 3x3 convolution replaced by
    :class:`SCConv` (the paper's placement); stems, 1x1 convolutions and
    shortcuts stay as they are. Every ``ResNet`` argument keeps its meaning.

    Args:
        depth (int): 50, 101 or 152.
        scconv_cfg (dict, optional): SCConv options for every replaced conv:
            ``alpha``, ``squeeze_ratio``, ``groups``, ``gn_groups``,
            ``gate_threshold``, ``gate``. Default: None (SCConv's defaults).
        stage_with_scconv (Sequence[bool], optional): Which stages use
            SCConv, one entry per stage (``num_stages``). Default: None (all
            stages).
        **kwargs: The arguments of mmdet's ``ResNet`` (``out_indices``,
            ``frozen_stages``, ``norm_cfg``, ``norm_eval``, ``style``,
            ``deep_stem``, ``avg_down``, ``dilations``, ``with_cp``,
            ``plugins``, ``init_cfg`` ...).

    Example:
        >>> import torch, mmdet_scconv
        >>> from mmdet.registry import MODELS
        >>> model = MODELS.build(dict(type='SCConvResNet', depth=50))
        >>> [o.shape[1] for o in model(torch.rand(1, 3, 64, 64))]
        [256, 512, 1024, 2048]
    """

    arch_settings = {
        50: (SCConvBottleneck, (3, 4, 6, 3)),
        101: (SCConvBottleneck, (3, 4, 23, 3)),
        152: (SCConvBottleneck, (3, 8, 36, 3)),
    }

    def __init__(self,
                 depth,
                 scconv_cfg=None,
                 stage_with_scconv=None,
                 **kwargs):
        if depth not in self.arch_settings:
            raise ValueError(
                f'SCConvResNet supports depth {sorted(self.arch_settings)} '
                f'(SCConv replaces the bottleneck 3x3 conv), got '
                f'depth={depth!r}.')
        num_stages = kwargs.get('num_stages', 4)
        if stage_with_scconv is None:
            stage_with_scconv = (True, ) * num_stages
        if len(stage_with_scconv) != num_stages:
            raise ValueError(
                f'stage_with_scconv needs one entry per stage '
                f'(num_stages={num_stages}), got {tuple(stage_with_scconv)}.')
        # Attributes set before ResNet.__init__, which builds the stages
        # through make_res_layer; every stage's SCConv is checked first.
        self.scconv_cfg = check_scconv_cfg(scconv_cfg)
        base_channels = kwargs.get('base_channels', 64)
        for stage, with_scconv in enumerate(stage_with_scconv):
            if with_scconv:
                width = base_channels * 2**stage
                check_scconv_args(width, width, **self.scconv_cfg)
        self.stage_with_scconv = tuple(stage_with_scconv)
        self._default_init = (
            kwargs.get('init_cfg') is None
            and kwargs.get('pretrained') is None)
        super().__init__(depth, **kwargs)

    def make_res_layer(self, **kwargs):
        # ResNet.__init__ appends each stage's name to res_layers after
        # building it, so its length is the index of the stage being built.
        stage = len(self.res_layers)
        scconv_cfg = self.scconv_cfg if self.stage_with_scconv[stage] else None
        if self._default_init and self.zero_init_residual:
            # ResNet zero-inits norm3 only for blocks that *are* its own
            # Bottleneck class; do the same for SCConvBottleneck.
            kwargs['init_cfg'] = dict(
                type='Constant', val=0, override=dict(name='norm3'))
        return ResLayer(scconv_cfg=scconv_cfg, **kwargs)

    def forward(self, x):
        """mmdet's ``ResNet.forward``; on the CPU compiled whole by inductor
        (see :func:`mmdet_scconv.layers.run_backbone`)."""
        return run_backbone(ResNet.forward, self, x)

    def switch_to_deploy(self):
        """Inference form, as mmcv/mmdet re-parameterised modules have it:
        every SCConv absorbs the BatchNorm that follows it (see
        :meth:`SCConv.fuse_norm`), which then becomes ``nn.Identity``.
        Irreversible; call it on a trained model in eval mode."""
        for layer_name in self.res_layers:
            for block in getattr(self, layer_name):
                block.switch_to_deploy()
        return self

    def init_weights(self):
        """Initialise; with ``init_cfg=dict(type='Pretrained', ...)`` load
        every checkpoint tensor whose name and shape match.

        The checkpoint may be a torchvision or mmdet ResNet (a path, a URL or
        a name such as ``torchvision://resnet50``; bare, wrapped in
        ``state_dict``, or a detector's ``backbone.*``). What it lacks, such
        as SCConv's weights, gets ResNet's scratch initialisation (Kaiming
        convolutions, unit norms) instead of PyTorch's default, and one
        summary line is logged instead of a line per tensor.

        Raises:
            ValueError: ``frozen_stages`` would freeze tensors the checkpoint
                does not have at their fresh initialisation.
        """
        init_cfg = self.init_cfg
        if not (isinstance(init_cfg, dict)
                and init_cfg.get('type') == 'Pretrained'):
            self._warn_frozen_from_scratch()
            super().init_weights()
            return
        checkpoint = init_cfg['checkpoint']
        summary = load_pretrained(self, checkpoint,
                                  init_cfg.get('map_location', 'cpu'))
        print_log(
            f'SCConvResNet: {summary.describe(checkpoint)}', logger='current')
        self._refuse_frozen_fresh_weights(summary.missing, checkpoint)
        if self.norm_eval and any(self.stage_with_scconv):
            warnings.warn(
                'SCConvResNet: norm_eval=True keeps, in the BatchNorm after '
                'each SCConv (norm2), the statistics the checkpoint has for '
                'the 3x3 convolution SCConv replaces; set norm_eval=False so '
                'that they follow SCConv\'s outputs (docs/usage.md, '
                '"Pretrained weights").')
        self._is_init = True

    def _frozen_prefixes(self, frozen_stages):
        """Name prefixes of the tensors ``frozen_stages`` freezes (as in
        ``ResNet._freeze_stages``)."""
        if frozen_stages < 0:
            return ()
        stem = ('stem.', ) if self.deep_stem else ('conv1.',
                                                   f'{self.norm1_name}.')
        return stem + tuple(f'layer{i}.' for i in range(1, frozen_stages + 1))

    def _refuse_frozen_fresh_weights(self, missing, checkpoint):
        fresh = [
            name for name in missing
            if not name.endswith('num_batches_tracked')
        ]
        frozen_fresh = [
            name for name in fresh
            if name.startswith(self._frozen_prefixes(self.frozen_stages))
        ]
        if not frozen_fresh:
            return
        allowed = max(
            stages for stages in range(-1, self.frozen_stages) if not any(
                name.startswith(self._frozen_prefixes(stages))
                for name in fresh))
        raise ValueError(
            f'SCConvResNet: frozen_stages={self.frozen_stages} would freeze '
            f'{len(frozen_fresh)} tensors that {checkpoint!r} does not have '
            f'(e.g. {frozen_fresh[0]}: an ImageNet ResNet has no weights for '
            f'SCConv) at their fresh initialisation. Set frozen_stages='
            f'{allowed} or lower, or start from a checkpoint that has them.')

    def _warn_frozen_from_scratch(self):
        untrained = []
        if self.frozen_stages >= 0:
            frozen = ('the stem' if self.frozen_stages == 0 else
                      'the stem and stage 1' if self.frozen_stages == 1 else
                      f'the stem and stages 1-{self.frozen_stages}')
            untrained.append(f'frozen_stages={self.frozen_stages} keeps '
                             f'{frozen} at their random initialisation')
        if self.norm_eval:
            untrained.append('norm_eval=True keeps every BatchNorm at its '
                             'initial statistics (mean 0, variance 1)')
        if untrained:
            warnings.warn(
                f'SCConvResNet starts from scratch (no Pretrained init_cfg), '
                f'but {" and ".join(untrained)}. Unless load_from or '
                f'--resume brings trained weights, set frozen_stages=-1 and '
                f'norm_eval=False, as the paper configs do, or start from '
                f'ImageNet weights (docs/usage.md, "Pretrained weights").')

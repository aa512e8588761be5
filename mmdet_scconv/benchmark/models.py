"""The models the benchmark compares, for the ``trunk`` and ``detector``
scopes. ``trunk`` needs torch only; ``detector`` needs mmdet."""
import copy

import torch
import torch.nn as nn

from ..layers import set_scconv_impl
from .trunk import ConvNorm, ResNetTrunk, layer_label, scconv_layer_shapes


def trunk_loss(model, batch):
    return sum(out.float().mean() for out in model(batch))


def layer_loss(model, batch):
    return model(batch).float().mean()


def scconv_variants(scconv, depth, impls, backbone_of=lambda m: m):
    """One copy of ``scconv`` per impl: an SCConv impl (``'fast'``,
    ``'triton'``, ``'torch'``, ``'reference'``), or ``'deploy'`` (fast, with
    the BatchNorms folded in; inference only)."""
    models = {}
    for impl in impls:
        model = copy.deepcopy(scconv)
        set_scconv_impl(model, 'fast' if impl == 'deploy' else impl)
        if impl == 'deploy':
            model.eval()
            backbone_of(model).switch_to_deploy()
        models[f'scconv{depth}-{impl}'] = model
    return models


def trunk_models(depth, impls):
    """``resnet<depth>`` and the SCConv variants, sharing their weights."""
    return {
        f'resnet{depth}': ResNetTrunk(depth),
        **scconv_variants(ResNetTrunk(depth, scconv_cfg={}), depth, impls)
    }


def layer_suites(depth, impls, batch, height, width, device):
    """For each distinct SCConv input of the trunk (``scconv_layer_shapes``):
    a label, ``conv3x3`` (the 3x3 convolution and BatchNorm that SCConv
    replaces) and the SCConv variants (each with its BatchNorm), and an
    input batch."""
    suites = []
    for shape in scconv_layer_shapes(depth, height, width):
        _, channels, h, w, stride, _ = shape
        models = {
            'conv3x3': ConvNorm(channels, stride),
            **scconv_variants(ConvNorm(channels, stride, {}), depth, impls)
        }
        suites.append((layer_label(*shape), models,
                       torch.randn(batch, channels, h, w, device=device)))
    return suites


class DetectorStep(nn.Module):
    """Calls a RetinaNet like the benchmark calls a trunk: ``forward`` is
    the network's raw outputs (``mode='tensor'``, no NMS), ``loss`` the
    training loss."""

    def __init__(self, detector):
        super().__init__()
        self.detector = detector

    def forward(self, batch):
        return self.detector(
            batch['inputs'], batch['data_samples'], mode='tensor')

    def loss(self, batch):
        losses = self.detector.loss(batch['inputs'], batch['data_samples'])
        return sum(
            v if torch.is_tensor(v) else sum(v) for k, v in losses.items()
            if 'loss' in k)


def detector_loss(model, batch):
    return model.loss(batch)


def detector_models(depth, impls, config_dir):
    """RetinaNet-R<depth> and SCConv-R<depth> from the project's configs."""
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import mmdet_scconv  # noqa: F401  (registers SCConvResNet)

    init_default_scope('mmdet')

    def build(name):
        cfg = Config.fromfile(f'{config_dir}/{name}')
        return DetectorStep(MODELS.build(cfg.model))

    resnet = build(f'retinanet_r{depth}_coco.py')
    scconv = build(f'retinanet_scconv_r{depth}_coco.py')
    variants = scconv_variants(scconv, depth, impls,
                               lambda m: m.detector.backbone)
    return {f'resnet{depth}': resnet, **variants}


def detector_batch(batch_size, height, width, device):
    """A random batch with three boxes per image, already preprocessed."""
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    generator = torch.Generator().manual_seed(0)
    samples = []
    for _ in range(batch_size):
        sample = DetDataSample(
            metainfo=dict(
                img_shape=(height, width),
                pad_shape=(height, width),
                batch_input_shape=(height, width),
                scale_factor=(1.0, 1.0),
                ori_shape=(height, width)))
        xy = torch.rand(
            3, 2, generator=generator) * torch.tensor(
                [width * 0.6, height * 0.6])
        wh = 32 + torch.rand(3, 2, generator=generator) * 128
        sample.gt_instances = InstanceData(
            bboxes=torch.cat([xy, xy + wh], 1).to(device),
            labels=torch.randint(0, 80, (3, ), generator=generator).to(device))
        samples.append(sample)
    inputs = torch.randn(batch_size, 3, height, width, generator=generator)
    return dict(inputs=inputs.to(device), data_samples=samples)

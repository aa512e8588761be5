"""Load ImageNet ResNet weights into an SCConvResNet, with one summary.

A torchvision or mmdet ResNet checkpoint shares every name with
SCConvResNet except the bottleneck ``conv2`` that SCConv replaces. Loading
it with ``strict=False`` would log hundreds of per-tensor lines; here every
tensor whose name and shape match is loaded and one summary says what was
loaded, what is newly initialised and what the checkpoint had to spare.
"""
from collections import OrderedDict
from dataclasses import dataclass, field

import torch
import torch.nn as nn
from mmengine.model import constant_init, kaiming_init
from mmengine.runner.checkpoint import CheckpointLoader

_WRAPPER_KEYS = ('state_dict', 'model')
_PREFIXES = ('module.', 'backbone.')


@dataclass
class MatchSummary:
    """What :func:`match_state_dict` found.

    Args:
        loaded (list[str]): Names taken from the checkpoint.
        missing (list[str]): Model names the checkpoint lacks (or has with
            another shape); they keep their fresh initialisation.
        unexpected (list[str]): Checkpoint names the model has no use for.
        mismatched (list[str]): Names present on both sides with different
            shapes.
    """
    loaded: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    unexpected: list = field(default_factory=list)
    mismatched: list = field(default_factory=list)

    def describe(self, source: str) -> str:
        """One short paragraph for the log."""

        def sample(names):
            shown = ', '.join(names[:4])
            more = f', ... (+{len(names) - 4})' if len(names) > 4 else ''
            return f' [{shown}{more}]' if names else ''

        return (f'Loaded {len(self.loaded)} tensors from {source}; newly '
                f'initialised {len(self.missing)}{sample(self.missing)}; '
                f'unexpected {len(self.unexpected)}'
                f'{sample(self.unexpected)}; shape mismatch '
                f'{len(self.mismatched)}{sample(self.mismatched)}.')


def unwrap_state_dict(checkpoint) -> OrderedDict:
    """Return the backbone state dict inside a loaded checkpoint.

    Accepts a bare state dict or one wrapped in ``state_dict``/``model``,
    with or without the ``module.`` (DDP) and ``backbone.`` (detector)
    prefixes; of a detector checkpoint only the backbone is kept.
    """
    for key in _WRAPPER_KEYS:
        if isinstance(checkpoint, dict) and isinstance(
                checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    if not isinstance(checkpoint, dict):
        raise TypeError(f'Expected a state dict, got '
                        f'{type(checkpoint).__name__}.')
    state = OrderedDict(checkpoint)
    for prefix in _PREFIXES:
        if state and any(k.startswith(prefix) for k in state):
            state = OrderedDict((k[len(prefix):], v) for k, v in state.items()
                                if k.startswith(prefix))
    return state


def match_state_dict(model_state, checkpoint_state):
    """Split ``checkpoint_state`` by what ``model_state`` can take.

    Returns:
        tuple[OrderedDict, MatchSummary]: The tensors to load and a summary.
    """
    summary = MatchSummary()
    kept = OrderedDict()
    for name, value in checkpoint_state.items():
        if name not in model_state:
            summary.unexpected.append(name)
        elif tuple(model_state[name].shape) != tuple(value.shape):
            summary.mismatched.append(name)
        else:
            kept[name] = value
            summary.loaded.append(name)
    summary.missing = [n for n in model_state if n not in kept]
    return kept, summary


def fresh_init(module: nn.Module) -> None:
    """ResNet's own scratch initialisation: Kaiming (fan_out) for every
    convolution, SCConv's included, and weight 1 / bias 0 for norms."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            kaiming_init(m, mode='fan_out', nonlinearity='relu')
        elif isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm)):
            constant_init(m, 1)


def load_pretrained(module: nn.Module,
                    checkpoint: str,
                    map_location='cpu') -> MatchSummary:
    """Initialise ``module`` freshly, then load every tensor of the
    checkpoint whose name and shape match.

    Args:
        module (nn.Module): The backbone.
        checkpoint (str): A local path, a URL or a model-zoo name such as
            ``torchvision://resnet50`` (downloaded into torch.hub's cache).
        map_location: As for ``torch.load``.
    """
    state = unwrap_state_dict(
        CheckpointLoader.load_checkpoint(checkpoint, map_location))
    kept, summary = match_state_dict(module.state_dict(), state)
    fresh_init(module)
    module.load_state_dict(kept, strict=False)
    return summary


def convert_resnet_checkpoint(src: str, dst: str, backbone: nn.Module):
    """Write the tensors of ResNet checkpoint ``src`` that ``backbone`` can
    use to ``dst`` as ``{'state_dict': ..., 'meta': ...}``, ready for
    ``init_cfg=dict(type='Pretrained', checkpoint=dst)``.

    Returns:
        MatchSummary: What was kept and what was left out.
    """
    state = unwrap_state_dict(CheckpointLoader.load_checkpoint(src, 'cpu'))
    kept, summary = match_state_dict(backbone.state_dict(), state)
    torch.save(
        dict(
            state_dict=kept,
            meta=dict(source=str(src), converter='mmdet_scconv')), dst)
    return summary

"""Pretrained loading, converter tool, safe and unsafe checkpoint files."""
import functools
import os.path as osp
import warnings

import pytest
import torch
from mmdet.registry import MODELS
from tiny import run_tool

import mmdet_scconv  # noqa: F401
from mmdet_scconv.engine import CheckpointLoadError, load_local_checkpoint
from mmdet_scconv.engine.checkpoint import TRUSTED_ENV
from mmdet_scconv.layers import SCConv
from mmdet_scconv.models.backbones import scconv_resnet


@pytest.fixture(scope='module')
def resnet_state():
    """A torchvision-layout ResNet-50 state dict (mmdet's ResNet uses the
    same names), plus the ImageNet fc."""
    resnet = MODELS.build(dict(type='ResNet', depth=50))
    state = resnet.state_dict()
    state['fc.weight'] = torch.randn(1000, 2048)
    state['fc.bias'] = torch.randn(1000)
    return state


def build_scconv_r50(checkpoint, **settings):
    return MODELS.build(
        dict(
            type='SCConvResNet',
            depth=50,
            init_cfg=dict(type='Pretrained', checkpoint=checkpoint),
            **settings))


@pytest.mark.parametrize('layout', ['bare', 'state_dict', 'detector'])
def test_pretrained_loads_matching_tensors(tmp_path, resnet_state, layout,
                                           monkeypatch):
    logged = []
    monkeypatch.setattr(scconv_resnet, 'print_log',
                        lambda msg, **kwargs: logged.append(msg))
    payload = {
        'bare': resnet_state,
        'state_dict': {
            'state_dict': resnet_state,
            'meta': {}
        },
        'detector': {
            'state_dict': {
                f'backbone.{k}': v
                for k, v in resnet_state.items()
            }
        },
    }[layout]
    path = str(tmp_path / 'resnet50.pth')
    torch.save(payload, path)
    model = build_scconv_r50(path)
    model.init_weights()
    state = model.state_dict()
    for name in ('conv1.weight', 'layer3.4.conv1.weight', 'layer4.2.bn3.bias',
                 'layer2.0.downsample.0.weight', 'layer1.0.bn2.running_var'):
        assert torch.equal(state[name], resnet_state[name])
    # What the checkpoint lacks is initialised like ResNet's scratch init:
    # unit GroupNorm scale, Kaiming fan_out convolutions (not PyTorch's
    # default kaiming_uniform with a=sqrt(5), whose std is far smaller).
    scconv = model.layer3[1].conv2
    assert torch.all(scconv.sru.gn.weight == 1)
    gwc = scconv.cru.gwc.weight
    fan_out = gwc.shape[0] * gwc.shape[2] * gwc.shape[3]
    assert gwc.std().item() == pytest.approx((2 / fan_out)**0.5, rel=0.1)
    assert len(logged) == 1 and logged[0].startswith('SCConvResNet: Loaded')
    assert 'unexpected 18' in logged[0]  # 16 replaced conv2 + fc
    assert 'newly initialised 112' in logged[0]  # 16 SCConvs x 7 tensors


def test_missing_checkpoint_names_the_file(tmp_path):
    path = str(tmp_path / 'nope.pth')
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        build_scconv_r50(path).init_weights()


def test_corrupt_checkpoint_names_the_file(tmp_path):
    path = tmp_path / 'corrupt.pth'
    path.write_bytes(b'PK\x03\x04 definitely not a checkpoint' * 10)
    with pytest.raises(CheckpointLoadError, match='corrupt.pth.*truncated'):
        build_scconv_r50(str(path)).init_weights()


def test_unsafe_checkpoint_needs_an_explicit_opt_in(tmp_path, monkeypatch):
    path = str(tmp_path / 'unsafe.pth')
    torch.save({
        'state_dict': {},
        'hook': functools.partial(print, 'hi')
    }, path)
    with pytest.raises(CheckpointLoadError) as error:
        load_local_checkpoint(path)
    message = str(error.value)
    assert 'unsafe.pth' in message and TRUSTED_ENV in message
    assert 'functools.partial' in message
    monkeypatch.setenv(TRUSTED_ENV, path)
    assert isinstance(load_local_checkpoint(path)['hook'], functools.partial)


def test_converter_tool(tmp_path, resnet_state):
    src, dst = str(tmp_path / 'tv.pth'), str(tmp_path / 'scconv.pth')
    torch.save(resnet_state, src)
    result = run_tool('tools/model_converters/torchvision_to_scconv.py', src,
                      dst, '--depth', '50')
    assert 'Kept 302 tensors' in result.stdout
    assert 'fc.weight' in result.stdout
    converted = torch.load(dst, weights_only=True)['state_dict']
    assert 'layer1.0.conv2.weight' not in converted
    model = build_scconv_r50(dst)
    model.init_weights()
    assert torch.equal(model.state_dict()['layer4.0.conv3.weight'],
                       resnet_state['layer4.0.conv3.weight'])
    assert isinstance(model.layer4[0].conv2, SCConv)
    assert osp.getsize(dst) > 0


def save_resnet(tmp_path, state):
    path = str(tmp_path / 'imagenet_r50.pth')
    torch.save(state, path)
    return path


def test_frozen_stages_never_freeze_fresh_scconv_weights(
        tmp_path, resnet_state):
    path = save_resnet(tmp_path, resnet_state)
    model = build_scconv_r50(path, frozen_stages=1)
    with pytest.raises(ValueError) as error:
        model.init_weights()
    message = str(error.value)
    assert 'frozen_stages=1 would freeze 21 tensors' in message
    assert path in message and 'layer1.0.conv2.' in message
    assert 'Set frozen_stages=0 or lower' in message


def test_imagenet_recipe_freezes_only_the_loaded_stem(tmp_path, resnet_state):
    path = save_resnet(tmp_path, resnet_state)
    model = build_scconv_r50(path, frozen_stages=0, norm_eval=False)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        model.init_weights()
    model.train()
    assert not model.conv1.weight.requires_grad
    assert torch.equal(model.conv1.weight, resnet_state['conv1.weight'])
    assert model.layer1[0].conv2.cru.gwc.weight.requires_grad
    assert model.layer1[0].bn2.training


def test_frozen_stages_with_a_checkpoint_that_has_everything(tmp_path):
    """Freezing is fine where every frozen tensor comes from the checkpoint
    (here an SCConvResNet's own)."""
    trained = MODELS.build(dict(type='SCConvResNet', depth=50))
    path = save_resnet(tmp_path, {'state_dict': trained.state_dict()})
    model = build_scconv_r50(path, frozen_stages=2)
    model.init_weights()
    assert not model.layer2[0].conv2.cru.gwc.weight.requires_grad


@pytest.mark.parametrize(
    'settings, named',
    [(dict(frozen_stages=1, norm_eval=False), ['frozen_stages=1']),
     (dict(frozen_stages=-1, norm_eval=True), ['norm_eval=True']),
     (dict(), ['norm_eval=True'])])  # mmdet's ResNet defaults
def test_frozen_from_scratch_is_warned_about(settings, named):
    model = MODELS.build(dict(type='SCConvResNet', depth=50, **settings))
    with pytest.warns(UserWarning, match='starts from scratch') as record:
        model.init_weights()
    message = str(record[0].message)
    for name in named:
        assert name in message
    assert 'frozen_stages=-1 and norm_eval=False' in message


def test_paper_settings_from_scratch_warn_nothing():
    model = MODELS.build(
        dict(type='SCConvResNet', depth=50, frozen_stages=-1, norm_eval=False))
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        model.init_weights()

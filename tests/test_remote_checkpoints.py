"""Checkpoints from URLs and model zoos: real downloads from an HTTP server
on 127.0.0.1, into torch.hub's cache, then the checks of local files."""
import functools
import http.server
import json
import os
import socket
import threading

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.runner import load_checkpoint

import mmdet_scconv  # noqa: F401
from mmdet_scconv.engine import CheckpointLoadError
from mmdet_scconv.engine.checkpoint import TRUSTED_ENV
from mmdet_scconv.engine.remote_checkpoint import (TIMEOUT_ENV,
                                                   cached_checkpoint_path)
from mmdet_scconv.models.backbones import scconv_resnet


class CheckpointServer(http.server.ThreadingHTTPServer):
    """Serves the files of a directory and counts the requests per path."""

    def __init__(self, directory):
        self.requests = []
        handler = functools.partial(_CountingHandler, directory=directory)
        super().__init__(('127.0.0.1', 0), handler)

    def url(self, name):
        return f'http://127.0.0.1:{self.server_address[1]}/{name}'


class _CountingHandler(http.server.SimpleHTTPRequestHandler):

    def do_GET(self):
        self.server.requests.append(self.path)
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A live HTTP server over ``tmp_path / 'served'``, with torch.hub's
    cache under ``tmp_path / 'torch_home'``."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    served = tmp_path / 'served'
    served.mkdir()
    httpd = CheckpointServer(str(served))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.root = served
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope='module')
def resnet_state():
    """A torchvision-layout ResNet-50 state dict (mmdet's names)."""
    return MODELS.build(dict(type='ResNet', depth=50)).state_dict()


def serve(server, name, payload):
    torch.save(payload, str(server.root / name))
    return server.url(name)


def test_url_downloads_once_into_the_hub_cache(server, resnet_state):
    url = serve(server, 'resnet50-0123abcd.pth', resnet_state)
    model = MODELS.build(dict(type='ResNet', depth=50))
    load_checkpoint(model, url, map_location='cpu')
    cached = cached_checkpoint_path(url)
    assert cached == os.path.join(os.environ['TORCH_HOME'], 'hub',
                                  'checkpoints', 'resnet50-0123abcd.pth')
    assert os.path.isfile(cached)
    assert torch.equal(model.state_dict()['layer2.1.conv2.weight'],
                       resnet_state['layer2.1.conv2.weight'])
    # The cached file is reused: no second request, even with the server
    # gone.
    server.shutdown()
    load_checkpoint(model, url, map_location='cpu')
    assert server.requests == ['/resnet50-0123abcd.pth']


def test_pretrained_url_on_scconv_and_plain_resnet(server, resnet_state,
                                                   monkeypatch):
    logged = []
    monkeypatch.setattr(scconv_resnet, 'print_log',
                        lambda msg, **kwargs: logged.append(msg))
    url = serve(server, 'resnet50.pth', {'state_dict': resnet_state})
    init_cfg = dict(type='Pretrained', checkpoint=url)
    scconv = MODELS.build(
        dict(type='SCConvResNet', depth=50, init_cfg=init_cfg))
    scconv.init_weights()
    assert len(logged) == 1
    assert logged[0].startswith(f'SCConvResNet: Loaded 302 tensors from '
                                f'{url}; newly initialised 112')
    # The same URL on mmdet's own ResNet, in the same process: loaded by
    # mmengine's PretrainedInit as stock mmengine loads it.
    resnet = MODELS.build(dict(type='ResNet', depth=50, init_cfg=init_cfg))
    resnet.init_weights()
    for name, value in resnet_state.items():
        assert torch.equal(resnet.state_dict()[name], value), name
    assert torch.equal(scconv.state_dict()['layer3.2.conv3.weight'],
                       resnet_state['layer3.2.conv3.weight'])
    assert server.requests == ['/resnet50.pth']


def test_open_mmlab_name_resolves_to_a_url(server, resnet_state, tmp_path,
                                           monkeypatch):
    url = serve(server, 'r50_zoo.pth', resnet_state)
    home = tmp_path / 'mmengine_home'
    home.mkdir()
    (home / 'open_mmlab.json').write_text(json.dumps({'r50_test': url}))
    monkeypatch.setenv('MMENGINE_HOME', str(home))
    model = MODELS.build(dict(type='ResNet', depth=50))
    load_checkpoint(model, 'open-mmlab://r50_test', map_location='cpu')
    assert torch.equal(model.state_dict()['conv1.weight'],
                       resnet_state['conv1.weight'])
    with pytest.raises(CheckpointLoadError, match="Unknown model 'r5'"):
        load_checkpoint(model, 'open-mmlab://r5')


def test_damaged_download_is_named_and_removed(server, resnet_state):
    url = serve(server, 'cut.pth', resnet_state)
    path = server.root / 'cut.pth'
    path.write_bytes(path.read_bytes()[:-1000])  # served whole, but cut
    with pytest.raises(CheckpointLoadError) as error:
        load_checkpoint(torch.nn.Linear(1, 1), url)
    message = str(error.value)
    assert url in message and 'is truncated' in message
    assert 'removed' in message
    assert not os.path.exists(cached_checkpoint_path(url))


def test_downloaded_unsafe_checkpoint_is_refused(server):
    url = serve(server, 'unsafe.pth', {'hook': functools.partial(print)})
    with pytest.raises(CheckpointLoadError) as error:
        load_checkpoint(torch.nn.Linear(1, 1), url)
    assert cached_checkpoint_path(url) in str(error.value)
    assert TRUSTED_ENV in str(error.value)


def test_missing_url_names_the_url_the_reason_and_the_fix(server):
    url = server.url('nope.pth')
    with pytest.raises(CheckpointLoadError) as error:
        load_checkpoint(torch.nn.Linear(1, 1), url)
    message = str(error.value)
    assert f"Cannot download checkpoint '{url}'" in message
    assert 'HTTP 404' in message and 'local path' in message
    assert cached_checkpoint_path(url) in message
    assert not os.listdir(os.path.dirname(cached_checkpoint_path(url)))


def test_refused_connection(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(('127.0.0.1', 0))
        port = probe.getsockname()[1]
    with pytest.raises(CheckpointLoadError, match='connection was refused'):
        load_checkpoint(
            torch.nn.Linear(1, 1), f'http://127.0.0.1:{port}/r50.pth')


def test_silent_server_times_out(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    monkeypatch.setenv(TIMEOUT_ENV, '0.5')
    with socket.create_server(('127.0.0.1', 0)) as silent:
        url = f'http://127.0.0.1:{silent.getsockname()[1]}/r50.pth'
        with pytest.raises(
                CheckpointLoadError, match='no answer within 0.5 s'):
            load_checkpoint(torch.nn.Linear(1, 1), url)


@pytest.mark.parametrize('value', ['0', 'soon'])
def test_bad_timeout_setting(tmp_path, monkeypatch, value):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    monkeypatch.setenv(TIMEOUT_ENV, value)
    with pytest.raises(ValueError, match=f'{TIMEOUT_ENV} must be'):
        load_checkpoint(torch.nn.Linear(1, 1), 'http://127.0.0.1:9/x.pth')


def test_torchvision_name_needs_torchvision():
    try:
        import torchvision  # noqa: F401
        pytest.skip('torchvision is installed: the name resolves')
    except ImportError:
        pass
    with pytest.raises(
            CheckpointLoadError, match='torchvision, which is not installed'):
        load_checkpoint(torch.nn.Linear(1, 1), 'torchvision://resnet50')

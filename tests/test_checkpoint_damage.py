"""Every damaged checkpoint fails with ``CheckpointLoadError`` naming the
file and what looks wrong, wherever it is loaded: mmengine's
``load_checkpoint``, ``init_cfg=Pretrained``, ``load_from`` (tools/test.py),
``--resume`` (tools/train.py) and the converter tool."""
import contextlib
import os
import shutil
import tempfile

import numpy as np
import pytest
import torch
from mmdet.registry import MODELS
from mmengine.runner import load_checkpoint, save_checkpoint
from tiny import run_tool, write_tiny

import mmdet_scconv  # noqa: F401
from mmdet_scconv.engine import CheckpointLoadError, load_local_checkpoint


@pytest.fixture(scope='module')
def saved(tmp_path_factory):
    """A real mmengine checkpoint of a small model and its bytes."""
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU())
    path = tmp_path_factory.mktemp('ckpt') / 'good.pth'
    save_checkpoint(
        dict(state_dict=model.state_dict(), meta=dict(iter=4)), str(path))
    return model, path.read_bytes()


def _offsets(size):
    """Truncation points: the first bytes, every ~1/50 of the file and the
    last bytes (the zip archive's end record)."""
    points = set(range(0, 64, 7)) | set(range(64, size, max(1, size // 50)))
    return sorted(points | {size - 23, size - 22, size - 21, size - 1})


def test_truncation_at_any_byte_names_the_file(tmp_path, saved):
    model, data = saved
    path = tmp_path / 'cut.pth'
    for offset in _offsets(len(data)):
        path.write_bytes(data[:offset])
        with pytest.raises(CheckpointLoadError, match='cut.pth') as error:
            load_local_checkpoint(str(path))
        assert any(
            word in str(error.value)
            for word in ('truncated', 'empty')), (offset, error.value)
        # The same through mmengine's own loader.
        with pytest.raises(CheckpointLoadError, match='cut.pth'):
            load_checkpoint(model, str(path))
    path.write_bytes(data)
    assert load_local_checkpoint(str(path))['meta'] == dict(iter=4)


def test_damaged_bytes_fail_their_crc(tmp_path, saved):
    _, data = saved
    damaged = bytearray(data)
    middle = len(data) // 2
    damaged[middle:middle + 16] = bytes(16)
    path = tmp_path / 'rot.pth'
    path.write_bytes(bytes(damaged))
    with pytest.raises(CheckpointLoadError, match='rot.pth.*CRC'):
        load_local_checkpoint(str(path))


@pytest.mark.parametrize('kind, content, says', [
    ('empty', b'', 'empty'),
    ('text', b'not a checkpoint\n' * 8, 'text'),
    ('random',
     bytes(np.random.default_rng(0).integers(
         0, 256, 4096, dtype=np.uint8)), 'unknown bytes'),
    ('pickle', b'\x80\x04garbage', 'corrupt'),
])
def test_files_that_are_not_checkpoints(tmp_path, kind, content, says):
    path = tmp_path / f'{kind}.pth'
    path.write_bytes(content)
    with pytest.raises(CheckpointLoadError, match=f'{kind}.pth.*{says}'):
        load_local_checkpoint(str(path))


def test_numpy_file_and_directory(tmp_path):
    np.save(tmp_path / 'weights.npy', np.zeros(3))
    with pytest.raises(CheckpointLoadError, match='weights.npy.*NumPy'):
        load_local_checkpoint(str(tmp_path / 'weights.npy'))
    (tmp_path / 'dir.pth').mkdir()
    with pytest.raises(CheckpointLoadError, match='dir.pth.*directory'):
        load_local_checkpoint(str(tmp_path / 'dir.pth'))
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        load_local_checkpoint(str(tmp_path / 'missing.pth'))


@contextlib.contextmanager
def _unprivileged():
    """Root reads files whatever their mode: act as ``nobody`` meanwhile."""
    if os.geteuid() != 0:
        yield
        return
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)


def test_unreadable_file(saved):
    # A folder every user may enter, so that only the file's mode stops
    # the read.
    folder = tempfile.mkdtemp()
    os.chmod(folder, 0o755)
    path = os.path.join(folder, 'locked.pth')
    with open(path, 'wb') as f:
        f.write(saved[1])
    os.chmod(path, 0)
    try:
        with _unprivileged(), pytest.raises(
                CheckpointLoadError, match='locked.pth.*permission'):
            load_local_checkpoint(path)
    finally:
        shutil.rmtree(folder)


def test_pretrained_init_cfg(tmp_path, saved):
    path = tmp_path / 'backbone.pth'
    path.write_bytes(saved[1][:len(saved[1]) // 3])
    model = MODELS.build(
        dict(
            type='SCConvResNet',
            depth=50,
            init_cfg=dict(type='Pretrained', checkpoint=str(path))))
    with pytest.raises(CheckpointLoadError, match='backbone.pth.*truncated'):
        model.init_weights()


def test_tools_name_the_damaged_file(tmp_path, saved):
    config = write_tiny(tmp_path, 'coco', 'retinanet_scconv_r50_coco.py')
    damaged = tmp_path / 'iter_4.pth'
    damaged.write_bytes(saved[1][:len(saved[1]) // 2])
    runs = {
        'load_from': ('tools/test.py', config, str(damaged), '--work-dir',
                      str(tmp_path / 'test')),
        '--resume':
        ('tools/train.py', config, '--resume', str(damaged), '--work-dir',
         str(tmp_path / 'train')),
        'converter': ('tools/model_converters/torchvision_to_scconv.py',
                      str(damaged), str(tmp_path / 'out.pth')),
    }
    for where, args in runs.items():
        result = run_tool(*args, check=False)
        assert result.returncode != 0, where
        assert 'CheckpointLoadError' in result.stderr, (where,
                                                        result.stderr[-2000:])
        assert f"'{damaged}' is truncated" in result.stderr, where

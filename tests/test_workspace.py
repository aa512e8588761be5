"""The kernels' reused scratch buffers: keyed safely, bounded."""
import pytest
import torch

from mmdet_scconv.layers.kernels import _workspace


def test_a_buffer_is_reused_for_the_same_key_only():
    _workspace.clear()
    cpu = torch.device('cpu')
    first = _workspace.scratch('a', (2, 3), torch.float32, cpu)
    assert _workspace.scratch('a', (2, 3), torch.float32, cpu) is first
    others = [
        _workspace.scratch('b', (2, 3), torch.float32, cpu),
        _workspace.scratch('a', (3, 2), torch.float32, cpu),
        _workspace.scratch('a', (2, 3), torch.float16, cpu),
        _workspace.scratch('a', (1, 2, 3, 3), torch.float32, cpu,
                           torch.channels_last),
    ]
    assert all(o is not first for o in others)
    assert others[-1].is_contiguous(memory_format=torch.channels_last)


def test_many_input_sizes_do_not_pile_up_memory():
    """mmdet's keep-ratio resizing gives every image its own size: the
    cache keeps the most recently used buffers only."""
    _workspace.clear()
    cpu = torch.device('cpu')
    for size in range(1, 3 * _workspace.MAX_BUFFERS):
        _workspace.scratch('stats', (size, ), torch.float32, cpu)
    assert len(_workspace._buffers) == _workspace.MAX_BUFFERS
    newest = _workspace.scratch('stats', (3 * _workspace.MAX_BUFFERS - 1, ),
                                torch.float32, cpu)
    assert len(_workspace._buffers) == _workspace.MAX_BUFFERS
    assert newest.shape == (3 * _workspace.MAX_BUFFERS - 1, )
    _workspace.clear()


def test_a_buffer_made_in_inference_mode_serves_training_too():
    _workspace.clear()
    with torch.inference_mode():
        buffer = _workspace.scratch('a', (4, ), torch.float32,
                                    torch.device('cpu'))
    assert not buffer.is_inference()
    _workspace.clear()


def test_the_cache_is_bounded_in_bytes_too(monkeypatch):
    """Large buffers (a CRU's branch gradients at full HD resolution) are
    dropped, least recently used first, once the bytes kept pass
    ``MAX_BYTES``; one larger than that is handed out and not kept."""
    _workspace.clear()
    monkeypatch.setattr(_workspace, 'MAX_BYTES', 4000)
    cpu = torch.device('cpu')
    first = _workspace.scratch('a', (500, ), torch.float32, cpu)  # 2000 B
    _workspace.scratch('b', (400, ), torch.float32, cpu)
    assert _workspace.scratch('a', (500, ), torch.float32, cpu) is first
    _workspace.scratch('c', (400, ), torch.float32, cpu)  # drops b
    assert {key[0] for key in _workspace._buffers} == {'a', 'c'}
    huge = _workspace.scratch('d', (2000, ), torch.float32, cpu)
    assert _workspace.scratch('d', (2000, ), torch.float32, cpu) is not huge
    assert {key[0] for key in _workspace._buffers} == {'a', 'c'}
    _workspace.clear()


def test_a_zeroed_buffer_is_made_with_zeros_and_kept_apart():
    _workspace.clear()
    cpu = torch.device('cpu')
    plain = _workspace.scratch('acc', (3, ), torch.float32, cpu)
    zeroed = _workspace.scratch('acc', (3, ), torch.float32, cpu, zeroed=True)
    assert zeroed is not plain and not zeroed.any()
    zeroed.fill_(1)
    with pytest.raises(RuntimeError, match='midway'):
        with _workspace.zeroed_on_error(zeroed):
            raise RuntimeError('a kernel failed midway')
    assert not zeroed.any()
    assert _workspace.scratch(
        'acc', (3, ), torch.float32, cpu, zeroed=True) is zeroed
    _workspace.clear()

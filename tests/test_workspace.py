"""The kernels' reused scratch buffers: keyed safely, bounded."""
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

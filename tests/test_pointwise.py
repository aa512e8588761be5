"""``add_pointwise_``: a 1x1 convolution added in place, any layout."""
import pytest
import torch
import torch.nn.functional as F

from mmdet_scconv.layers.pointwise import add_pointwise_, pointwise


@pytest.mark.parametrize('channels_last', [False, True])
@pytest.mark.parametrize('batch', [1, 3])
def test_adds_a_pointwise_convolution_into_a_channel_slice(
        channels_last, batch):
    """Into a channel slice of a larger tensor, with a per-sample weight:
    the other channels stay as they were."""
    x = torch.randn(batch, 6, 5, 7)
    out = torch.randn(batch, 10, 5, 7)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
        out = out.to(memory_format=torch.channels_last)
    weight = torch.randn(batch, 4, 6)
    expected = out.clone()
    for n in range(batch):
        expected[n:n + 1, 2:6] += F.conv2d(x[n:n + 1], weight[n, ..., None,
                                                              None])
    result = add_pointwise_(out[:, 2:6], x, weight)
    assert result.data_ptr() == out[:, 2:6].data_ptr()
    torch.testing.assert_close(out, expected)


def test_takes_a_convolution_weight_shared_by_the_batch():
    x = torch.randn(2, 3, 4, 4)
    weight = torch.randn(5, 3, 1, 1)
    out = torch.zeros(2, 5, 4, 4)
    add_pointwise_(out, x, weight)
    torch.testing.assert_close(out, F.conv2d(x, weight))


@pytest.mark.parametrize('channels_last', [False, True])
def test_pointwise_reads_a_channel_slice_and_keeps_its_layout(channels_last):
    x = torch.randn(2, 8, 5, 3)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    half = x[:, 4:]
    weight = torch.randn(6, 4, 1, 1)
    y = pointwise(half, weight)
    torch.testing.assert_close(y, F.conv2d(half.contiguous(), weight))
    assert y.is_contiguous(memory_format=torch.channels_last
                           if channels_last else torch.contiguous_format)

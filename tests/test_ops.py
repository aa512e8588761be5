"""SCConv's registered ops: ``torch.library.opcheck`` for each, and
``torch.compile(fullgraph=True)`` of SCConv, a bottleneck and the trunk on
the kernel path, which keeps the Triton kernels (checked on the CPU with
``backend='aot_eager'`` and Triton's interpreter)."""
import copy

import pytest
import torch

pytest.importorskip(
    'triton', reason="the kernels need triton: pip install -e '.[triton]'")

from test_compiled import assert_relative_error
from test_layers import randomise

from mmdet_scconv.benchmark.host import count_host_work
from mmdet_scconv.benchmark.trunk import Bottleneck
from mmdet_scconv.layers import SCConv, ops

DEVICE = 'cuda' if torch.cuda.is_available() else 'cpu'
OPS = {
    'scconv': ops.scconv,
    'scconv_backward': ops.scconv_backward,
    'scconv_inference': ops.scconv_inference
}


def _inputs(channels=16, size=(5, 6), channels_last=True, grad=True):
    torch.manual_seed(0)
    scconv = randomise(SCConv(channels, channels, stride=2, gn_groups=4))
    scconv = scconv.to(DEVICE)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(
        2, channels, *size, device=DEVICE).contiguous(memory_format=fmt)
    params = [
        p.detach().clone().requires_grad_(grad) for p in scconv.parameters()
    ]
    return x.requires_grad_(grad), params


def _op_args(channels_last=True, gate='soft'):
    """Arguments of every op for one small strided layer."""
    x, (gamma, beta, w_sq_up, w_sq_low, w_gwc, w_up,
        w_low) = _inputs(channels_last=channels_last)
    gn = (4, 1e-5, 0.5, gate)
    layer = (w_sq_up, w_sq_low, w_gwc, w_up, w_low)
    with torch.no_grad():
        y, up, low, stats = ops.scconv(x, gamma, beta, *layer, *gn, 2, 1,
                                       torch.float32)
    detached = [t.detach() for t in (x, gamma, beta, *layer)]
    return {
        'scconv': (x, gamma, beta, *layer, *gn, 2, 1, torch.float32),
        'scconv_backward': (torch.randn_like(y), *detached, up, low, stats, 4,
                            0.5, gate, 2, 1, torch.float32),
        'scconv_inference':
        (*detached, torch.rand(16, device=DEVICE),
         torch.randn(16, device=DEVICE), *gn, 2, 1, torch.float32),
    }


def test_at_most_six_registered_layer_ops():
    """The layers register three ops (the deployment registers its own
    NMS op in the same namespace)."""
    from torch._library.custom_ops import OPDEFS

    import mmdet_scconv.deployment.nms  # noqa: F401
    layer_ops = [
        name.split('::')[1] for name, op in OPDEFS.items()
        if name.startswith('mmdet_scconv::')
        and op._init_fn.__module__.startswith('mmdet_scconv.layers')
    ]
    assert sorted(layer_ops) == sorted(OPS)
    for op in OPS.values():
        assert 'kernels' not in str(op._opoverload._schema)


@pytest.mark.parametrize('name', list(OPS))
def test_opcheck_on_the_kernels(name):
    """Schema, fake implementation, autograd registration and AOT dispatch
    (static and dynamic shapes) of every op, on the Triton kernels
    registered for this device."""
    torch.library.opcheck(OPS[name], _op_args()[name])


@pytest.mark.parametrize('name', list(OPS))
def test_opcheck_on_the_pytorch_math(name):
    """The same on each op's default implementation (the Triton kernel
    registered for this device switched off)."""
    with OPS[name].set_kernel_enabled(DEVICE, False):
        torch.library.opcheck(OPS[name], _op_args()[name])


def test_opcheck_hard_gate_and_nchw():
    """The kernels with the hard gate (no GroupNorm gradients) and NCHW
    tensors."""
    for name, args in _op_args(channels_last=False, gate='hard').items():
        torch.library.opcheck(OPS[name], args)


def _layer(channels=32, stride=1):
    return randomise(
        SCConv(channels, channels, stride=stride, gn_groups=8,
               impl='triton')).to(DEVICE)


MODELS = {
    'scconv': lambda: _layer(stride=2),
    'bottleneck': lambda: Bottleneck(64, 16, 2, dict(impl='triton')),
}
SIZES = {'scconv': (7, 6), 'bottleneck': (9, 8)}
CHANNELS = {'scconv': 32, 'bottleneck': 64}


def _model_and_input(name):
    torch.manual_seed(0)
    model = MODELS[name]().to(DEVICE, memory_format=torch.channels_last)
    x = torch.randn(1, CHANNELS[name], *SIZES[name], device=DEVICE)
    return model, x.contiguous(memory_format=torch.channels_last)


def _outputs(result):
    return list(result) if isinstance(result, (tuple, list)) else [result]


@pytest.mark.parametrize('name', ['scconv', 'bottleneck'])
def test_compiled_inference_keeps_the_kernels(name):
    """``torch.compile(fullgraph=True)`` traces without a graph break (it
    would raise) and the compiled model still launches the kernels (the
    whole SCConvResNet: ``tests/test_backbone.py``)."""
    torch._dynamo.reset()
    model, x = _model_and_input(name)
    model.eval()
    compiled = torch.compile(model, backend='aot_eager', fullgraph=True)
    with torch.no_grad():
        expected = _outputs(model(x))
        compiled(x)
        work = count_host_work(lambda: compiled(x))
        actual = _outputs(compiled(x))
    assert work.launches['_sru_squeeze_kernel'] >= 1
    assert work.launches['_cru_kernel'] >= 1
    for a, e in zip(actual, expected):
        assert_relative_error(a, e, 1e-6, name)


@pytest.mark.parametrize('name', ['scconv', 'bottleneck'])
def test_compiled_training_keeps_the_kernels(name):
    """A compiled training step (forward and backward traced with
    AOTAutograd) runs the kernels both ways and gives eager's gradients."""
    torch._dynamo.reset()
    model, x = _model_and_input(name)
    twin = copy.deepcopy(model)
    compiled = torch.compile(model, backend='aot_eager', fullgraph=True)
    work = count_host_work(
        lambda: compiled(x).float().square().mean().backward())
    twin(x).float().square().mean().backward()
    assert work.launches['_sru_squeeze_kernel'] == work.launches[
        '_cru_kernel'] >= 1
    assert work.launches['_grad_beta_kernel'] >= 1
    assert work.launches['_backward_input_kernel'] >= 1
    for (param_name, p), q in zip(model.named_parameters(), twin.parameters()):
        assert_relative_error(p.grad, q.grad, 1e-5, param_name)

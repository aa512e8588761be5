"""Do the fast paths equal the reference path on this device?

The unit tests check this on the CPU; this module runs the same comparison
on any device (a GPU machine without mmcv/mmengine/mmdet included), so
speed numbers are only quoted for paths that are proven right where they
were measured.
"""
import copy
import itertools
from dataclasses import dataclass

import torch

from ..layers import SCConv, set_scconv_impl
from ..layers._numerics import TOLERANCES, relative_error
from .timing import autocast


@dataclass
class Check:
    """One comparison: ``what`` of ``impl`` against the reference."""
    impl: str
    case: str
    what: str
    error: float
    tolerance: float

    @property
    def ok(self):
        return self.error <= self.tolerance  # False for NaN too


def randomised(module):
    """Give every parameter non-trivial values (GroupNorm gamma stays
    positive, as in a trained model); returns ``module``."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith('gn.weight'):
                p.uniform_(0.5, 1.5)  # GroupNorm gamma as trained: positive
            else:
                p.normal_(0, 0.5)
    return module


def forward_backward(module, x, dtype, device):
    """Output and gradients of a loss weighting every output element
    differently; ``'input grad'`` holds the input's gradient."""
    module.zero_grad()
    x = x.clone().requires_grad_()
    with autocast(device, dtype):
        y = module(x)
    weights = torch.linspace(-1, 1, y.numel(), device=device).view_as(y)
    (y.float() * weights).sum().backward()
    grads = {'input grad': x.grad}
    grads.update((n, p.grad) for n, p in module.named_parameters()
                 if p.grad is not None)
    return y, grads


def batchnorm_with_stats(channels, device='cpu'):
    """An eval-mode BatchNorm with non-trivial statistics and affine."""
    bn = torch.nn.BatchNorm2d(channels)
    with torch.no_grad():
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2)
        bn.weight.normal_()
        bn.bias.normal_()
    return bn.to(device).eval()


def _check_impl(reference, impl, x, dtype, device, expected, case):
    """Checks of one impl in one case: training (output and every
    gradient), inference, and the deploy form (a BatchNorm folded in)."""
    y_ref, grads_ref, inferred_ref, bn, deployed_ref = expected
    tolerance = TOLERANCES[dtype]
    model = set_scconv_impl(copy.deepcopy(reference), impl)
    y, grads = forward_backward(model, x, dtype, device)
    checks = [
        Check(impl, case, 'train output', relative_error(y, y_ref), tolerance)
    ]
    checks.extend(
        Check(impl, case, name, relative_error(grads[name], grad), tolerance)
        for name, grad in grads_ref.items())
    with torch.inference_mode(), autocast(device, dtype):
        inferred = model(x)
        model.fuse_norm(bn)
        deployed = model(x)
    checks.append(
        Check(impl, case, 'infer output',
              relative_error(inferred, inferred_ref), tolerance))
    checks.append(
        Check(impl, case, 'deploy output',
              relative_error(deployed, deployed_ref), tolerance))
    return checks


#: ``(stride, size, channels_last, gate, alpha)`` of the checked layers.
CASES = ((1, (33, 20), False, 'soft', 0.5), (2, (31, 17), True, 'soft', 0.5),
         (1, (16, 24), True, 'hard', 0.5), (2, (15, 9), False, 'soft', 0.75))


def check_paths(device='cuda',
                impls=('fast', ),
                dtypes=('fp32', 'bf16'),
                seed=0,
                cases=CASES):
    """Compare ``impls`` with ``impl='reference'`` on ``device``: training
    outputs and every gradient, inference outputs, and deploy outputs (a
    BatchNorm folded in); fp32 and ``dtypes`` autocast, stride 1 and 2, odd
    sizes, NCHW and channels-last, soft and hard gate, alpha 1/2 and 3/4.

    Triton's interpreter multiplies bf16 ``tl.dot`` operands as raw bits
    (triton-lang/triton#11584), so on the CPU check fp16 in bf16's place.

    TF32 is switched off while comparing: it would round the convolutions'
    inputs differently on the two paths.

    Args:
        device (str): Where to run.
        impls (tuple[str]): Implementations compared with the reference.
        dtypes (tuple[str]): ``'fp32'``, ``'bf16'``, ``'fp16'``.
        seed (int): Seed of the weights and inputs.
        cases (tuple): Layers to check, a subset of :data:`CASES`.

    Returns:
        list[Check]
    """
    device = torch.device(device)
    torch.manual_seed(seed)
    checks = []
    tf32 = (torch.backends.cuda.matmul.allow_tf32,
            torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        for (stride, size, channels_last, gate,
             alpha), dtype in itertools.product(cases, dtypes):
            case = (f'{dtype} stride {stride} {size[0]}x{size[1]} {gate} '
                    f'alpha {alpha}' +
                    (' channels-last' if channels_last else ''))
            reference = randomised(
                SCConv(
                    64,
                    96,
                    stride=stride,
                    alpha=alpha,
                    gn_groups=16,
                    gate=gate,
                    impl='reference')).to(device)
            x = torch.randn(2, 64, *size, device=device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
                reference = reference.to(memory_format=torch.channels_last)
            y_ref, grads_ref = forward_backward(reference, x, dtype, device)
            bn = batchnorm_with_stats(96, device)
            with torch.no_grad(), autocast(device, dtype):
                inferred_ref = reference(x)
                deployed_ref = bn(inferred_ref)
            expected = (y_ref, grads_ref, inferred_ref, bn, deployed_ref)
            for impl in impls:
                checks.extend(
                    _check_impl(reference, impl, x, dtype, device, expected,
                                case))
    finally:
        (torch.backends.cuda.matmul.allow_tf32,
         torch.backends.cudnn.allow_tf32) = tf32
    return checks


def format_checks(checks) -> str:
    """One line per (impl, case): the worst error and pass/fail."""
    lines = []
    for (impl, case), group in itertools.groupby(
            checks, key=lambda c: (c.impl, c.case)):
        group = list(group)
        worst = max(group, key=lambda c: (not c.ok, c.error))
        verdict = 'ok' if all(c.ok for c in group) else 'FAIL'
        lines.append(f'{verdict:4} {impl:8} {case:50} worst {worst.what}: '
                     f'{worst.error:.1e} (tol {worst.tolerance:.0e}, '
                     f'{len(group)} tensors)')
    return '\n'.join(lines)

"""Sweep the launch settings of SCConv's inference kernels (the SRU + squeeze
GEMM of :mod:`..layers.kernels.sru_squeeze` and the CRU kernel of
:mod:`..layers.kernels.cru`) at each SCConv shape of a trunk: what to
make their defaults on a GPU. Every setting's output is checked against the
default's before it is timed.

Needs triton; on a CPU only under ``TRITON_INTERPRET=1``, where the timings
mean nothing (the tests use it to check the sweep itself).
"""
import itertools
import statistics
import time
from dataclasses import dataclass, field

import torch

from ..layers import SCConv
from .trunk import layer_label, scconv_layer_shapes

#: The settings tried, per kernel (each combination once).
SPACES = {
    'sru_squeeze':
    dict(BLOCK_P=(32, 64, 128), BLOCK_K=(16, 32, 64), num_warps=(4, 8)),
    'cru':
    dict(BLOCK_P=(32, 64, 128), BLOCK_C=(32, 64, 128), num_warps=(4, 8)),
}
DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}


@dataclass
class Tuned:
    """One kernel at one layer shape.

    Args:
        kernel (str): ``'sru_squeeze'`` or ``'cru'``.
        layer (str): The shape, e.g. ``'stage2 128x100x152 s2 (x1)'``.
        count (int): How many of the trunk's SCConvs have that shape.
        default_ms (float): Time with the default settings.
        best_ms (float): The best time found.
        best (dict): The settings that gave it (``{}``: the defaults).
        failed (list[str]): Settings that did not compile or run, or whose
            output differed from the default's, with the reason.
    """
    kernel: str
    layer: str
    count: int
    default_ms: float
    best_ms: float
    best: dict
    failed: list = field(default_factory=list)


def settings_in(space, limits):
    """Every combination of ``space``; blocks larger than ``limits`` (a
    setting's name -> the largest useful value) are left out."""
    for values in itertools.product(*space.values()):
        setting = dict(zip(space, values))
        if all(setting[k] <= v for k, v in limits.items() if k in setting):
            yield setting


def cuda_timer(fn):
    """Median milliseconds of ``fn`` on the GPU (triton's ``do_bench``)."""
    from triton.testing import do_bench
    return do_bench(fn, warmup=10, rep=40)


def host_timer(fn, repeats=2):
    """Median milliseconds of ``fn`` by the host clock."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def _sweep(kernel, layer, count, run, space, limits, timer, tolerance):
    """Time ``run(launch)`` for the defaults and every setting."""
    expected = run(None)
    tuned = Tuned(kernel, layer, count, timer(lambda: run(None)), 0.0, {})
    tuned.best_ms = tuned.default_ms
    for setting in settings_in(space, limits):
        try:
            error = max((a.float() - e.float()).abs().max().item() /
                        max(e.float().abs().max().item(), 1e-12)
                        for a, e in zip(run(setting), expected))
            if error > tolerance:
                tuned.failed.append(f'{setting}: relative error {error:.2e}')
                continue
            ms = timer(lambda: run(setting))
        except Exception as error:  # a setting the kernel cannot take
            tuned.failed.append(f'{setting}: {type(error).__name__}: '
                                f'{str(error).splitlines()[0][:120]}')
            continue
        if ms < tuned.best_ms:
            tuned.best_ms, tuned.best = ms, setting
    return tuned


def tune_layer(channels,
               height,
               width,
               stride,
               count,
               label,
               batch,
               dtype,
               device,
               timer,
               spaces=SPACES):
    """Sweep both kernels of one deploy-form SCConv (with a BatchNorm folded
    in) on a channels-last ``dtype`` input."""
    from ..layers.kernels import cru as triton_cru
    from ..layers.kernels import sru_squeeze

    scconv = SCConv(channels, channels, 3, stride).to(device).eval()
    bn = torch.nn.BatchNorm2d(channels).to(device).eval()
    scconv.fuse_norm(bn)
    sru, cru = scconv.sru, scconv.cru
    gn, gwc = sru.gn, cru.gwc
    x = torch.randn(
        batch, channels, height, width, device=device).to(
            DTYPES[dtype]).contiguous(memory_format=torch.channels_last)
    tolerance = 1e-4 if dtype == 'fp32' else 2e-2
    geometry = (gwc.kernel_size[0], cru.stride, gwc.dilation[0])

    def squeeze(launch):
        return sru_squeeze.sru_squeeze(
            x,
            gn.weight,
            gn.bias,
            cru.squeeze_up.weight,
            cru.squeeze_low.weight,
            gn.num_groups,
            gn.eps,
            sru.gate_threshold,
            sru.gate,
            x.dtype,
            geometry,
            launch=launch)

    with torch.no_grad():
        x_up, x_low, stats = squeeze(None)

        def combine(launch):
            return (triton_cru.cru_forward(
                x_up, x_low, gwc.weight, cru.pwc_up.weight, cru.pwc_low.weight,
                cru.stride, gwc.dilation[0], gwc.groups, scconv.out_affine,
                x.dtype, stats, 2 * batch * gn.num_groups, launch), )

        half, squeezed = channels // 2, x_up.shape[1]
        return [
            _sweep('sru_squeeze', label, count,
                   lambda launch: squeeze(launch)[:2], spaces['sru_squeeze'],
                   dict(BLOCK_K=max(16, half),
                        BLOCK_P=height * width), timer, tolerance),
            _sweep(
                'cru', label, count, combine, spaces['cru'],
                dict(BLOCK_C=max(16, 2 * channels), BLOCK_K=max(16, squeezed)),
                timer, tolerance),
        ]


def tune_trunk(depth=50,
               batch=2,
               height=800,
               width=1216,
               dtype='bf16',
               device='cuda',
               stages=(1, 2, 3, 4),
               spaces=SPACES,
               timer=None):
    """:func:`tune_layer` at every distinct SCConv shape of the trunk in
    ``stages``; returns the :class:`Tuned` rows."""
    device = torch.device(device)
    timer = timer or (cuda_timer if device.type == 'cuda' else host_timer)
    rows = []
    for shape in scconv_layer_shapes(depth, height, width):
        stage, channels, h, w, stride, count = shape
        if stage in stages:
            rows += tune_layer(channels, h, w, stride, count,
                               layer_label(*shape), batch, dtype, device,
                               timer, spaces)
    return rows


def format_tuned(rows) -> str:
    """A table of the rows, and per kernel the trunk's total (each layer
    times its count) with the defaults and with the best settings."""
    lines = [
        '| kernel | layer | default ms | best ms | speed-up | best '
        'settings | failed |', '|---|---|---:|---:|---:|---|---:|'
    ]
    for r in rows:
        lines.append(f'| {r.kernel} | {r.layer} | {r.default_ms:.4f} | '
                     f'{r.best_ms:.4f} | {r.default_ms / r.best_ms:.2f} | '
                     f'{r.best or "defaults"} | {len(r.failed)} |')
    for kernel in dict.fromkeys(r.kernel for r in rows):
        mine = [r for r in rows if r.kernel == kernel]
        default = sum(r.count * r.default_ms for r in mine)
        best = sum(r.count * r.best_ms for r in mine)
        lines.append(f'\n{kernel}: trunk total {default:.3f} ms with the '
                     f'defaults, {best:.3f} ms with the best settings')
    return '\n'.join(lines)

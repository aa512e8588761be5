"""Host work of one layer: what an eager GPU step pays the host for.

Eager MMDetection runs at batch 1-2, where the GPU waits on the host, and
every operator call and kernel launch costs host time whatever it does on
the device. :func:`count_host_work` counts them the way such a step pays:

* every aten operator that ``torch.profiler`` records and that is not nested
  inside another aten operator (work inside an ``autograd.Function``, an
  autograd node or a registered op counts, whatever wraps it; no-op
  ``to``/``detach`` calls count too: each is a trip through the dispatcher);
* every Triton kernel launch, once (what Triton's interpreter does inside a
  launch to run it on CPU tensors is left out).

Counts do not depend on timing, so tests pin them
(``tests/test_host_work.py``); ``tools/benchmark.py --scope host`` prints
them for every path beside the 3x3 convolution and BatchNorm that SCConv
replaces. Torch only (triton where kernels run).
"""
import collections
import contextlib
import copy
from dataclasses import dataclass, field

import torch

from ..layers.kernels._layout import memory_format

_LAUNCH_PREFIX = 'triton::'


@dataclass
class HostWork:
    """Host work of one call.

    Args:
        aten (Counter): Top-level aten operators by name.
        launches (Counter): Triton kernel launches by kernel name.
    """
    aten: collections.Counter = field(default_factory=collections.Counter)
    launches: collections.Counter = field(default_factory=collections.Counter)

    @property
    def total(self) -> int:
        return sum(self.aten.values()) + sum(self.launches.values())

    @property
    def allocations(self) -> int:
        return sum(n for name, n in self.aten.items()
                   if name.split('::')[-1] in ('empty', 'empty_like', 'zeros',
                                               'zeros_like', 'empty_strided'))

    def summary(self) -> str:
        """e.g. ``'14 (5 launches, 7 allocations, 2 conv2d)'``."""
        parts = [
            f'{sum(self.launches.values())} launches',
            f'{self.allocations} allocations'
        ]
        others = {
            name.split('::')[-1]: n
            for name, n in self.aten.items()
            if name.split('::')[-1] not in ('empty', 'empty_like', 'zeros',
                                            'zeros_like', 'empty_strided')
        }
        parts += [
            f'{n} {name}' for name, n in sorted(
                others.items(), key=lambda item: (-item[1], item[0]))
        ]
        return f'{self.total} ({", ".join(parts)})'


def _launch_classes():
    """Triton's kernel classes whose ``run`` is a launch (compiled, and
    interpreted under ``TRITON_INTERPRET=1``)."""
    try:
        from triton.runtime.jit import JITFunction
    except ImportError:
        return []
    classes = [JITFunction]
    try:
        from triton.runtime.interpreter import InterpretedFunction
        classes.append(InterpretedFunction)
    except ImportError:
        pass
    return classes


@contextlib.contextmanager
def _labelled_launches():
    """Wrap every Triton launch in a profiler range ``triton::<kernel>``."""
    originals = {cls: cls.run for cls in _launch_classes()}

    def labelled(run):

        def launch(kernel, *args, **kwargs):
            name = getattr(kernel, 'fn', kernel).__name__
            with torch.profiler.record_function(_LAUNCH_PREFIX + name):
                return run(kernel, *args, **kwargs)

        return launch

    for cls, run in originals.items():
        cls.run = labelled(run)
    try:
        yield
    finally:
        for cls, run in originals.items():
            cls.run = run


def _nested(event) -> bool:
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith(('aten::', _LAUNCH_PREFIX)):
            return True
        parent = parent.cpu_parent
    return False


def count_host_work(fn) -> HostWork:
    """Run ``fn()`` once under the profiler and count its host work (see the
    module docstring).

    Args:
        fn (callable): The work to count, e.g. one layer's forward.

    Returns:
        HostWork: The counts.
    """
    activities = [torch.profiler.ProfilerActivity.CPU]
    with _labelled_launches(), torch.profiler.profile(
            activities=activities) as prof:
        fn()
    work = HostWork()
    for event in prof.events():
        if event.name.startswith(_LAUNCH_PREFIX):
            work.launches[event.name[len(_LAUNCH_PREFIX):]] += 1
        elif event.name.startswith('aten::') and not _nested(event):
            work.aten[event.name[len('aten::'):]] += 1
    return work


def layer_steps(model: torch.nn.Module, x: torch.Tensor):
    """``(inference, training)`` closures of one layer: a forward under
    ``inference_mode``, and a training step (forward, mean, backward) with
    the gradients cleared first, as after an optimizer's
    ``zero_grad(set_to_none=True)``."""

    def infer():
        with torch.inference_mode():
            model(x)

    def train():
        model.zero_grad(set_to_none=True)
        model(x).float().mean().backward()

    return infer, train


def count_step(step) -> HostWork:
    """Host work of ``step`` after one warm-up call (which compiles the
    kernels and fills the caches a later call finds)."""
    step()
    return count_host_work(step)


#: The paths :func:`layer_host_work` counts: name, SCConv impl, whether
#: the BatchNorm is folded in (deploy form), training or inference.
PATHS = (('inference', False, False), ('deploy', True, False), ('training',
                                                                False, True))


def layer_host_work(channels=64,
                    size=8,
                    batch=2,
                    strides=(1, 2),
                    gates=('soft', 'hard'),
                    impl='triton',
                    device='cpu',
                    channels_last=True):
    """Host work of one SCConv layer with its BatchNorm against the 3x3
    convolution and BatchNorm it replaces, for every path, stride and gate.

    Args:
        channels (int), size (int), batch (int): The layer's input
            ``(batch, channels, size, size)``.
        strides (tuple[int]), gates (tuple[str]): The variants.
        impl (str): The SCConv implementation; ``'triton'`` (the kernels;
            on the CPU under ``TRITON_INTERPRET=1``) is what a GPU runs.
        device (str): ``'cpu'`` or ``'cuda'``.
        channels_last (bool): Layer and input in channels-last.

    Returns:
        list[dict]: One row per (path, stride, gate) with ``conv3x3`` and
        ``scconv`` :class:`HostWork` (``conv3x3`` is None for the deploy
        form, which has no plain counterpart).
    """
    from .trunk import ConvNorm
    fmt = memory_format(channels_last)
    x = torch.randn(
        batch, channels, size, size,
        device=device).contiguous(memory_format=fmt)
    rows = []
    for stride in strides:
        plain = ConvNorm(channels, stride).to(device, memory_format=fmt)
        plain_counts = [
            count_step(layer_steps(plain.train(train), x)[train])
            for train in (False, True)
        ]
        for gate in gates:
            scconv = ConvNorm(channels, stride, dict(impl=impl, gate=gate))
            scconv = scconv.to(device, memory_format=fmt)
            for path, deploy, train in PATHS:
                model = copy.deepcopy(scconv).train(train)
                if deploy:
                    model.switch_to_deploy()
                step = layer_steps(model, x)[train]
                rows.append(
                    dict(
                        path=path,
                        stride=stride,
                        gate=gate,
                        conv3x3=None if deploy else plain_counts[train],
                        scconv=count_step(step)))
    return rows


def format_host_table(rows) -> str:
    """A markdown table of :func:`layer_host_work`'s rows."""
    lines = [
        '| path | stride | gate | conv3x3 + BN | SCConv + BN |',
        '|---|---:|---|---:|---|'
    ]
    for row in rows:
        plain = row['conv3x3'].total if row['conv3x3'] else '-'
        lines.append(f"| {row['path']} | {row['stride']} | {row['gate']} | "
                     f"{plain} | {row['scconv'].summary()} |")
    return '\n'.join(lines)


def host_report(rows) -> dict:
    """:func:`layer_host_work`'s rows as JSON-ready data."""

    def counts(work):
        return None if work is None else dict(
            total=work.total,
            aten=dict(work.aten),
            launches=dict(work.launches))

    return [
        dict(
            path=row['path'],
            stride=row['stride'],
            gate=row['gate'],
            conv3x3=counts(row['conv3x3']),
            scconv=counts(row['scconv'])) for row in rows
    ]

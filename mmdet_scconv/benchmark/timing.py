"""Side-by-side timing of models: interleaved runs, medians, ratios.

Torch only; ``scope='detector'`` models come from :mod:`.models`.
"""
import statistics
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass

import torch

DTYPES = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}


@dataclass
class Result:
    """One model in one case.

    Args:
        case (str): e.g. ``'train bf16 channels-last'``.
        model (str): e.g. ``'scconv-r50'``.
        median_ms (float): Median time of one step.
        images_per_s (float): Batch size / median time.
        peak_mem_mb (float | None): CUDA: peak allocated memory of the step.
            CPU training: bytes autograd saves for backward (activations).
            None where neither applies (CPU inference).
        ratio (float): ``median_ms`` over the baseline's.
        mem_ratio (float | None): ``peak_mem_mb`` over the baseline's.
    """
    case: str
    model: str
    median_ms: float
    images_per_s: float
    peak_mem_mb: float = None
    ratio: float = 1.0
    mem_ratio: float = None

    def as_dict(self):
        return asdict(self)


def autocast(device, dtype):
    if DTYPES[dtype] is None:
        return nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[dtype])


def make_step(model, batch, loss_fn, train, dtype, device):
    """A closure running one inference pass or one training step
    (forward, backward, SGD step)."""
    if not train:

        def step():
            with torch.inference_mode(), autocast(device, dtype):
                model(batch)

        return step
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-5, momentum=0.9)

    def step():
        with autocast(device, dtype):
            loss = loss_fn(model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def graphed(step, device, warmup=3):
    """Capture ``step`` in a CUDA graph and return its replay: the same
    kernels without the CPU's per-launch cost, as a deployed model (CUDA
    graphs, TensorRT) runs them. Training steps are captured whole
    (forward, backward, optimizer step) as PyTorch's docs describe."""
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream):
        for _ in range(warmup):
            step()
    torch.cuda.current_stream(device).wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph.replay


def synchronize(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_interleaved(steps, device, warmup=3, repeats=10):
    """Run ``steps`` (name -> closure) A B A B ...; return name -> times."""
    for _ in range(warmup):
        for step in steps.values():
            step()
    times = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            synchronize(device)
            start = time.perf_counter()
            step()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return times


def saved_activation_bytes(model, batch, loss_fn, dtype, device):
    """Bytes of the distinct tensors autograd saves for backward."""
    storages = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        with autocast(device, dtype):
            loss = loss_fn(model, batch)
    del loss
    return sum(storages.values())


def peak_memory_mb(step, model, batch, loss_fn, train, dtype, device):
    if device.type == 'cuda':
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        synchronize(device)
        return torch.cuda.max_memory_allocated(device) / 2**20
    if train:
        return saved_activation_bytes(model, batch, loss_fn, dtype,
                                      device) / 2**20
    return None


def compare(models,
            batch,
            loss_fn,
            case,
            train,
            dtype,
            device,
            batch_size,
            baseline,
            warmup=3,
            repeats=10,
            cuda_graph=False):
    """Time ``models`` (name -> module) side by side in one case.

    With ``cuda_graph`` every step is timed as a CUDA graph replay; peak
    memory is always that of the eager step.

    Returns:
        list[Result]: One per model, ratios against ``baseline``.
    """
    steps = {
        name: make_step(m, batch, loss_fn, train, dtype, device)
        for name, m in models.items()
    }
    timed = ({
        name: graphed(step, device)
        for name, step in steps.items()
    } if cuda_graph else steps)
    times = time_interleaved(timed, device, warmup, repeats)
    memory = {
        name:
        peak_memory_mb(steps[name], model, batch, loss_fn, train, dtype,
                       device)
        for name, model in models.items()
    }
    return summarise(case, times, batch_size, baseline, memory)


def summarise(case, times, batch_size, baseline, memory=None):
    """:class:`Result` per model from its step times (name -> seconds),
    with ratios against ``baseline``.

    Args:
        case (str): The case label.
        times (dict): Model name -> list of step times in seconds.
        batch_size (int): Images per step.
        baseline (str): The model the ratios divide by.
        memory (dict, optional): Model name -> peak memory in MB or None.
    """
    memory = memory or {}
    results = []
    for name, samples in times.items():
        median = statistics.median(samples)
        results.append(
            Result(case, name, median * 1e3, batch_size / median,
                   memory.get(name)))
    base = next(r for r in results if r.model == baseline)
    for r in results:
        r.ratio = r.median_ms / base.median_ms
        if r.peak_mem_mb is not None and base.peak_mem_mb:
            r.mem_ratio = r.peak_mem_mb / base.peak_mem_mb
    return results


def format_table(results) -> str:
    rows = [
        '| case | model | median ms | img/s | ratio | peak mem MB '
        '| mem ratio |', '|---|---|---:|---:|---:|---:|---:|'
    ]
    for r in results:
        mem = '-' if r.peak_mem_mb is None else f'{r.peak_mem_mb:.0f}'
        mem_ratio = '-' if r.mem_ratio is None else f'{r.mem_ratio:.2f}'
        # A layer takes well under a millisecond on a GPU.
        ms = f'{r.median_ms:.1f}' if r.median_ms >= 10 else (
            f'{r.median_ms:.3f}')
        rows.append(f'| {r.case} | {r.model} | {ms} | '
                    f'{r.images_per_s:.2f} | {r.ratio:.2f} | {mem} | '
                    f'{mem_ratio} |')
    return '\n'.join(rows)

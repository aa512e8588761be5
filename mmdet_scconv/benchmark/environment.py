"""What a measurement ran on, for its JSON and its table header: timings
and their ratios depend on the CPU model, the instruction set torch's
kernels use and the threads, or on the GPU and its driver."""
import os
import platform
import shutil
import subprocess

import torch

from .cpu_heap import heap_description


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux)."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_driver() -> str:
    """The NVIDIA driver version from ``nvidia-smi``, or ``'unknown'``."""
    if shutil.which('nvidia-smi') is None:
        return 'unknown'
    try:
        out = subprocess.run([
            'nvidia-smi', '--query-gpu=driver_version', '--format=csv,noheader'
        ],
                             capture_output=True,
                             text=True,
                             timeout=30,
                             check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return 'unknown'
    return out.splitlines()[0].strip() if out.strip() else 'unknown'


def environment_of(device: str) -> dict:
    """torch, Python, the CPU (model, the ISA level torch's CPU kernels
    use, cores, threads), the heap (:func:`.cpu_heap.heap_description`) and
    on CUDA the GPU, its driver and CUDA."""
    env = dict(
        torch=torch.__version__,
        python=platform.python_version(),
        machine=platform.machine(),
        cpu=cpu_model(),
        cpu_capability=torch.backends.cpu.get_cpu_capability(),
        cpu_count=os.cpu_count(),
        threads=torch.get_num_threads(),
        **heap_description())
    if device == 'cuda':
        env.update(
            gpu=torch.cuda.get_device_name(),
            driver=gpu_driver(),
            cuda=torch.version.cuda)
    return env


def describe(env: dict) -> str:
    """One line for a table header, e.g. ``'AMD EPYC (AVX2), 2 threads of 2
    CPUs, torch 2.13.0+cpu'``."""
    line = (f"{env['cpu']} ({env['cpu_capability']}), {env['threads']} "
            f"threads of {env['cpu_count']} CPUs, " +
            ('freed memory kept, ' if env.get('cpu_heap') == 'kept' else '') +
            f"torch {env['torch']}")
    if 'gpu' in env:
        line = (f"{env['gpu']} (driver {env['driver']}, CUDA "
                f"{env['cuda']}); host " + line)
    return line

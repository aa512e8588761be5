"""Time SCConv-ResNet against ResNet side by side (A B A B ...).

Prints a table of medians and ratios, writes JSON and a PNG bar chart.
``--scope host`` instead counts the host work of one SCConv layer and its
BatchNorm on the kernel path (operator calls and kernel launches, what an
eager GPU step pays the host for) beside the 3x3 convolution and BatchNorm
it replaces, for inference, the deploy form and a training step, stride 1
and 2, soft and hard gate; on the CPU the kernels run in Triton's
interpreter (counts do not depend on timing, so any machine gives them).
``--scope trunk`` and ``--scope layers`` need only torch (and matplotlib
for the chart); ``--scope layers`` times each distinct SCConv of the trunk
(with its BatchNorm) against the 3x3 convolution and BatchNorm it replaces,
to show which stage the trunk's gap comes from. Where the C library is
glibc the process keeps the memory tensors free (``--cpu-heap keep``, the
default), so that no model's step page-faults its activations back in.

Examples:
    # CPU, 2 cores, fp32, trunk, 1x3x512x768 (the CPU target)
    python tools/benchmark.py --device cpu --modes infer
    # GPU: bf16 autocast, channels-last, trunk, 2x3x800x1216 (the GPU target)
    python tools/benchmark.py --device cuda --dtypes bf16 fp32 \
        --channels-last on
    # GPU, layer by layer, CUDA graphs (no launch cost)
    python tools/benchmark.py --device cuda --scope layers --dtypes bf16 \
        --channels-last on --cuda-graph
    # Host work per layer (operator calls and launches), any machine
    python tools/benchmark.py --scope host
    # ONNX Runtime or OpenVINO on the CPU: each model exported to ONNX (and
    # converted to OpenVINO's IR), then timed; --profile adds the engine's
    # time per operator type
    python tools/benchmark.py --runtime onnxruntime --threads 2
    python tools/benchmark.py --runtime openvino --threads 2 --profile
"""
import argparse
import os
import sys

# Run from a checkout without installing: the package sits one level up.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mmdet_scconv.benchmark import BenchmarkConfig, run_benchmark
from mmdet_scconv.benchmark.cpu_heap import can_keep_freed_memory
from mmdet_scconv.benchmark.environment import describe, environment_of
from mmdet_scconv.benchmark.runner import output_paths, write_chart, write_json

DEFAULT_SHAPES = {'cpu': (1, 512, 768), 'cuda': (2, 800, 1216)}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--scope',
        choices=['trunk', 'detector', 'layers', 'host'],
        default='trunk')
    parser.add_argument('--depth', type=int, choices=[50, 101], default=50)
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    parser.add_argument('--batch', type=int, help='default: 1 CPU, 2 CUDA')
    parser.add_argument(
        '--size',
        type=int,
        nargs=2,
        metavar=('H', 'W'),
        help='default: 512 768 CPU, 800 1216 CUDA')
    parser.add_argument(
        '--modes',
        nargs='+',
        choices=['infer', 'train'],
        help='default: infer train (onnxruntime: infer)')
    parser.add_argument(
        '--dtypes',
        nargs='+',
        choices=['fp32', 'bf16', 'fp16'],
        default=['fp32'])
    parser.add_argument(
        '--channels-last', choices=['off', 'on', 'both'], default='both')
    parser.add_argument(
        '--impls',
        nargs='+',
        choices=['fast', 'deploy', 'triton', 'torch', 'reference'],
        default=['fast', 'deploy', 'reference'],
        help='SCConv variants (fast = Triton kernels on CUDA, '
        'compiled by inductor elsewhere; torch = compiled by inductor; '
        'reference = eager; with --compile every model is compiled '
        'whole); deploy = fast with the following BatchNorms folded in '
        '(inference only)')
    parser.add_argument(
        '--compile',
        action='store_true',
        help='wrap every model in torch.compile')
    parser.add_argument(
        '--cuda-graph',
        action='store_true',
        help='time CUDA graph replays (no CPU launch cost)')
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--threads', type=int, help='CPU threads')
    parser.add_argument(
        '--runtime',
        choices=['pytorch', 'onnxruntime', 'openvino'],
        default='pytorch',
        help='onnxruntime, openvino: export each model to ONNX (SCConv in '
        "the engine's form) and time it in that engine (CPU, fp32 "
        'inference, trunk or detector scope)')
    parser.add_argument(
        '--profile',
        action='store_true',
        help='with --runtime onnxruntime or openvino: also print each '
        "model's time per operator type from the engine's counters")
    parser.add_argument(
        '--cpu-heap',
        choices=['keep', 'default'],
        default='keep' if can_keep_freed_memory() else 'default',
        help="keep: glibc's malloc keeps the memory tensors free, so no "
        'step page-faults its activations back in (default where the C '
        "library is glibc); default: the C library's own behaviour")
    parser.add_argument(
        '--config-dir', default='configs', help='configs for --scope detector')
    parser.add_argument('--out-dir', default='benchmark_results')
    return parser.parse_args()


def host_scope(args):
    """``--scope host``: the host-work table and its JSON."""
    if args.device == 'cpu':
        # The kernels run on CPU tensors in Triton's interpreter, which
        # must be chosen before triton is imported.
        os.environ.setdefault('TRITON_INTERPRET', '1')
        from mmdet_scconv.layers.ops import register_cpu_kernels
        register_cpu_kernels()
    from mmdet_scconv.benchmark.host import (format_host_table, host_report,
                                             layer_host_work)
    rows = layer_host_work(
        device=args.device, channels_last=args.channels_last != 'off')
    env = environment_of(args.device)
    print(describe(env))
    print(format_host_table(rows))
    os.makedirs(args.out_dir, exist_ok=True)
    path = os.path.join(args.out_dir, f'host_{args.device}.json')
    write_json(dict(layer='2x64x8x8', env=env, rows=host_report(rows)), path)
    print(f'wrote {path}')


def main():
    args = parse_args()
    if args.scope == 'host':
        return host_scope(args)
    if args.device == 'cuda' and not __import__('torch').cuda.is_available():
        sys.exit('--device cuda: torch sees no CUDA device.')
    if args.cuda_graph and args.device != 'cuda':
        sys.exit('--cuda-graph needs --device cuda.')
    engine = args.runtime != 'pytorch'
    if engine and args.channels_last == 'on':
        sys.exit(f'--runtime {args.runtime}: the engine picks its own memory '
                 'layout; drop --channels-last.')
    if args.profile and not engine:
        sys.exit('--profile reads an engine\'s counters: add --runtime '
                 'onnxruntime or --runtime openvino (for PyTorch, '
                 'mmdet_scconv.benchmark.profile.profile_trunk).')
    if args.cpu_heap == 'keep' and not can_keep_freed_memory():
        sys.exit("--cpu-heap keep needs glibc's mallopt, which this C "
                 'library does not have: pass --cpu-heap default.')
    batch, height, width = DEFAULT_SHAPES[args.device]
    cfg = BenchmarkConfig(
        scope=args.scope,
        depth=args.depth,
        device=args.device,
        batch=args.batch or batch,
        height=(args.size or (height, width))[0],
        width=(args.size or (height, width))[1],
        modes=args.modes or (['infer'] if engine else ['infer', 'train']),
        dtypes=args.dtypes,
        channels_last=[False] if engine else {
            'off': [False],
            'on': [True],
            'both': [False, True]
        }[args.channels_last],
        impls=args.impls,
        compile=args.compile,
        cuda_graph=args.cuda_graph,
        warmup=args.warmup,
        repeats=args.repeats,
        config_dir=args.config_dir,
        threads=args.threads,
        runtime=args.runtime,
        cpu_heap=args.cpu_heap,
        profile=args.profile)
    report = run_benchmark(cfg)
    os.makedirs(args.out_dir, exist_ok=True)
    json_path, png_path = output_paths(args.out_dir, cfg)
    write_json(report, json_path)
    print(f'wrote {json_path}')
    try:
        write_chart(report, png_path)
        print(f'wrote {png_path}')
    except ImportError:
        print('no PNG chart: matplotlib is not installed '
              '(pip install matplotlib)')


if __name__ == '__main__':
    main()

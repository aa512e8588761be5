"""Compile every Triton kernel launch of SCConv's paths for a GPU
architecture, on this machine (no GPU needed), and report each one.

It catches what Triton's interpreter, where the tests run the kernels on a
CPU, cannot: kernels that do not compile for the GPU, and the shared
memory their tiles need. Exits 1 if any launch fails to compile.

Example (all ResNet SCConv widths, strides 1/2, fp32/bf16/fp16; the kernels
take alpha 1/2; for the V100's sm_70, the A100's sm_80 and the H100/H200's
sm_90, each with the dtypes it runs: bf16 from sm_80 on):
    python tools/analysis_tools/compile_kernels.py --archs 70 80 90
"""
import argparse
import os
import sys

if os.environ.get('TRITON_INTERPRET', '0') not in ('', '0'):
    sys.exit('compile_kernels.py compiles for a GPU: unset TRITON_INTERPRET.')

sys.path.insert(
    0,
    os.path.dirname(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from mmdet_scconv.benchmark.kernel_compile import (compile_paths,
                                                   format_compiled)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--channels', type=int, nargs='+', default=[64, 128, 256, 512])
    parser.add_argument('--strides', type=int, nargs='+', default=[1, 2])
    parser.add_argument(
        '--dtypes',
        nargs='+',
        default=['fp32', 'bf16', 'fp16'],
        choices=['fp32', 'bf16', 'fp16'])
    parser.add_argument(
        '--archs',
        type=int,
        nargs='+',
        default=[90],
        help='CUDA compute capabilities x10 (70: V100, 75: T4, 80: A100, '
        '86: A10/RTX 30, 89: L4/L40, 90: H100/H200)')
    return parser.parse_args()


def main():
    args = parse_args()
    launches = compile_paths(args.channels, args.strides, args.dtypes,
                             args.archs)
    print(format_compiled(launches))
    if any(launch.error for launch in launches):
        sys.exit(1)


if __name__ == '__main__':
    main()

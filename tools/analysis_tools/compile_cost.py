"""Print what SCConv's self-compiling CPU path costs before it is fast: the
first call, the graphs compiled over ten image sizes, and the first call of
a second process that finds inductor's caches warm.

Example:
    python tools/analysis_tools/compile_cost.py --threads 2 --mode train \
        --batch 2
"""
import argparse
import json
import os
import sys

sys.path.insert(
    0,
    os.path.dirname(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import torch

from mmdet_scconv.benchmark.compile_cost import (compile_cost,
                                                 first_call_in_new_process)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--mode', choices=['infer', 'train'], default='infer')
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--threads', type=int, help='CPU threads')
    return parser.parse_args()


def main():
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        os.environ['OMP_NUM_THREADS'] = str(args.threads)
    train = args.mode == 'train'
    report = compile_cost(train, args.batch)
    report['second_process_first_call_s'] = first_call_in_new_process(
        train, args.batch)
    for call in report['calls']:
        print(f"{call['size'][0]}x{call['size'][1]}: {call['seconds']:.2f} s,"
              f" {call['graphs']} graph(s) compiled")
    print(f"first call {report['first_call_s']:.1f} s; graphs compiled over "
          f"the next {len(report['calls']) - 1} sizes: "
          f"{report['recompiles_after_first']}; a second process's first "
          f"call {report['second_process_first_call_s']:.1f} s")
    print(json.dumps(report))


if __name__ == '__main__':
    main()

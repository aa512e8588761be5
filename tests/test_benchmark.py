"""The benchmark's report: every case, ratios against ResNet, JSON, PNG."""
import json
import resource

import pytest
import torch
from tiny import ROOT, run_tool

from mmdet_scconv.benchmark import BenchmarkConfig, run_benchmark
from mmdet_scconv.benchmark.cpu_heap import can_keep_freed_memory
from mmdet_scconv.benchmark.runner import output_paths, write_chart, write_json
from mmdet_scconv.benchmark.trunk import scconv_layer_shapes


def test_report_json_and_chart(tmp_path):
    cfg = BenchmarkConfig(
        height=32, width=48, warmup=0, repeats=2, channels_last=[False])
    logged = []
    report = run_benchmark(cfg, log=logged.append)
    # What the ratios depend on: the CPU, the ISA torch's kernels use and
    # the threads, in the JSON and atop the tables.
    env = report['env']
    assert env['cpu'] and env['cpu_count'] >= 1
    assert env['cpu_capability'] == torch.backends.cpu.get_cpu_capability()
    assert env['threads'] == torch.get_num_threads()
    # The library never changes the process's heap unless asked.
    assert env['cpu_heap'] == 'default'
    assert logged[0].startswith(f"{env['cpu']} ({env['cpu_capability']}), "
                                f"{env['threads']} threads")
    rows = {(r['case'], r['model']): r for r in report['results']}
    assert set(rows) == {('trunk infer fp32', 'resnet50'),
                         ('trunk infer fp32', 'scconv50-fast'),
                         ('trunk infer fp32', 'scconv50-deploy'),
                         ('trunk infer fp32', 'scconv50-reference'),
                         ('trunk train fp32', 'resnet50'),
                         ('trunk train fp32', 'scconv50-fast'),
                         ('trunk train fp32', 'scconv50-reference')}
    for (case, model), row in rows.items():
        assert row['median_ms'] > 0
        assert (row['ratio'] == 1.0) == (model == 'resnet50')
        assert (row['peak_mem_mb'] is not None) == ('train' in case)
    json_path, png_path = output_paths(str(tmp_path), cfg)
    write_json(report, json_path)
    write_chart(report, png_path)
    with open(json_path) as f:
        assert json.load(f)['config']['height'] == 32
    with open(png_path, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'


def test_layers_scope_compares_each_scconv_shape_with_its_3x3_conv():
    """One group per distinct SCConv input of the trunk (stride-2 first
    blocks apart), each against the 3x3 convolution + BatchNorm it
    replaces, in channels-last training too."""
    assert scconv_layer_shapes(50, 64, 96) == [(1, 64, 16, 24, 1, 3),
                                               (2, 128, 16, 24, 2, 1),
                                               (2, 128, 8, 12, 1, 3),
                                               (3, 256, 8, 12, 2, 1),
                                               (3, 256, 4, 6, 1, 5),
                                               (4, 512, 4, 6, 2, 1),
                                               (4, 512, 2, 3, 1, 2)]
    cfg = BenchmarkConfig(
        scope='layers',
        height=33,
        width=47,
        warmup=0,
        repeats=1,
        channels_last=[True],
        impls=['fast', 'deploy'])
    report = run_benchmark(cfg, log=lambda text: None)
    cases = {}
    for row in report['results']:
        cases.setdefault(row['case'], []).append(row['model'])
        assert (row['ratio'] == 1.0) == (row['model'] == 'conv3x3')
    assert len(cases) == 2 * 7
    assert cases['layers stage2 128x9x12 s2 (x1) infer fp32 '
                 'channels-last'] == [
                     'conv3x3', 'scconv50-fast', 'scconv50-deploy'
                 ]
    assert cases['layers stage4 512x2x2 (x2) train fp32 channels-last'] == [
        'conv3x3', 'scconv50-fast'
    ]


def test_unknown_cpu_heap_is_refused():
    with pytest.raises(
            ValueError,
            match="cpu_heap must be 'default' or "
            "'keep', got 'jemalloc'"):
        run_benchmark(BenchmarkConfig(cpu_heap='jemalloc'))


# A step whose one activation (40 MB) is above glibc's largest threshold
# for mapping allocations on their own.
PAGE_FAULT_PROBE = """
import resource, sys, torch
from mmdet_scconv.benchmark.cpu_heap import keep_freed_memory
if sys.argv[1] == 'keep':
    keep_freed_memory()
def step():
    torch.empty(10 * 2**20).fill_(1)
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults_of_five_steps(cpu_heap):
    # A process of its own: keeping freed memory cannot be undone.
    return int(run_tool('-c', PAGE_FAULT_PROBE, cpu_heap).stdout)


@pytest.mark.skipif(
    not can_keep_freed_memory(), reason="needs glibc's mallopt")
def test_kept_heap_stops_the_page_faults_of_each_step():
    pages = 40 * 2**20 // resource.getpagesize()
    assert page_faults_of_five_steps('default') >= 5 * pages
    # Kept memory is faulted in once, before the counted steps; the kernel
    # may still reclaim idle pages of a process now and then (this machine
    # runs DAMON: one step in about six faulted its 40 MB in again), never
    # at every step.
    assert page_faults_of_five_steps('keep') < 2 * pages


@pytest.mark.skipif(
    not can_keep_freed_memory(), reason="needs glibc's mallopt")
def test_benchmark_tool_keeps_freed_memory_and_says_so(tmp_path):
    out = run_tool(f'{ROOT}/tools/benchmark.py', '--size', '32', '48',
                   '--modes', 'infer', '--impls', 'fast', '--channels-last',
                   'off', '--warmup', '0', '--repeats', '1', '--out-dir',
                   str(tmp_path)).stdout
    assert 'freed memory kept' in out.splitlines()[0]
    with open(tmp_path / 'trunk_r50_cpu_b1_32x48.json') as f:
        assert json.load(f)['env']['cpu_heap'] == 'kept'

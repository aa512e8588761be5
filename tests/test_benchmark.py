"""The benchmark's report: every case, ratios against ResNet, JSON, PNG."""
import json

from mmdet_scconv.benchmark import BenchmarkConfig, run_benchmark
from mmdet_scconv.benchmark.runner import (output_paths, write_chart,
                                           write_json)


def test_report_json_and_chart(tmp_path):
    cfg = BenchmarkConfig(height=32, width=48, warmup=0, repeats=2,
                          channels_last=[False])
    report = run_benchmark(cfg, log=lambda text: None)
    rows = {(r['case'], r['model']): r for r in report['results']}
    assert set(rows) == {
        ('trunk infer fp32', 'resnet50'), ('trunk infer fp32', 'scconv50-fast'),
        ('trunk infer fp32', 'scconv50-deploy'),
        ('trunk infer fp32', 'scconv50-reference'),
        ('trunk train fp32', 'resnet50'), ('trunk train fp32', 'scconv50-fast'),
        ('trunk train fp32', 'scconv50-reference')
    }
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

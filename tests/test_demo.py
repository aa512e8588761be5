"""The README's demo command really detects (300 iterations, about 5
minutes on 2 cores)."""
import re
import shutil

from tiny import ROOT, run_tool

DEMO_CONFIG = 'configs/demo/retinanet_scconv_r50_shapes.py'


def test_demo_trains_a_detector(tmp_path):
    # Run from a copy so that the demo's relative data_root lands in tmp.
    shutil.copytree(f'{ROOT}/configs', tmp_path / 'configs')
    work = tmp_path / 'work'
    result = run_tool(
        f'{ROOT}/tools/demo.py',
        DEMO_CONFIG,
        '--work-dir',
        str(work),
        cwd=str(tmp_path))
    log = result.stdout + result.stderr
    found = re.search(r'mAP@\.5 = ([0-9.]+), mAP@\[\.5:\.95\] = ([0-9.]+)',
                      log)
    assert found, log[-3000:]
    map50, map_coco = map(float, found.groups())
    assert map50 >= 0.5
    assert 0 < map_coco <= map50
    assert (tmp_path /
            'data/shapes/coco/annotations/instances_val.json').is_file()
    assert (tmp_path /
            'data/shapes/VOCdevkit/VOC2007/ImageSets/Main/test.txt').is_file()

"""The full data check reports every missing or undecodable image and every
invalid box at once, as a tool and as a flag of tools/train.py."""
import json
import xml.etree.ElementTree as ET

from tiny import run_tool, write_tiny

TOOL = 'tools/analysis_tools/check_data.py'


def test_clean_data_passes(tmp_path):
    config = write_tiny(tmp_path, 'coco', 'retinanet_scconv_r50_coco.py')
    result = run_tool(TOOL, config, '--workers', '2')
    assert 'train: 8 images' in result.stdout
    assert '0 problem(s)' in result.stdout


def test_coco_problems_are_all_reported(tmp_path):
    config = write_tiny(tmp_path, 'coco', 'retinanet_scconv_r50_coco.py')
    images = sorted((tmp_path / 'data/coco/train').iterdir())
    images[0].unlink()
    images[1].write_bytes(images[1].read_bytes()[:100])
    ann_path = tmp_path / 'data/coco/annotations/instances_train.json'
    coco = json.loads(ann_path.read_text())
    anns = coco['annotations']
    anns[0]['bbox'] = [10, 10, 0, 5]  # no area
    anns[1]['bbox'] = [50, 50, 40, 40]  # past a 64-pixel image
    anns[2]['category_id'] = 99
    ann_path.write_text(json.dumps(coco))
    result = run_tool(
        TOOL, config, '--splits', 'train', '--workers', '2', check=False)
    assert result.returncode == 1
    out = result.stdout
    assert '5 problem(s)' in out, out
    assert f'missing image: 1, first: {images[0]}' in out
    assert f'undecodable image: 1, first: {images[1]}' in out
    for kind in ('box without area: 1', 'box outside its image: 1',
                 'unknown category: 1'):
        assert kind in out, out

    # The same check stops tools/train.py before anything is built.
    result = run_tool(
        'tools/train.py',
        config,
        '--check-data',
        '--work-dir',
        str(tmp_path / 'work'),
        check=False)
    assert result.returncode != 0
    assert 'DataCheckError: The data check found problems' in result.stderr
    assert not (tmp_path / 'work').exists()


def test_voc_problems_are_all_reported(tmp_path):
    config = write_tiny(tmp_path, 'voc', 'retinanet_scconv_r50_voc.py')
    root = tmp_path / 'data/VOCdevkit/VOC2007'
    xmls = sorted((root / 'Annotations').iterdir())
    tree = ET.parse(xmls[0])
    tree.find('object/name').text = 'unicorn'
    tree.write(xmls[0])
    xmls[1].unlink()
    result = run_tool(
        TOOL, config, '--splits', 'train', '--workers', '2', check=False)
    assert result.returncode == 1
    assert "unknown category: 1, first: " in result.stdout
    assert f'missing annotation xml: 1, first: {xmls[1]}' in result.stdout

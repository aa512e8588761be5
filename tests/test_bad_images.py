"""A training run goes on past a missing, empty or undecodable image (logged,
replaced, reported at the end) within a budget; evaluation never skips."""
import json

import pytest
from tiny import run_tool, write_tiny

from mmdet_scconv.engine import BadImageHook

SKIPPING = ('train_dataloader.dataset.pipeline.0.type=LoadImageOrSkip', )


def _damage(train_dir):
    """A missing, an empty and a truncated JPEG among the 8 training
    images."""
    images = sorted(train_dir.iterdir())
    images[0].unlink()
    images[1].write_bytes(b'')
    images[2].write_bytes(images[2].read_bytes()[:100])
    return {str(image) for image in images[:3]}


def _train_skipping(config, work, hooks, check=True):
    """tools/train.py with LoadImageOrSkip and the given hooks option."""
    return run_tool(
        'tools/train.py',
        config,
        '--work-dir',
        str(work),
        '--cfg-options',
        *SKIPPING,
        hooks,
        check=check)


@pytest.fixture(scope='module')
def skipped_run(tmp_path_factory):
    """Training with 3 bad images of 8, within a budget of 40%."""
    root = tmp_path_factory.mktemp('bad_images')
    config = write_tiny(root, 'coco', 'retinanet_scconv_r50_coco.py')
    bad = _damage(root / 'data/coco/train')
    work = root / 'work'
    result = _train_skipping(config, work, 'custom_hooks.1.max_fraction=0.4')
    return root, config, work, bad, result.stdout + result.stderr


def test_bad_training_images_are_skipped_and_reported(skipped_run):
    root, config, work, bad, log = skipped_run
    for path in bad:
        assert f'Skipped training image {path}' in log, log[-3000:]
    assert '3 training image(s) skipped as unreadable' in log
    with open(work / 'skipped_images.json') as f:
        report = json.load(f)
    assert report['count'] == 3 and set(report['skipped']) == bad
    assert (work / 'iter_4.pth').is_file()

    # A budget of 20% (one image) stops the run, naming the files.
    result = _train_skipping(
        config,
        root / 'stopped',
        'custom_hooks.1.max_fraction=0.2',
        check=False)
    assert result.returncode != 0
    message = result.stderr.splitlines()[-1]
    assert 'TooManyBadImagesError' in message, result.stderr[-3000:]
    assert 'could not be loaded, more than BadImageHook(max_fraction=0.2)' \
        in message
    assert any(path in message for path in bad)


def test_without_the_hook_nothing_is_skipped(skipped_run):
    root, config, _, _, _ = skipped_run
    # A hook built in this process (as by an earlier test's Runner) names
    # its record in the environment the tool inherits: not the tool's.
    BadImageHook()
    result = _train_skipping(
        config, root / 'unhooked', 'custom_hooks=[]', check=False)
    assert result.returncode != 0
    assert 'train_0000' in result.stderr.splitlines()[-1]


def test_a_bad_test_image_is_an_error_naming_it(skipped_run):
    root, config, work, _, _ = skipped_run
    missing = sorted((root / 'data/coco/val').iterdir())[0]
    missing.unlink()
    result = run_tool(
        'tools/test.py',
        config,
        str(work / 'iter_4.pth'),
        '--work-dir',
        str(work),
        check=False)
    assert result.returncode != 0
    assert str(missing) in result.stderr.splitlines()[-1], (
        result.stderr[-3000:])

"""Host work of one SCConv layer on the kernel path, pinned.

Eager inference and training on a GPU are bound by the host's cost per
operator call and kernel launch, so these counts (which do not depend on
timing) are budgets: see ``mmdet_scconv/benchmark/host.py`` for what
counts, and ``python tools/benchmark.py --scope host`` for the table.
"""
import pytest
import torch

pytest.importorskip(
    'triton', reason="the kernels need triton: pip install -e '.[triton]'")

from mmdet_scconv.benchmark.host import (count_host_work, format_host_table,
                                         layer_host_work)

#: SCConv + its BatchNorm on the kernel path, at most (SCConv alone: 5;
#: the deploy form has no BatchNorm left).
INFERENCE_BUDGET = 6
DEPLOY_BUDGET = 5
#: Training step (forward, backward, with the BatchNorm) over the 3x3
#: convolution + BatchNorm's, at most, for both gates and strides.
TRAINING_EXCESS = 25


@pytest.fixture(scope='module')
def rows():
    return layer_host_work()


def test_the_counter_counts_what_an_eager_step_pays():
    """conv3x3 + BN: two calls at inference; a training step has the
    forward, the loss, the backward's seed and nodes, and one detach per
    parameter whose gradient autograd stores."""
    conv = torch.nn.Conv2d(8, 8, 3, padding=1, bias=False)
    model = torch.nn.Sequential(conv, torch.nn.BatchNorm2d(8))
    x = torch.randn(2, 8, 5, 5)
    with torch.inference_mode():
        assert count_host_work(lambda: model.eval()(x)).total == 2
    model.train()
    work = count_host_work(lambda: model(x).mean().backward())
    assert work.aten['detach'] == 3
    assert work.aten['convolution_backward'] == 1
    assert work.aten['native_batch_norm_backward'] == 1


def test_inference_and_deploy_budgets(rows):
    for row in rows:
        work = row['scconv']
        if row['path'] == 'inference':
            assert work.total <= INFERENCE_BUDGET, format_host_table(rows)
        if row['path'] == 'deploy':
            assert work.total <= DEPLOY_BUDGET, format_host_table(rows)
        if row['path'] != 'training':
            # The kernel path allocates its output and nothing else.
            assert work.allocations == 1, work.summary()
            assert set(work.launches) == {
                '_partial_stats_kernel', '_group_stats_kernel',
                '_sru_squeeze_kernel', '_cru_kernel'
            }, work.summary()


def test_training_budget(rows):
    for row in rows:
        if row['path'] == 'training':
            excess = row['scconv'].total - row['conv3x3'].total
            assert excess <= TRAINING_EXCESS, (format_host_table(rows))
            # No no-op casts: every `to` left is a real conversion.
            assert 'to' not in row['scconv'].aten or row['scconv'].aten[
                'to'] == row['conv3x3'].aten['to'], row['scconv'].summary()

import os
import tempfile

import pytest
import torch

# Without a GPU, SCConv's Triton kernels run in Triton's interpreter on CPU
# tensors; the variable must be set before triton is first imported.
if not torch.cuda.is_available():
    os.environ.setdefault('TRITON_INTERPRET', '1')
# On the CPU SCConv compiles its layers with inductor, seconds per graph on
# CI's two cores; the tests run the reference eagerly, except those of the
# compiled path itself (test_compiled.py), which switch compilation on.
os.environ.setdefault('MMDET_SCCONV_COMPILE', '0')
# The kernels' self-check runs afresh in every test session (its verdicts
# go to a new folder, not ~/.cache).
os.environ.setdefault('MMDET_SCCONV_CACHE_DIR',
                      tempfile.mkdtemp(prefix='mmdet_scconv_checks_'))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)

__version__ = '0.1.0'

#: The oldest torch the package runs on: its ops are ``torch.library``
#: custom ops (``torch.library.custom_op``, torch 2.4).
TORCH_REQUIRED = '2.4'


def check_torch_version(found=None) -> None:
    """Fail at import, not deep inside a layer, on a torch too old.

    Args:
        found (str, optional): A torch version string; default: the
            installed torch's.

    Raises:
        ImportError: ``found`` is older than :data:`TORCH_REQUIRED`.
    """
    if found is None:
        import torch
        found = torch.__version__
    release = found.split('+')[0].split('.')[:2]
    numbers = tuple(
        int(''.join(c for c in p if c.isdigit()) or 0) for p in release)
    required = tuple(int(p) for p in TORCH_REQUIRED.split('.'))
    if numbers < required:
        raise ImportError(
            f'mmdet-scconv needs torch >= {TORCH_REQUIRED} (its ops are '
            f'torch.library custom ops), found torch {found}. Install a '
            f'newer torch, e.g. pip install "torch>={TORCH_REQUIRED}", or '
            f'for a CUDA build the command for your CUDA version from '
            f'https://pytorch.org/get-started/locally/.')

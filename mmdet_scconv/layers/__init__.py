"""Pure-PyTorch SCConv layers; importing them needs torch only."""
from .cru import CRU
from .scconv import (SCConv, check_scconv_args, run_backbone, set_scconv_impl,
                     to_export_form)
from .sru import SRU

__all__ = [
    'SRU', 'CRU', 'SCConv', 'check_scconv_args', 'run_backbone',
    'set_scconv_impl', 'to_export_form'
]

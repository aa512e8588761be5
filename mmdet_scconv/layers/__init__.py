"""Pure-PyTorch SCConv layers; importing them needs torch only."""
from .cru import CRU
from .scconv import SCConv
from .sru import SRU

__all__ = ['SRU', 'CRU', 'SCConv']

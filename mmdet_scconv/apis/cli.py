"""Command-line options every tool shares, as mmdet's tools spell them."""
import os

from mmengine.config import DictAction


def add_cfg_options(parser,
                    example: str = 'optim_wrapper.optimizer.lr=0.01') -> None:
    """Add mmdet's ``--cfg-options key=value ...``; ``example`` goes into
    its help."""
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help=f'override config settings, key=value (e.g. {example})')


def add_common_args(parser) -> None:
    """Add ``--cfg-options``, ``--launcher`` and ``--local-rank``."""
    add_cfg_options(parser)
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_common_args(parser):
    """Parse; export ``LOCAL_RANK`` for launchers that pass a flag."""
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args

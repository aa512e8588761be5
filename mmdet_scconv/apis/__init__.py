"""Package code behind the command-line tools."""
from .data_checks import DataLayoutError, check_dataloaders
from .runner import apply_train_options, build_runner, load_config

__all__ = [
    'DataLayoutError', 'check_dataloaders', 'apply_train_options',
    'build_runner', 'load_config'
]

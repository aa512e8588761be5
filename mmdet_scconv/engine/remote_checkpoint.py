"""Checkpoints from URLs and model zoos, loaded as safely as local files.

mmengine downloads ``http(s)://`` checkpoints into torch.hub's cache
(``<torch.hub.get_dir()>/checkpoints``, ``$TORCH_HOME``), reuses a cached
file, and resolves ``torchvision://``, ``modelzoo://``, ``open-mmlab://``,
``openmmlab://`` and ``mmcls://`` names to such URLs. The loaders here do
the same, then read the cached file like a local one
(:func:`~mmdet_scconv.engine.checkpoint.load_local_checkpoint`: damage
checks, ``weights_only=True``). A download that fails names the URL, the
reason and how to use a local file instead; a download that arrives damaged
is removed from the cache, so the next run fetches it again.
"""
import http.client
import logging
import os
import os.path as osp
import shutil
import socket
import tempfile
import urllib.error
import urllib.request
from urllib.parse import urlparse

import torch
from mmengine.dist import barrier, get_dist_info
from mmengine.logging import print_log
from mmengine.runner import checkpoint as mmengine_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader

from .checkpoint import (CheckpointLoadError, checkpoint_damage,
                         load_intact_checkpoint, load_local_checkpoint)

#: Seconds a download may wait for the server to connect or send data.
TIMEOUT_ENV = 'MMDET_SCCONV_DOWNLOAD_TIMEOUT'
DEFAULT_TIMEOUT_S = 60.0

URL_PREFIXES = ('http://', 'https://')
TORCHVISION_PREFIXES = ('torchvision://', 'modelzoo://')
OPENMMLAB_PREFIXES = ('open-mmlab://', 'openmmlab://')
MMCLS_PREFIX = 'mmcls://'


def checkpoint_cache_dir() -> str:
    """Where downloaded checkpoints are kept: torch.hub's, as mmengine's."""
    return osp.join(torch.hub.get_dir(), 'checkpoints')


def cached_checkpoint_path(url: str) -> str:
    """The cache file of ``url``: its last path component in
    :func:`checkpoint_cache_dir` (torch.hub's naming)."""
    return osp.join(checkpoint_cache_dir(), osp.basename(urlparse(url).path))


def download_timeout() -> float:
    """The socket timeout of downloads, from ``MMDET_SCCONV_DOWNLOAD_TIMEOUT``
    (seconds) or 60."""
    value = os.environ.get(TIMEOUT_ENV, '')
    try:
        timeout = float(value) if value else DEFAULT_TIMEOUT_S
    except ValueError:
        timeout = -1.0
    if not timeout > 0:
        raise ValueError(f'{TIMEOUT_ENV} must be a positive number of '
                         f'seconds, got {value!r}.')
    return timeout


def fetch_checkpoint(url: str) -> str:
    """Return the cached file of ``url``, downloading it first if absent.

    The download goes to a temporary file beside the cached one and is
    renamed over it when complete, so an interrupted download leaves
    nothing behind.

    Raises:
        CheckpointLoadError: The URL could not be fetched; the message names
            the URL, the reason and the local alternatives.
    """
    cached = cached_checkpoint_path(url)
    if osp.exists(cached):
        return cached
    os.makedirs(osp.dirname(cached), exist_ok=True)
    print_log(f'Downloading {url} to {cached}', logger='current')
    timeout = download_timeout()
    request = urllib.request.Request(
        url, headers={'User-Agent': 'mmdet-scconv'})
    partial = tempfile.NamedTemporaryFile(
        dir=osp.dirname(cached), prefix='.download-', delete=False)
    try:
        with partial, urllib.request.urlopen(
                request, timeout=timeout) as response:
            shutil.copyfileobj(response, partial, 1 << 20)
        os.replace(partial.name, cached)
    except (OSError, http.client.HTTPException) as error:
        raise CheckpointLoadError(
            f'Cannot download checkpoint {url!r}: '
            f'{_download_failure(error, timeout)}. Check the URL and the '
            f'network; or download the file yourself and pass its local '
            f'path instead (init_cfg=dict(type="Pretrained", '
            f'checkpoint="/path/to/file.pth"), load_from or the checkpoint '
            f'argument of tools/test.py), or put it at {cached!r}, where '
            f'{url!r} is looked for first.') from error
    finally:
        if osp.exists(partial.name):
            os.remove(partial.name)
    return cached


def _download_failure(error, timeout) -> str:
    """The reason a download failed, in words."""
    if isinstance(error, urllib.error.HTTPError):
        return f'the server answered HTTP {error.code} ({error.reason})'
    reason = getattr(error, 'reason', error)
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return f'no answer within {timeout:g} s ({TIMEOUT_ENV} sets it)'
    if isinstance(reason, ConnectionRefusedError):
        return 'the connection was refused'
    if isinstance(reason, socket.gaierror):
        return f'the host name cannot be resolved (no network?): {reason}'
    return f'{type(reason).__name__}: {reason}'


def load_downloaded_checkpoint(url: str, map_location=None):
    """Load the cached file of ``url`` as a local checkpoint; a damaged one
    is removed so that the next run downloads it again."""
    cached = cached_checkpoint_path(url)
    damage = checkpoint_damage(cached)
    if damage:
        os.remove(cached)
        raise CheckpointLoadError(
            f'Checkpoint {url!r}, downloaded to {cached!r}, {damage}. The '
            f'damaged file was removed: run again to download it again, or '
            f'download it yourself and pass its local path.')
    return load_intact_checkpoint(cached, map_location)


def load_from_url(url: str, map_location=None):
    """mmengine's ``http(s)://`` loader, with the checks of local files.

    As in mmengine, in a distributed run rank 0 downloads while the other
    ranks wait, then every rank reads the cached file.
    """
    rank, world_size = get_dist_info()
    if rank == 0:
        fetch_checkpoint(url)
    if world_size > 1:
        barrier()
        if rank > 0:
            fetch_checkpoint(url)
    return load_downloaded_checkpoint(url, map_location)


def _zoo_url(source: str, prefix: str, urls: dict) -> str:
    name = source[len(prefix):]
    if name not in urls:
        known = ', '.join(sorted(urls)[:8])
        raise CheckpointLoadError(
            f'Unknown model {name!r} in {source!r}: mmengine knows '
            f'{len(urls)} {prefix} names ({known}, ...). Check the name, or '
            f'pass the checkpoint URL or a local path instead.')
    return urls[name]


def load_from_torchvision(source: str, map_location=None):
    """``torchvision://NAME`` (and the deprecated ``modelzoo://NAME``): the
    URL torchvision gives for NAME, loaded by :func:`load_from_url`."""
    prefix = next(p for p in TORCHVISION_PREFIXES if source.startswith(p))
    try:
        urls = mmengine_checkpoint.get_torchvision_models()
    except ImportError as error:
        raise CheckpointLoadError(
            f'{source!r} is looked up in torchvision, which is not '
            f'installed ({error}). Install torchvision, or pass the '
            f'checkpoint URL or a local path instead.') from error
    return load_from_url(_zoo_url(source, prefix, urls), map_location)


def load_from_openmmlab(source: str, map_location=None):
    """``open-mmlab://NAME``: the URL (or file under mmengine's home) that
    mmengine's model list, and ``$MMENGINE_HOME/open_mmlab.json``, give."""
    prefix = next(p for p in OPENMMLAB_PREFIXES if source.startswith(p))
    name = source[len(prefix):]
    renamed = mmengine_checkpoint.get_deprecated_model_names().get(name)
    if renamed is not None:
        print_log(
            f'{prefix}{name} is deprecated in favor of {prefix}{renamed}',
            logger='current',
            level=logging.WARNING)
        source = prefix + renamed
    target = _zoo_url(source, prefix,
                      mmengine_checkpoint.get_external_models())
    if target.startswith(URL_PREFIXES):
        return load_from_url(target, map_location)
    return load_local_checkpoint(
        osp.join(mmengine_checkpoint._get_mmengine_home(), target),
        map_location)


def load_from_mmcls(source: str, map_location=None):
    """``mmcls://NAME``: mmengine's mmcls model list, and its conversion of
    an mmcls classifier checkpoint to a backbone's."""
    url = _zoo_url(source, MMCLS_PREFIX,
                   mmengine_checkpoint.get_mmcls_models())
    return mmengine_checkpoint._process_mmcls_checkpoint(
        load_from_url(url, map_location))


def register_remote_checkpoints() -> None:
    """Load URLs and model-zoo names through the loaders here; mmengine's
    other schemes (``pavi://``, ``s3://``) stay as mmengine has them."""
    loaders = {
        URL_PREFIXES: load_from_url,
        TORCHVISION_PREFIXES: load_from_torchvision,
        OPENMMLAB_PREFIXES: load_from_openmmlab,
        (MMCLS_PREFIX, ): load_from_mmcls,
    }
    for prefixes, loader in loaders.items():
        CheckpointLoader.register_scheme(prefixes, loader, force=True)

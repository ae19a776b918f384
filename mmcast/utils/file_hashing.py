# Copyright (c) mmcast contributors. All rights reserved.
"""The sha256 of a file, hashed once per version of the file.

A multi-GB checkpoint or a large annotation json is read in full to hash
it; the result is kept (in memory and on disk, in
``$MMCAST_CACHE_DIR/sha256_cache.json``, default ``~/.cache/mmcast``) by
absolute path, modification time and size, so a later run that names the
same unchanged file does not read it again.
"""
import hashlib
import json
import os
import os.path as osp
import threading
from typing import Dict

from .atomic_io import atomic_dump_json

# entries of the on-disk cache at most (the oldest are dropped)
MAX_CACHE_ENTRIES = 1000

_HASH_CACHE: Dict[str, dict] = {}
_HASH_LOCK = threading.Lock()


def _cache_file() -> str:
    root = os.environ.get('MMCAST_CACHE_DIR') or osp.join(
        osp.expanduser('~'), '.cache', 'mmcast')
    return osp.join(root, 'sha256_cache.json')


def _read_disk_cache() -> dict:
    try:
        with open(_cache_file(), encoding='utf-8') as f:
            cache = json.load(f)
        return cache if isinstance(cache, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_disk_cache(key: str, entry: dict) -> None:
    try:
        cache = _read_disk_cache()
        cache[key] = entry
        if len(cache) > MAX_CACHE_ENTRIES:
            cache = dict(list(cache.items())[-MAX_CACHE_ENTRIES:])
        atomic_dump_json(cache, _cache_file(), sort_keys=False)
    except OSError:
        pass  # the cache is an optimisation only


def file_sha256(path: str, use_cache: bool = True) -> str:
    """Hex sha256 of a file's bytes.

    Args:
        path (str): The file.
        use_cache (bool): Read and keep the result in the cache (by
            absolute path, mtime and size). Defaults to True.

    Raises:
        FileNotFoundError: naming ``path`` if it is not a file.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'file not found: {path}')
    key = osp.realpath(path)
    st = os.stat(key)
    stamp = dict(mtime_ns=st.st_mtime_ns, size=st.st_size)
    if use_cache:
        with _HASH_LOCK:
            entry = _HASH_CACHE.get(key)
        if entry is None:
            entry = _read_disk_cache().get(key)
        if isinstance(entry, dict) and entry.get('mtime_ns') == \
                stamp['mtime_ns'] and entry.get('size') == stamp['size'] \
                and isinstance(entry.get('sha256'), str):
            with _HASH_LOCK:
                _HASH_CACHE[key] = entry
            return entry['sha256']
    h = hashlib.sha256()
    with open(key, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 22), b''):
            h.update(chunk)
    digest = h.hexdigest()
    if use_cache:
        entry = dict(stamp, sha256=digest)
        with _HASH_LOCK:
            _HASH_CACHE[key] = entry
        _write_disk_cache(key, entry)
    return digest

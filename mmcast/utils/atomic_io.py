# Copyright (c) mmcast contributors. All rights reserved.
"""Write files so that a killed job never leaves a half-written one."""
import json
import os
import os.path as osp
import tempfile
from contextlib import contextmanager
from typing import IO, Any, Iterator


@contextmanager
def atomic_open(path: str, mode: str = 'w', **kwargs) -> Iterator[IO]:
    """Open a temporary file beside ``path``; rename it onto ``path`` on success.

    Args:
        path (str): The final file path. Its folder is created if missing.
        mode (str): ``'w'`` or ``'wb'``.
        **kwargs: Passed to :func:`open` (e.g. ``encoding``).

    Yields:
        IO: The open temporary file. If the ``with`` body raises, the
        temporary file is removed and ``path`` is left untouched. The file
        gets the permissions :func:`open` would give it (0666 less the
        umask), not :func:`tempfile.mkstemp`'s private 0600.
    """
    if mode not in ('w', 'wb'):
        raise ValueError(f'atomic_open supports modes "w" and "wb", got {mode!r}')
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=folder, prefix=f'.{osp.basename(path)}.', suffix='.tmp')
    try:
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~UMASK)
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def _read_umask() -> int:
    """The process' umask: from ``/proc/self/status`` where the kernel
    gives it, else by setting it and setting it back (which is why it is
    read once, at import, before any thread could create a file)."""
    try:
        with open('/proc/self/status', encoding='ascii') as f:
            for line in f:
                if line.startswith('Umask:'):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


# the umask files get their permissions from (read once, at import)
UMASK = _read_umask()


def atomic_dump_json(obj: Any, path: str, **json_kwargs) -> None:
    """Dump ``obj`` as JSON to ``path`` atomically (sorted keys by default)."""
    json_kwargs.setdefault('sort_keys', True)
    with atomic_open(path, 'w', encoding='utf-8') as f:
        json.dump(obj, f, **json_kwargs)

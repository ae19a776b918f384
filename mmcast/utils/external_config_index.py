# Copyright (c) mmcast contributors. All rights reserved.
"""MMEngine's look-up of a scoped base config (``mmdet::...``), read once
a process and safe to run from several threads.

For every ``package::path`` in a config's ``_base_``, MMEngine's
``Config.fromfile``

- asks whether the package is installed and where, with
  ``mmengine.utils.is_installed``, which reloads ``pkg_resources`` on every
  call. Two threads that load configs at once then see two versions of its
  ``Distribution`` class, and one fails with ``TypeError: Expected str,
  Requirement, or Distribution``;
- reads the package's ``model-index.yml`` and each metafile it lists (about
  100 YAML files for MMDetection: 0.3 s on a CPU core) to find whether the
  path names one of its model configs, and falls back to the package's
  config folder when it does not (``mmdet::_base_/...``). It keeps nothing:
  a pipeline that loads its stages' configs read the index 18 times, 5.6 s
  of its start.

:func:`cache_external_config_index` makes the process answer both once, one
thread at a time; the files a path resolves to are the same.
"""
import copy
import functools
import threading
from typing import Dict, Optional

_LOCK = threading.Lock()


def cache_external_config_index() -> None:
    """Remember MMEngine's answers for each scoped base config in this
    process (idempotent, thread-safe)."""
    from mmengine.config import config, utils

    with _LOCK:
        if not getattr(utils._get_cfg_metainfo, 'cached', False):
            utils._get_cfg_metainfo = _remembered_metainfo(
                utils._get_cfg_metainfo)
        if not getattr(config.get_installed_path, 'cached', False):
            config.is_installed, config.get_installed_path = \
                _remembered_package_paths(config.is_installed,
                                          config.get_installed_path)


def _remembered_metainfo(original):
    """``_get_cfg_metainfo`` answering each (package, config) once."""

    @functools.lru_cache(maxsize=None)
    def answer(package_path: str, cfg_path: str) -> tuple:
        try:
            return original(package_path, cfg_path), None
        except ValueError as error:  # not a model config: a base file
            return None, str(error)

    def metainfo(package_path: str, cfg_path: str) -> dict:
        with _LOCK:
            found, error = answer(package_path, cfg_path)
        if error is not None:
            raise ValueError(error)
        return copy.deepcopy(found)

    metainfo.cached = True
    return metainfo


def _remembered_package_paths(is_installed, get_installed_path) -> tuple:
    """``is_installed`` and ``get_installed_path`` answering an installed
    package once; one not installed is asked again (it may be installed
    later in the process)."""
    paths: Dict[str, str] = {}

    def path_of(package: str) -> Optional[str]:
        with _LOCK:
            if package not in paths and is_installed(package):
                paths[package] = get_installed_path(package)
            return paths.get(package)

    def installed(package: str) -> bool:
        return path_of(package) is not None

    def installed_path(package: str) -> str:
        with _LOCK:
            if package in paths:
                return paths[package]
            return get_installed_path(package)  # raises, or a source tree

    installed_path.cached = True
    return installed, installed_path

# Copyright (c) mmcast contributors. All rights reserved.
"""MMEngine's look-up of a scoped base config (``mmdet::...``), read once
a process.

For every ``package::path`` in a config's ``_base_``, MMEngine's
``Config.fromfile`` reads the package's ``model-index.yml`` and each
metafile it lists (about 100 YAML files for MMDetection: 0.3 s on a CPU
core) to find whether the path names one of its model configs, and falls
back to the package's config folder when it does not (``mmdet::_base_/
...``). It keeps nothing: a pipeline that loads its stages' configs read the
index 18 times, 5.6 s of its start. :func:`cache_external_config_index`
makes the process remember each answer; the files a path resolves to are
the same.
"""
import copy
import functools


def cache_external_config_index() -> None:
    """Remember MMEngine's answer for each scoped base config in this
    process (idempotent)."""
    from mmengine.config import utils

    if getattr(utils._get_cfg_metainfo, 'cached', False):
        return
    original = utils._get_cfg_metainfo

    @functools.lru_cache(maxsize=None)
    def answer(package_path: str, cfg_path: str) -> tuple:
        try:
            return original(package_path, cfg_path), None
        except ValueError as error:  # not a model config: a base file
            return None, str(error)

    def metainfo(package_path: str, cfg_path: str) -> dict:
        found, error = answer(package_path, cfg_path)
        if error is not None:
            raise ValueError(error)
        return copy.deepcopy(found)

    metainfo.cached = True
    utils._get_cfg_metainfo = metainfo

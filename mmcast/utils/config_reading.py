# Copyright (c) mmcast contributors. All rights reserved.
"""Read a config as MMDetection's command lines do: its overrides merged,
its ``custom_imports`` imported, MMDetection's modules registered and its
default scope set."""
import os.path as osp
from typing import Optional, Union

from mmengine.config import Config


def read_config(config: Union[str, Config],
                cfg_options: Optional[dict] = None) -> Config:
    """A config file (or a loaded config) ready to build from.

    Args:
        config (str | Config): The config file, or a loaded config.
        cfg_options (dict, optional): Overrides, merged as
            ``--cfg-options`` are (``Config.merge_from_dict``).

    Returns:
        Config: The config, overrides merged.

    Raises:
        FileNotFoundError: Naming a missing config file.
    """
    from mmdet.utils import register_all_modules
    from mmengine.registry import init_default_scope
    from mmengine.utils import import_modules_from_strings
    if isinstance(config, str):
        if not osp.isfile(config):
            raise FileNotFoundError(f'config not found: {config}')
        config = Config.fromfile(config)
    if cfg_options:
        config.merge_from_dict(cfg_options)
    if config.get('custom_imports'):
        import_modules_from_strings(**config['custom_imports'])
    register_all_modules(init_default_scope=False)
    init_default_scope(config.get('default_scope', 'mmdet'))
    return config

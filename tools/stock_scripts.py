# Copyright (c) mmcast contributors. All rights reserved.
"""The stock OpenMMLab script that ``mim train/test mmcast`` hands over to.

mmcast's configs are MMDetection configs, except SwinMTL's
(``configs/mmcast/swinmtl/``), which register into MMSegmentation
(``default_scope='mmseg'``): the config's ``default_scope`` picks the
codebase whose ``tools/<name>`` runs.
"""
import importlib
import os.path as osp
from typing import List

from mmengine.config import Config

#: default_scope -> the codebase that owns the scripts
CODEBASES = {'mmdet': 'mmdet', 'mmseg': 'mmseg'}


def stock_script(name: str, argv: List[str]) -> str:
    """Path of ``tools/<name>`` of the codebase of the config in ``argv``.

    Args:
        name (str): ``train.py`` or ``test.py``.
        argv (list[str]): The script's arguments; the config is the first
            one. Without a config (mim first asks the script for ``-h``)
            MMDetection's script answers: both codebases' scripts take the
            same options.

    Returns:
        str: The script in the installed codebase's ``.mim/tools``.
    """
    config = argv[0] if argv and osp.isfile(argv[0]) else None
    scope = Config.fromfile(config).get('default_scope', 'mmdet') \
        if config else 'mmdet'
    if scope not in CODEBASES:
        raise ValueError(f'{config}: default_scope={scope!r}; mmcast runs '
                         f'configs of {sorted(CODEBASES)}')
    package = importlib.import_module(CODEBASES[scope])
    path = osp.join(osp.dirname(package.__file__), '.mim', 'tools', name)
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{path} not found: {scope} was installed without its tools; '
            f'reinstall it with `mim install {scope}`')
    return path

# Copyright (c) mmcast contributors. All rights reserved.
"""Loading a config file with an environment of its own.

MMEngine's ``Config.fromfile`` fills a config's ``{{$VAR:default}}``
placeholders from ``os.environ`` (as a regular-expression replacement
template). A program that loads the
configs of several runs, or loads them from threads, cannot change
``os.environ`` for each without the others seeing it: :func:`load_config`
takes the environment as an argument instead. It copies the config and
every ``_base_`` file it reaches into a private folder, fills the
placeholders there as MMEngine does (the stages load their configs with
MMEngine: both read the same values), and the predefined
``{{ fileDirname }}`` ones with the original file's names, and loads the
copy; the returned config names the original file. Relative paths are read
against ``root`` (the folder the stages run in), never the working
directory.
"""
import os
import os.path as osp
import re
import tempfile
from typing import Dict, Mapping, Optional

from .external_config_index import cache_external_config_index

# MMEngine's placeholder of an environment variable with its default
ENV_PLACEHOLDER = re.compile(
    r'\{\{[\'\"]?\s*\$(\w+)\s*\:\s*(\S*?)\s*[\'\"]?\}\}')
PREDEFINED = re.compile(r'\{\{\s*(fileDirname|fileBasename|'
                        r'fileBasenameNoExtension|fileExtname)\s*\}\}')


def fill_placeholders(text: str, filename: str,
                      env: Mapping[str, str]) -> str:
    """``text`` of the config ``filename`` with its environment placeholders
    filled from ``env`` (a variable not in it: the placeholder's default)
    and its predefined variables from ``filename``.

    Raises:
        KeyError: A variable that ``env`` lacks and that has no default.
    """
    from mmengine.logging import print_log

    base = osp.basename(filename)
    names = dict(fileDirname=osp.dirname(filename), fileBasename=base,
                 fileBasenameNoExtension=osp.splitext(base)[0],
                 fileExtname=osp.splitext(base)[1])
    text = PREDEFINED.sub(lambda m: names[m.group(1)], text)

    def value(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:  # MMEngine's message, in the log it writes to
            print_log(f'Using env variable `{name}` with value of '
                      f'{env[name]} to replace item in config.',
                      logger='current')
        found = env.get(name, default)
        if not found:
            raise KeyError(f'{filename}: `{name}` is not in the stages\' '
                           'environment and its placeholder has no default')
        # as MMEngine fills it (a replacement template), so that the
        # pipeline reads what the stages, loading with MMEngine, read
        return match.expand(found)

    return ENV_PLACEHOLDER.sub(value, text)


def _config_closure(filename: str) -> Dict[str, str]:
    """Every config file ``filename`` reaches through ``_base_`` (scoped
    ``mmdet::`` bases left out: MMEngine reads those from their package),
    ``{absolute path: text}``."""
    from mmengine.config import Config

    found, todo = {}, [osp.abspath(filename)]
    while todo:
        path = todo.pop()
        if path in found:
            continue
        with open(path, encoding='utf-8') as f:
            found[path] = f.read()
        for base in Config._get_base_files(path):
            if '::' in base:
                continue
            todo.append(osp.normpath(osp.join(osp.dirname(path), base)))
    return found


def load_config(path: str, env: Optional[Mapping[str, str]] = None,
                root: Optional[str] = None):
    """The config at ``path``, its placeholders filled from ``env``.

    Args:
        path (str): The config file, relative to ``root`` or absolute.
        env (Mapping[str, str], optional): The environment its
            ``{{$VAR:default}}`` placeholders read (``None``: MMEngine's own
            loading, from ``os.environ``).
        root (str, optional): The folder a relative ``path`` is in
            (default: the working directory).

    Returns:
        Config: Naming ``path`` as its file.
    """
    from mmengine.config import Config

    cache_external_config_index()
    if root is not None and not osp.isabs(path):
        path = osp.join(root, path)
    if env is None:
        return Config.fromfile(path)
    files = _config_closure(path)
    top = osp.commonpath([osp.dirname(p) for p in files])
    with tempfile.TemporaryDirectory(prefix='mmcast_config_') as copy_dir:
        for original, text in files.items():
            copy = osp.join(copy_dir, osp.relpath(original, top))
            os.makedirs(osp.dirname(copy), exist_ok=True)
            with open(copy, 'w', encoding='utf-8') as f:
                f.write(fill_placeholders(text, original, env))
        filled = Config.fromfile(
            osp.join(copy_dir, osp.relpath(osp.abspath(path), top)),
            use_predefined_variables=False, use_environment_variables=False)
    return Config(filled.to_dict(), cfg_text=filled.text,
                  filename=osp.abspath(path))

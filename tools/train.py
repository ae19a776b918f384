# Copyright (c) mmcast contributors. All rights reserved.
"""``mim train mmcast CONFIG ...``: MMDetection's own ``tools/train.py``.

mim runs ``mmcast/.mim/tools/train.py``; this file hands the command line,
unchanged, to the ``tools/train.py`` that ships with mmdet, so
``mim train mmcast`` behaves exactly as ``mim train mmdet`` (the configs
register mmcast through their ``custom_imports``)::

    mim train mmcast configs/mmcast/supervised_student_toy.py
    mim train mmcast supervised_student_toy.py   # found in mmcast/.mim/configs
"""
import os.path as osp
import runpy

import mmdet


def mmdet_script(name: str) -> str:
    """Path of ``tools/<name>`` of the installed mmdet (its ``.mim`` copy)."""
    path = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', name)
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{path} not found: mmdet was installed without its tools; '
            'reinstall it with `mim install "mmdet==3.3.0"`')
    return path


if __name__ == '__main__':
    runpy.run_path(mmdet_script('train.py'), run_name='__main__')

# Copyright (c) mmcast contributors. All rights reserved.
"""``mim test mmcast CONFIG --checkpoint CKPT``: MMDetection's ``tools/test.py``.

mim runs ``mmcast/.mim/tools/test.py``; this file hands the command line,
unchanged, to the ``tools/test.py`` that ships with mmdet, so
``mim test mmcast`` behaves exactly as ``mim test mmdet`` (the configs
register mmcast through their ``custom_imports``)::

    mim test mmcast configs/mmcast/supervised_student_toy.py \\
        --checkpoint work_dirs/supervised_student_toy/iter_2000.pth
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
    runpy.run_path(mmdet_script('test.py'), run_name='__main__')

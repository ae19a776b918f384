# Copyright (c) mmcast contributors. All rights reserved.
"""``mim test mmcast CONFIG --checkpoint CKPT``: MMDetection's own
``tools/test.py``.

mim runs ``mmcast/.mim/tools/test.py``; this file hands the command line,
unchanged, to the ``tools/test.py`` that ships with mmdet, so ``mim test
mmcast`` behaves exactly as ``mim test mmdet`` (the configs register mmcast
through their ``custom_imports``)::

    mim test mmcast configs/mmcast/supervised_student_toy.py \\
        --checkpoint work_dirs/supervised_student_toy/iter_2000.pth
"""
import runpy

from mmcast.apis.pipeline.launchers import stock_script

if __name__ == '__main__':
    runpy.run_path(stock_script('test'), run_name='__main__')

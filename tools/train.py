# Copyright (c) mmcast contributors. All rights reserved.
"""``mim train mmcast CONFIG ...``: MMDetection's own ``tools/train.py``.

mim runs ``mmcast/.mim/tools/train.py``; this file hands the command line,
unchanged, to the ``tools/train.py`` that ships with mmdet, so ``mim train
mmcast`` behaves exactly as ``mim train mmdet`` (the configs register
mmcast through their ``custom_imports``)::

    mim train mmcast configs/mmcast/supervised_student_toy.py
    mim train mmcast supervised_student_toy.py   # found in mmcast/.mim/configs
"""
import runpy

from mmcast.apis.pipeline.launchers import stock_script

if __name__ == '__main__':
    runpy.run_path(stock_script('train'), run_name='__main__')

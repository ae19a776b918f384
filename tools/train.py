# Copyright (c) mmcast contributors. All rights reserved.
"""``mim train mmcast CONFIG ...``: the stock ``tools/train.py``.

mim runs ``mmcast/.mim/tools/train.py``; this file hands the command line,
unchanged, to the ``tools/train.py`` that ships with mmdet (mmseg for the
SwinMTL configs, see :mod:`stock_scripts`), so ``mim train mmcast`` behaves
exactly as ``mim train mmdet`` / ``mim train mmseg`` (the configs register
mmcast through their ``custom_imports``)::

    mim train mmcast configs/mmcast/supervised_student_toy.py
    mim train mmcast supervised_student_toy.py   # found in mmcast/.mim/configs
    mim train mmcast swinmtl_swinv2-tiny_toy.py  # MMSegmentation's train.py
"""
import runpy
import sys

from stock_scripts import stock_script

if __name__ == '__main__':
    runpy.run_path(stock_script('train.py', sys.argv[1:]), run_name='__main__')

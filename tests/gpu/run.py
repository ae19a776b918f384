# Copyright (c) mmcast contributors. All rights reserved.
"""Run the GPU suite (``make test-gpu``): ``python tests/gpu/run.py [pytest
arguments]``.

Fails with one line, and exit status 1, when no CUDA device is visible: the
suite checks what only a GPU shows, so it never skips.
"""
import os.path as osp
import sys

NEEDS_CUDA = ('the GPU suite (tests/gpu) needs a CUDA device, and none is '
              'visible')


def main(argv=None) -> int:
    import torch
    if not torch.cuda.is_available():
        print(NEEDS_CUDA, file=sys.stderr)
        return 1
    import pytest
    args = list(sys.argv[1:] if argv is None else argv)
    return int(pytest.main(['-q', osp.dirname(osp.abspath(__file__))] +
                           args))


if __name__ == '__main__':
    sys.exit(main())

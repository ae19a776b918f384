# Copyright (c) mmcast contributors. All rights reserved.
"""The SwinMTL project: code in :mod:`projects.swinmtl.swinmtl`, configs in
``configs/``, tools in ``tools/``, tests in ``tests/`` (see its README)."""

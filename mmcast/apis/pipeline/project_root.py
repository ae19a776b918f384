# Copyright (c) mmcast contributors. All rights reserved.
"""The folder the pipeline's stage commands run in (:data:`REPO_ROOT`): the
tables of stages and every config path are relative to it."""
import os.path as osp


def _project_root() -> str:
    """The folder the stage configs are found in: the source checkout, or
    ``mmcast/.mim`` of an installed package (configs and tools)."""
    package = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    checkout = osp.dirname(package)
    if osp.isdir(osp.join(checkout, 'configs', 'mmcast')):
        return checkout
    return osp.join(package, '.mim')


# Stage commands run here; config paths are relative to it.
REPO_ROOT = _project_root()

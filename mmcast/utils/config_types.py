# Copyright (c) mmcast contributors. All rights reserved.
"""The registry type a config dict names, read the same way everywhere."""
from typing import Any, Optional


def type_name_of(cfg: Any) -> Optional[str]:
    """``cfg['type']`` without a registry scope.

    Args:
        cfg: A config dict (a class as ``type`` gives its name).

    Returns:
        str | None: ``'Resize'`` for ``type='mmdet.Resize'``; ``None`` when
        ``cfg`` is not a dict with a ``type``.
    """
    if not isinstance(cfg, dict) or 'type' not in cfg:
        return None
    type_ = cfg['type']
    name = type_ if isinstance(type_, str) else getattr(
        type_, '__name__', str(type_))
    return name.split('.')[-1]

# Copyright (c) mmcast contributors. All rights reserved.
"""Let ``torch.load(weights_only=True)`` read MMEngine's own checkpoints.

Since torch 2.6 ``torch.load`` defaults to ``weights_only=True``, which only
unpickles allow-listed globals. MMEngine (<= 0.10.7) stores its
``MessageHub`` state (``HistoryBuffer`` objects holding numpy arrays and
scalars) in every checkpoint, so ``mim test`` and ``--resume`` fail with
``UnpicklingError``. Rather than switching the check off, this module adds
exactly the globals such checkpoints contain to torch's allow-list.

``HistoryBuffer`` pickles its bound statistics methods as
``getattr(buffer, 'mean')``. Allow-listing the builtin ``getattr`` would let a
crafted file reach any attribute of any allow-listed object, so the name
``builtins.getattr`` is mapped to :func:`history_buffer_getattr`, which only
returns public methods of ``HistoryBuffer`` instances.
"""
import codecs
import pickle
from typing import Any, List

import numpy as np
import torch

_ALLOWED = False


def history_buffer_getattr(obj: Any, name: str) -> Any:
    """``getattr`` restricted to the public methods of ``HistoryBuffer``.

    ``HistoryBuffer`` keeps its statistics methods in a dict that pickles as
    ``getattr(HistoryBuffer, 'min')`` and so on.

    Raises:
        pickle.UnpicklingError: For any other object or attribute.
    """
    from mmengine.logging import HistoryBuffer

    if ((obj is HistoryBuffer or isinstance(obj, HistoryBuffer))
            and isinstance(name, str)
            and not name.startswith('_')
            and callable(getattr(HistoryBuffer, name, None))):
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'refusing getattr({obj!r:.60}, {name!r}) while loading a '
        'checkpoint with weights_only=True: mmcast only allows HistoryBuffer '
        'statistics methods')


def mmengine_checkpoint_globals() -> List[object]:
    """The globals that MMEngine checkpoints pickle besides tensors.

    Returns:
        list: classes and reconstruction functions: ``HistoryBuffer`` and
        its restricted ``getattr``, numpy's array/scalar reconstructors,
        ``np.ndarray``, ``np.dtype``, the concrete dtype classes of
        numpy >= 1.25 and ``_codecs.encode`` (numpy's byte payloads).
    """
    from mmengine.logging import HistoryBuffer

    try:  # numpy >= 2 moved the private core module
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # pragma: no cover - numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar
    allowed = [
        HistoryBuffer, (history_buffer_getattr, 'builtins.getattr'),
        _reconstruct, scalar, np.ndarray, np.dtype, codecs.encode
    ]
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        allowed += [
            getattr(dtypes, name) for name in dir(dtypes)
            if name.endswith('DType')
        ]
    return allowed


def allow_mmengine_checkpoint_globals() -> None:
    """Add :func:`mmengine_checkpoint_globals` to torch's safe globals.

    Idempotent; a no-op on torch versions without ``add_safe_globals``.
    """
    global _ALLOWED
    if _ALLOWED or not hasattr(torch.serialization, 'add_safe_globals'):
        return
    torch.serialization.add_safe_globals(mmengine_checkpoint_globals())
    _ALLOWED = True

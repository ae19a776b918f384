# Copyright (c) mmcast contributors. All rights reserved.
"""Load a checkpoint file, or refuse it in one line naming the path.

``torch.load`` reports a truncated file as ``PytorchStreamReader failed
reading zip archive`` and a file of another kind as an ``UnpicklingError``
page, neither naming the file. :func:`load_checkpoint_file` loads with
``weights_only=True`` (MMEngine's own globals are allow-listed by
:mod:`mmcast.utils.checkpoint_safety`) and turns every failure into a
:class:`CheckpointError` that says which file and why.
:func:`check_weights_fit` refuses weights of another architecture (no
parameter of the model in the file, or parameters of other shapes, e.g. a
classifier for another number of classes).
"""
import os.path as osp
import pickle
import re
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.runner import CheckpointLoader
from torch import nn

from .work_dir_checkpoint import WORK_DIR_SCHEME, resolve_checkpoint

RevisedKeys = Sequence[Tuple[str, str]]


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names its path."""


def _reason(error: BaseException) -> str:
    """What a ``torch.load`` failure means, in a few words."""
    text = str(error)
    if isinstance(error, PermissionError):
        return 'cannot be read (permission denied)'
    if isinstance(error, (EOFError, OSError)) or \
            'central directory' in text or 'PytorchStreamReader' in text:
        return ('truncated or damaged (incomplete archive): copy or '
                'download it again, or point to another checkpoint')
    if isinstance(error, pickle.UnpicklingError):
        found = re.search(r'Unsupported global: GLOBAL (\S+)', text)
        if found:
            return (f'holds objects that safe loading (weights_only) '
                    f'refuses ({found.group(1)}): not an MMEngine/PyTorch '
                    'weights file')
        return 'not a PyTorch checkpoint'
    first = text.strip().splitlines()[0] if text.strip() else ''
    return f'cannot be loaded ({type(error).__name__}: {first[:200]})'


def load_checkpoint_file(path: str,
                         map_location: str = 'cpu',
                         mmap: bool = False) -> dict:
    """Load a checkpoint with ``weights_only=True``.

    Args:
        path (str): A local file, ``work-dir://<work dir>`` (its finished
            run's checkpoint, :mod:`~mmcast.utils.work_dir_checkpoint`), or
            a URL / ``open-mmlab://`` name (loaded through MMEngine's
            ``CheckpointLoader``).
        map_location (str): Where to put the tensors. Defaults to ``'cpu'``.
        mmap (bool): Memory-map a local file instead of reading it (fast
            for large files; falls back to a plain load for the legacy
            format).

    Returns:
        dict: The checkpoint.

    Raises:
        FileNotFoundError: Naming a missing local file (or work dir).
        CheckpointError: ``'<path>: <reason>'`` for a truncated or damaged
            file, a file of another kind, or one that holds no dict.
    """
    path = resolve_checkpoint(path)
    try:
        if '://' in path and not osp.exists(path):
            ckpt = CheckpointLoader.load_checkpoint(path, map_location)
        elif not osp.isfile(path):
            raise FileNotFoundError(f'checkpoint not found: {path}')
        elif mmap:
            try:
                ckpt = torch.load(path, map_location=map_location,
                                  weights_only=True, mmap=True)
            except RuntimeError as e:
                if 'mmap can only be used' not in str(e):
                    raise
                ckpt = torch.load(path, map_location=map_location,
                                  weights_only=True)
        else:
            ckpt = torch.load(path, map_location=map_location,
                              weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001 - every load error is reported
        raise CheckpointError(f'{path}: {_reason(e)}') from e
    if not isinstance(ckpt, dict):
        raise CheckpointError(f'{path}: not a checkpoint (it holds a '
                              f'{type(ckpt).__name__}, not a dict)')
    return ckpt


def checkpoint_damage(path: str) -> Optional[str]:
    """Why the checkpoint at ``path`` cannot be loaded (it is loaded
    memory-mapped, so this is quick even for large files), or ``None``."""
    try:
        load_checkpoint_file(path, mmap=True)
    except (CheckpointError, FileNotFoundError) as e:
        return str(e)
    return None


def state_dict_of(checkpoint: dict) -> Dict[str, object]:
    """The weights of a checkpoint (``state_dict`` when it has one)."""
    state = checkpoint.get('state_dict', checkpoint)
    return state if isinstance(state, dict) else {}


def revise_key(key: str, revise_keys: RevisedKeys) -> str:
    """``key`` with each ``(pattern, replacement)`` of ``revise_keys``
    applied in turn (as MMEngine's ``revise_keys``)."""
    for pattern, repl in revise_keys:
        key = re.sub(pattern, repl, key)
    return key


def weights_fit(model_shapes: Dict[str, torch.Size],
                state_dict: Dict[str, object],
                revise_keys: RevisedKeys = ()) -> Tuple[int, List[tuple]]:
    """How a state dict fits a model.

    Args:
        model_shapes (dict): The model's parameter and buffer shapes.
        state_dict (dict): The checkpoint's weights.
        revise_keys (Sequence[tuple]): ``(pattern, replacement)`` applied to
            the checkpoint keys, as MMEngine's ``load_checkpoint`` does.

    Returns:
        tuple: the number of model weights found with the right shape, and
        ``(key, checkpoint shape, model shape)`` of those with another.
    """
    matched, mismatched = 0, []
    for key, value in state_dict.items():
        key = revise_key(key, revise_keys)
        if key not in model_shapes or not hasattr(value, 'shape'):
            continue
        if tuple(value.shape) == tuple(model_shapes[key]):
            matched += 1
        else:
            mismatched.append(
                (key, tuple(value.shape), tuple(model_shapes[key])))
    return matched, mismatched


def check_weights_fit(path: str,
                      model: nn.Module,
                      checkpoint: dict,
                      revise_keys: RevisedKeys = (),
                      allow_mismatch: bool = False) -> List[tuple]:
    """Refuse a checkpoint of another architecture for ``model``.

    Args:
        path (str): The checkpoint's path, for the message.
        model (nn.Module): The model it is loaded into (may live on the
            ``meta`` device: only shapes are compared).
        checkpoint (dict): The loaded checkpoint.
        revise_keys (Sequence[tuple]): Key rewrites (see :func:`weights_fit`).
        allow_mismatch (bool): Accept weights of other shapes (MMEngine
            skips them, e.g. a classifier fine-tuned for other classes).

    Returns:
        list[tuple]: The mismatched ``(key, checkpoint shape, model shape)``.

    Raises:
        CheckpointError: if no weight of the model is in the checkpoint, or
            (without ``allow_mismatch``) some have other shapes.
    """
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    state = state_dict_of(checkpoint)
    matched, mismatched = weights_fit(shapes, state, revise_keys)
    if not matched:
        example = next(iter(state), None)
        raise CheckpointError(
            f'{path}: weights of another architecture: none of the '
            f'{len(shapes)} weights of {type(model).__name__} is in it '
            f'(it holds {len(state)} entries, e.g. {example!r})')
    if mismatched and not allow_mismatch:
        key, got, want = mismatched[0]
        raise CheckpointError(
            f'{path}: weights of another architecture or number of '
            f'classes: {key} is {list(got)} in the checkpoint but '
            f'{list(want)} in {type(model).__name__}'
            + (f' ({len(mismatched) - 1} more differ)'
               if len(mismatched) > 1 else ''))
    return mismatched


def checkpoint_classes(checkpoint: dict) -> Optional[Tuple[str, ...]]:
    """The class names an MMEngine checkpoint was trained on, if recorded.

    mmdet's ``ConcatDataset`` stores a list of metainfos; the first counts.
    """
    meta = checkpoint.get('meta') or {}
    meta = meta.get('dataset_meta') or {} if isinstance(meta, dict) else {}
    if isinstance(meta, (list, tuple)):
        meta = meta[0] if meta else {}
    classes = meta.get('classes') if isinstance(meta, dict) else None
    return tuple(classes) if classes is not None else None


@CheckpointLoader.register_scheme(prefixes=WORK_DIR_SCHEME)
def load_from_work_dir(filename: str,
                       map_location: Optional[str] = None) -> dict:
    """MMEngine's checkpoint loader of ``work-dir://<work dir>``: the
    finished run's checkpoint (:func:`~mmcast.utils.work_dir_checkpoint.
    finished_checkpoint`), loaded with ``weights_only=True``."""
    return load_checkpoint_file(resolve_checkpoint(filename),
                                map_location or 'cpu')

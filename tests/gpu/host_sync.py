# Copyright (c) mmcast contributors. All rights reserved.
"""No hidden host synchronisation: :func:`no_host_sync` and its exemptions.

:func:`no_host_sync` runs a block under
``torch.cuda.set_sync_debug_mode('error')``: every CUDA call that makes the
host wait for the device raises (``.item()`` / ``bool()`` / ``float()`` of a
device tensor, a blocking copy between host and device, including a tensor
made from host data on the device (``new_tensor``, ``torch.tensor(...,
device=...)``, indexing with a Python list), ``nonzero``, boolean-mask
indexing and its backward, ``unique``, ...).

The regions of :data:`EXEMPT_REGIONS` are exempt, each for a stated reason:
a function call and the autograd nodes it records (so its backward as well).
Two kinds:

* **inherent**: the result needs host data: Hungarian matching solves on the
  host (scipy), dynamic loss scaling decides on the host whether to step,
  GD's rule keeps a data-dependent number of pseudo-instances;
* **stock**: MMDetection / MMEngine code outside this project that reads
  device data back (listed so that the check covers this project's code).

Mode changes are global (the autograd engine runs backward on its own
thread); a counter keeps nested and interleaved exemptions consistent.
"""
import functools
import importlib
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator, List, Tuple

import torch

#: ``(module, attribute path, kind, reason)`` of every exempt region.
EXEMPT_REGIONS: Tuple[Tuple[str, str, str, str], ...] = (
    ('mmdet.models.dense_heads.mask2former_head',
     'Mask2FormerHead._loss_by_feat_single', 'inherent + stock',
     'Hungarian matching on the host (HungarianAssigner: cost matrix to the '
     'host, scipy, matches back to the device); MaskPseudoSampler: nonzero '
     '/ unique of the matches; class weights and the mask count made from '
     'host numbers (new_tensor), max(count, 1) on a device tensor, '
     'mask_preds[mask_weights > 0] (boolean index, and its backward)'),
    ('mmdet.models.layers.msdeformattn_pixel_decoder',
     'MSDeformAttnPixelDecoder.forward', 'stock',
     'level shapes kept as device tensors (copied from the host) and read '
     'back: split sizes, reshapes, the encoder\'s reference points, '
     'mmcv\'s shape assertion'),
    ('mmengine.model.base_model.data_preprocessor',
     'ImgDataPreprocessor.forward', 'stock',
     'BGR -> RGB by indexing with the host list [2, 1, 0] (a blocking copy '
     'of the index to the device)'),
    ('mmengine.optim.optimizer.optimizer_wrapper', 'OptimWrapper._clip_grad',
     'stock', 'logs the gradient norm with float()'),
    ('mmcast.models.detectors.guided_distiller',
     'guided_distillation_pseudo_labels', 'inherent',
     'Guided Distillation\'s rule keeps a data-dependent number of '
     'pseudo-instances per image (boolean selection): MMDetection\'s '
     'targets are variable-length lists'),
)
#: The exemption of the AMP loss scaler's ``step`` (an instance attribute,
#: see :func:`exempt_loss_scaler`).
LOSS_SCALER_STEP = (
    'inherent', 'dynamic loss scaling: GradScaler.step reads found_inf on '
    'the host to skip the optimizer step after inf / nan gradients')

_lock = threading.Lock()
_state = dict(checking=False, exempt_depth=0)


def _set_mode(mode: int) -> None:
    torch.cuda.set_sync_debug_mode(mode)


def _enter_exempt() -> None:
    with _lock:
        _state['exempt_depth'] += 1
        _set_mode(0)


def _leave_exempt() -> None:
    with _lock:
        _state['exempt_depth'] = max(_state['exempt_depth'] - 1, 0)
        if _state['checking'] and _state['exempt_depth'] == 0:
            _set_mode(2)


@contextmanager
def no_host_sync() -> Iterator[None]:
    """Raise on any host synchronisation in the block, exempt regions
    aside."""
    with _lock:
        _state.update(checking=True, exempt_depth=0)
        _set_mode(2)
    try:
        yield
    finally:
        with _lock:
            _state.update(checking=False, exempt_depth=0)
            _set_mode(0)


def _next_sequence_nr() -> int:
    """The autograd sequence number of a node recorded now (this thread)."""
    with torch.enable_grad():
        node = torch.zeros((), requires_grad=True).clone().grad_fn
    return node._sequence_nr()


def _tensors(obj: Any) -> Iterator[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from _tensors(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from _tensors(item)


def _exempt_backward(outputs: Any, first: int, last: int) -> None:
    """Hook every autograd node recorded between sequence numbers ``first``
    and ``last`` that leads to ``outputs``: exempt while it runs."""
    stack = [t.grad_fn for t in _tensors(outputs) if t.grad_fn is not None]
    seen = set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if not first < node._sequence_nr() < last:
            continue
        node.register_prehook(lambda grad_outputs: _enter_exempt())
        node.register_hook(lambda grad_inputs, grad_outputs: _leave_exempt())
        stack.extend(next_node for next_node, _ in node.next_functions)


def exempt(fn: Callable) -> Callable:
    """``fn`` with its call, and the backward of what it records, exempt."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        first = _next_sequence_nr()
        _enter_exempt()
        try:
            outputs = fn(*args, **kwargs)
        finally:
            _leave_exempt()
        _exempt_backward(outputs, first, _next_sequence_nr())
        return outputs

    return wrapper


def exempt_regions(monkeypatch) -> List[str]:
    """Patch every region of :data:`EXEMPT_REGIONS` (undone with
    ``monkeypatch``); returns their names."""
    names = []
    for module, path, _, _ in EXEMPT_REGIONS:
        owner = importlib.import_module(module)
        *parents, attr = path.split('.')
        for parent in parents:
            owner = getattr(owner, parent)
        monkeypatch.setattr(owner, attr, exempt(getattr(owner, attr)))
        names.append(f'{module}.{path}')
    return names


def exempt_loss_scaler(optim_wrapper, monkeypatch) -> None:
    """Exempt the ``step`` of an ``AmpOptimWrapper``'s loss scaler (see
    :data:`LOSS_SCALER_STEP`); it runs the optimizer's step inside."""
    scaler = optim_wrapper.loss_scaler
    monkeypatch.setattr(scaler, 'step', exempt(scaler.step))

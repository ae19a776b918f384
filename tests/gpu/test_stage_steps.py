# Copyright (c) mmcast contributors. All rights reserved.
"""One training step of every Cityscapes stage config on CUDA, under the
configs' AMP (``AmpOptimWrapper``, fp16), with no hidden host
synchronisation.

Stages 1a, 1b, 2, 3, the labels-only baseline and Guided Distillation, built
from their configs (registry, random weights, no checkpoint) at the
configs' architectures, queries and points; only the images are small
(128x256). Stages 1b and 2 label offline: their unlabeled branch carries
pseudo-labels as ``gt_instances``, the teacher takes no part in the step.
Guided Distillation's teacher labels in the step (its rule opened so that a
random teacher yields pseudo-instances).

The batch is put on the device before the step (the masks as
``TensorMasks``): the loader's copy is not part of the check. After one
unchecked step (lazy initialisation) the second runs in
:func:`host_sync.no_host_sync`, the regions of
``host_sync.EXEMPT_REGIONS`` and the AMP loss scaler's ``step`` exempt
(their reasons are listed there), and the inputs the model trains on, the
pseudo-labels, the targets of the matching, the losses and the logged
values are all CUDA tensors; every loss is finite and every layer's
``loss_mask`` positive, with 6 or more target masks per branch (where an
fp16 ``num_masks * num_points`` passes 65504).
"""
import copy
import os.path as osp
from typing import Any, Callable, Iterator, List, Tuple

import numpy as np
import pytest
import torch
from mmdet.registry import MODELS
from mmdet.testing import demo_mm_inputs
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.optim import AmpOptimWrapper, build_optim_wrapper
from mmengine.structures import BaseDataElement

import mmcast  # noqa: F401
from mmcast.structures import TensorMasks

from conftest import assert_losses_train
from host_sync import exempt_loss_scaler, exempt_regions, no_host_sync

register_all_modules()

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
STAGES = {
    '1a': 'adapt_teacher_cityscapes',
    '1b': 'adapt_teacher_selftrain_cityscapes',
    '2': 'distill_cityscapes',
    '3': 'finetune_cityscapes',
    'baseline': 'supervised_student_cityscapes',
    'gd': 'guided_distillation/guided-distillation_dinov2-s_cityscapes',
}
IMAGE_SHAPE = [3, 128, 256]


def packed(num_items: List[int], seed: int) -> dict:
    """Raw uint8 images and samples with masks, one image per item."""
    torch.manual_seed(seed)
    return demo_mm_inputs(
        len(num_items), [IMAGE_SHAPE] * len(num_items),
        num_items=num_items, num_classes=8, with_mask=True)


def branches(sup: dict, unsup: dict) -> dict:
    """A ``MultiBranch`` batch of a labeled and an unlabeled part."""
    return dict(
        inputs=dict(sup=sup['inputs'], unsup=unsup['inputs']),
        data_samples=dict(
            sup=sup['data_samples'], unsup=unsup['data_samples']))


def to_device(data: dict, device: str) -> dict:
    """The batch on ``device``: images, and every sample's instances with
    their masks as ``TensorMasks``."""
    inputs, samples = data['inputs'], data['data_samples']
    if isinstance(inputs, dict):
        return {
            'inputs': {k: [x.to(device) for x in v]
                       for k, v in inputs.items()},
            'data_samples': {k: [_sample_to(s, device) for s in v]
                             for k, v in samples.items()},
        }
    return dict(inputs=[x.to(device) for x in inputs],
                data_samples=[_sample_to(s, device) for s in samples])


def _sample_to(sample, device: str):
    for key in ('gt_instances', 'ignored_instances'):
        instances = sample.get(key)
        if instances is not None and 'masks' in instances:
            instances.masks = TensorMasks(
                torch.from_numpy(np.asarray(
                    instances.masks.to_ndarray(), dtype=bool)).to(device))
    return sample.to(device)


def build_stage(stage: str,
                device: str = 'cuda') -> Tuple[torch.nn.Module, dict, Config]:
    """(model, batch, config) of a stage, on ``device``."""
    cfg = Config.fromfile(
        osp.join(REPO_ROOT, 'configs', 'mmcast', f'{STAGES[stage]}.py'))
    model_cfg = cfg.model
    model_cfg.init_cfg = None
    if model_cfg.type == 'CASTDistiller':
        # offline pseudo-labels: the unsup branch carries them
        model_cfg.teacher = None
        model_cfg.teacher_checkpoint = None
        batch = branches(packed([6], seed=0), packed([7], seed=1))
    elif model_cfg.type == 'GuidedDistiller':
        model_cfg.teacher_checkpoint = None
        model_cfg.semi_train_cfg.pseudo_label_rule.update(
            score_thr=0.0, min_mask_area=0.0)
        batch = branches(packed([6], seed=0), packed([0], seed=1))
    else:
        batch = packed([3, 4], seed=0)
    torch.manual_seed(0)
    model = MODELS.build(model_cfg).to(device)
    return model, to_device(batch, device), cfg


def placements(obj: Any, path: str = '') -> Iterator[Tuple[str, str]]:
    """``(path, device)`` of every tensor in ``obj``; host arrays and
    ``BitmapMasks`` give ``'host'``."""
    if isinstance(obj, torch.Tensor):
        yield path, obj.device.type
    elif isinstance(obj, TensorMasks):
        yield path + '.masks', obj.masks.device.type
    elif isinstance(obj, np.ndarray) or hasattr(obj, 'to_ndarray'):
        yield path, 'host'
    elif isinstance(obj, BaseDataElement):
        for key, value in obj.items():
            yield from placements(value, f'{path}.{key}')
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from placements(value, f'{path}.{key}')
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from placements(value, f'{path}[{i}]')


def record(owner: Any, name: str, calls: list, monkeypatch,
           what: Callable = lambda args, out: out) -> None:
    """Store ``what(args, output)`` of every call of ``owner.name``."""
    fn = getattr(owner, name)

    def wrapper(*args, **kwargs):
        out = fn(*args, **kwargs)
        calls.append(what(args, out))
        return out

    monkeypatch.setattr(owner, name, wrapper)


def student(model: torch.nn.Module) -> torch.nn.Module:
    """The detector that trains (a wrapper's student)."""
    return getattr(model, 'student', model)


@pytest.mark.parametrize('stage', list(STAGES))
def test_step_on_cuda_without_host_sync(stage, monkeypatch):
    model, batch, cfg = build_stage(stage)
    optim_wrapper = build_optim_wrapper(model,
                                        copy.deepcopy(cfg.optim_wrapper))
    assert isinstance(optim_wrapper, AmpOptimWrapper)  # the configs' AMP
    exempt_regions(monkeypatch)
    exempt_loss_scaler(optim_wrapper, monkeypatch)
    model.train()
    model.train_step(copy.deepcopy(batch), optim_wrapper)  # lazy init

    seen = {k: [] for k in ('inputs', 'pseudo', 'gt', 'targets', 'losses')}
    record(model.data_preprocessor, 'forward', seen['inputs'], monkeypatch)
    if hasattr(model, 'label_online'):
        record(model, 'label_online', seen['pseudo'], monkeypatch)
    head = student(model).panoptic_head
    record(head, 'preprocess_gt', seen['gt'], monkeypatch)
    record(head, 'get_targets', seen['targets'], monkeypatch)
    record(model, 'parse_losses', seen['losses'], monkeypatch,
           what=lambda args, out: args[0])
    data = copy.deepcopy(batch)
    with no_host_sync():
        log_vars = model.train_step(data, optim_wrapper)
    torch.cuda.synchronize()

    assert all(seen[k] for k in ('inputs', 'gt', 'targets', 'losses'))
    if model.__class__.__name__ == 'GuidedDistiller':
        assert seen['pseudo'] and any(
            len(s.gt_instances) for s in seen['pseudo'][0])
    elif isinstance(seen['inputs'][0]['inputs'], dict):  # offline 1b / 2
        seen['pseudo'] = [seen['inputs'][0]['data_samples']['unsup']]
        assert any(len(s.gt_instances) for s in seen['pseudo'][0])
    seen['log_vars'] = [log_vars]
    on_host = [(kind, path, device) for kind, calls in seen.items()
               for path, device in placements(calls)
               if device != 'cuda']
    assert not on_host, on_host
    if getattr(head, 'with_pixel_contrast', False):  # lambda_pxl > 0
        assert 'loss_pxl' in seen['losses'][0]
    assert_losses_train(log_vars)

# Copyright (c) mmcast contributors. All rights reserved.
"""The toy schedule's fused AdamW (``_base_/schedules/toy_iter.py``) trains
the toy student as PyTorch's per-tensor AdamW would, param groups (no decay
on norms and queries) and gradient clipping included, and takes over the
optimizer state a run saved before the schedule was fused."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

from conftest import REPO_ROOT
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules

TOY_CONFIGS = ('supervised_student_toy.py', 'finetune_toy.py',
               'toy/mask2former_r34_source-pretrain_toy.py',
               'custom/supervised_student_custom-cpu.py')


def _student_and_optimizer_cfg(config: str):
    register_all_modules()
    import mmcast  # noqa: F401  (registers the student's parts)
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', 'mmcast', config))
    torch.manual_seed(0)
    return MODELS.build(cfg.model), cfg.optim_wrapper


def _train(model, optim_wrapper, steps: int, first: int = 0) -> None:
    """``steps`` updates from gradients drawn by seed, as a step of the
    stage would apply them (clipping included)."""
    params = [p for p in model.parameters() if p.requires_grad]
    for step in range(first, first + steps):
        gen = torch.Generator().manual_seed(step)
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen) * 0.1
        optim_wrapper.step()
        optim_wrapper.zero_grad()


def _loop(optim_cfg):
    cfg = copy.deepcopy(optim_cfg)
    cfg.optimizer.fused = False
    return cfg


@pytest.mark.parametrize('config', TOY_CONFIGS)
def test_the_toy_schedule_is_fused(config):
    model, optim_cfg = _student_and_optimizer_cfg(config)
    wrapper = build_optim_wrapper(model, optim_cfg)
    assert wrapper.optimizer.defaults['fused'] is True, config


def test_fused_adamw_trains_the_toy_student_as_the_loop_does():
    fused_model, optim_cfg = _student_and_optimizer_cfg(
        'supervised_student_toy.py')
    loop_model = copy.deepcopy(fused_model)
    start = copy.deepcopy(fused_model.state_dict())
    fused = build_optim_wrapper(fused_model, optim_cfg)
    loop = build_optim_wrapper(loop_model, _loop(optim_cfg))
    # weight decay off for some groups, on for the others
    decays = {g['weight_decay'] for g in fused.optimizer.param_groups}
    assert 0.0 in decays and len(decays) > 1
    _train(fused_model, fused, 4)
    _train(loop_model, loop, 4)
    moved = 0
    for (name, a), b in zip(fused_model.named_parameters(),
                            loop_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
        moved += not torch.equal(a, start[name])
    assert moved > 100  # the weights compared were updated


def test_a_loop_optimizers_state_resumes_in_the_fused_one():
    """A stage saved by the per-tensor AdamW and resumed with the fused
    one ends where the per-tensor AdamW would have."""
    model, optim_cfg = _student_and_optimizer_cfg('finetune_toy.py')
    loop = build_optim_wrapper(model, _loop(optim_cfg))
    _train(model, loop, 3)
    saved_model = copy.deepcopy(model.state_dict())
    saved_state = copy.deepcopy(loop.state_dict())
    _train(model, loop, 2, first=3)
    resumed_model, _ = _student_and_optimizer_cfg('finetune_toy.py')
    resumed_model.load_state_dict(saved_model)
    fused = build_optim_wrapper(resumed_model, optim_cfg)
    fused.load_state_dict(saved_state)
    _train(resumed_model, fused, 2, first=3)
    for (name, a), b in zip(resumed_model.named_parameters(),
                            model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)

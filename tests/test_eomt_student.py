# Copyright (c) mmcast contributors. All rights reserved.
"""The EoMT student (EoMTStudent): queries in the last blocks of a DINOv3
ViT, masked attention annealed by MaskAnnealingHook, Mask2Former's losses
(Mask2FormerCriterion) at every supervised block, lean instance inference,
and its toy config trained through MMEngine's runner."""
import copy
import math
import os.path as osp
from types import SimpleNamespace

import pytest
import torch
from conftest import REPO_ROOT, assert_losses_train, toy_runner_config
from mmdet.registry import HOOKS, MODELS
from mmdet.testing import demo_mm_inputs
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper

import mmcast  # noqa: F401  (registers the modules)

register_all_modules(init_default_scope=True)

CONFIGS = osp.join(REPO_ROOT, 'configs', 'mmcast')
TOY_CONFIG = osp.join(CONFIGS, 'toy',
                      'supervised_eomt-dinov3-tiny_1xb4-2000it_toy-10p.py')
NUM_PREFIX = 5  # class token + 4 registers
NUM_QUERIES = 20


def _tiny_model(**kwargs):
    cfg = Config.fromfile(TOY_CONFIG).model
    cfg.update(kwargs)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def _packed(shapes=((3, 64, 128), (3, 56, 100)), num_items=(3, 2)):
    return demo_mm_inputs(
        batch_size=len(shapes), image_shapes=[list(s) for s in shapes],
        num_items=list(num_items), num_classes=8, with_mask=True)


def _record_blocks(model):
    """Per call of each ViT block: (block index, sequence length, the
    attention mask it was given)."""
    calls = []
    for i, block in enumerate(model.vit.blocks):
        block.register_forward_pre_hook(
            lambda module, args, kwargs, i=i: calls.append(
                (i, args[0].shape[1], kwargs.get('attn_mask'))),
            with_kwargs=True)
    return calls


def _num_params(module):
    return sum(p.numel() for p in module.parameters())


def test_losses_of_every_supervised_block_and_gradients():
    """L = 2: the prediction where the queries join (d0), after block 2
    (d1) and the final one; finite, positive mask losses; gradients reach
    the queries, the blocks before and after they join, the patch embedding
    and the heads."""
    model = _tiny_model().train()
    assert model.num_blocks_with_queries == 2
    data = model.data_preprocessor(_packed(), True)
    assert data['inputs'].shape[-2:] == (64, 128)
    losses = model(**data, mode='loss')
    assert set(losses) == {
        f'{prefix}loss_{name}' for prefix in ('', 'd0.', 'd1.')
        for name in ('cls', 'mask', 'dice')}
    assert_losses_train(losses)
    sum(losses.values()).backward()
    for param in (model.query_embed.weight, model.vit.patch_embed.proj.weight,
                  model.vit.blocks[0].attn.qkv.weight,
                  model.vit.blocks[3].mlp.fc2.weight, model.vit.reg_token,
                  model.class_head.weight, model.mask_head[0].weight,
                  model.upscale[0].up.weight):
        assert param.grad is not None and param.grad.abs().sum() > 0
    assert list(model.criterion.parameters()) == []


def test_queries_join_only_the_last_blocks_and_predict_never_masks():
    """Blocks 0-1 see the h*w patch tokens and the prefix, blocks 2-3 the
    20 queries too; in training at probability 1 each of those gets a
    boolean mask whose query rows follow the predicted masks; predict and
    _forward run every block without a mask."""
    model = _tiny_model()
    calls = _record_blocks(model)
    data = model.data_preprocessor(_packed(), True)
    hw = 8 * 16  # 64x128 at patch 8
    model.train()
    model(**data, mode='loss')
    assert [(i, n) for i, n, _ in calls] == [
        (0, NUM_PREFIX + hw), (1, NUM_PREFIX + hw),
        (2, NUM_PREFIX + NUM_QUERIES + hw), (3, NUM_PREFIX + NUM_QUERIES + hw)]
    assert calls[0][2] is None and calls[1][2] is None
    n = NUM_PREFIX + NUM_QUERIES + hw
    for _, _, mask in calls[2:]:
        assert mask.dtype == torch.bool and mask.shape == (2, 1, n, n)
        query_rows = mask[:, 0, NUM_PREFIX:NUM_PREFIX + NUM_QUERIES]
        assert query_rows[..., :NUM_PREFIX + NUM_QUERIES].all()
        assert not query_rows[..., NUM_PREFIX + NUM_QUERIES:].all()
        other = torch.cat([mask[:, 0, :NUM_PREFIX],
                           mask[:, 0, NUM_PREFIX + NUM_QUERIES:]], dim=1)
        assert other.all()

    model.eval()
    for mode in ('predict', 'tensor'):
        calls.clear()
        with torch.no_grad():
            model(**model.data_preprocessor(_packed(), False), mode=mode)
        assert [(i, m) for i, _, m in calls] == [(i, None) for i in range(4)]
        assert calls[-1][1] == NUM_PREFIX + NUM_QUERIES + hw


def test_queries_have_no_position():
    """Permuting the queries permutes their predictions: RoPE leaves them
    unrotated, as the prefix tokens."""
    model = _tiny_model().eval()
    inputs = model.data_preprocessor(_packed(), False)['inputs']
    order = torch.randperm(
        NUM_QUERIES, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        cls_logits, mask_logits = model(inputs, mode='tensor')
        model.query_embed.weight.copy_(model.query_embed.weight[order])
        cls_permuted, mask_permuted = model(inputs, mode='tensor')
    torch.testing.assert_close(cls_permuted, cls_logits[:, order])
    torch.testing.assert_close(mask_permuted, mask_logits[:, order])


def test_annealed_probabilities_mask_fewer_queries_then_none():
    """At probability 0 no mask is built and the final prediction is the
    inference one; in between, some query rows are left full."""
    model = _tiny_model().train()
    calls = _record_blocks(model)
    data = model.data_preprocessor(_packed(), True)
    model.set_attn_mask_probs([0.0, 0.0])
    with torch.no_grad():
        all_cls, all_masks = model.forward_queries(
            data['inputs'], supervise_blocks=True)
        cls_logits, mask_logits = model.eval()(data['inputs'], mode='tensor')
    assert len(all_cls) == len(all_masks) == 3
    torch.testing.assert_close(all_cls[-1], cls_logits)
    torch.testing.assert_close(all_masks[-1], mask_logits)
    assert all(mask is None for _, _, mask in calls)
    model.train()
    calls.clear()
    calls.clear()
    model.set_attn_mask_probs([0.5, 0.0])
    torch.manual_seed(0)
    model(**data, mode='loss')
    mask = calls[2][2][:, 0, NUM_PREFIX:NUM_PREFIX + NUM_QUERIES,
                       NUM_PREFIX + NUM_QUERIES:]
    full = mask.all(-1)
    assert full.any() and not full.all()
    assert calls[3][2] is None
    with pytest.raises(ValueError, match='3 mask probabilities for 2'):
        model.set_attn_mask_probs([1.0, 1.0, 1.0])


def test_annealing_schedule_of_the_toy_config():
    """EoMT's schedule: 1 before a block's window, polynomial decay in it,
    0 from its end on -- all 0 by the end of training; the hook sets the
    probabilities of ``runner.iter`` whatever ran before (resume)."""
    cfg = Config.fromfile(TOY_CONFIG)
    (hook_cfg, ) = [h for h in cfg.custom_hooks
                    if h.type == 'MaskAnnealingHook']
    hook = HOOKS.build(copy.deepcopy(hook_cfg))
    max_iters = cfg.train_cfg.max_iters
    assert hook.probs_at(0) == [1.0, 1.0]
    assert hook.probs_at(500) == [1.0, 1.0]
    assert hook.probs_at(750) == [pytest.approx(0.5**0.9), 1.0]
    assert hook.probs_at(1000) == [0.0, 1.0]
    assert hook.probs_at(1500) == [0.0, 0.0]
    assert hook.probs_at(max_iters - 1) == [0.0, 0.0]
    trace = [hook.probs_at(i) for i in range(max_iters)]
    for block in range(2):
        values = [p[block] for p in trace]
        assert all(a >= b for a, b in zip(values, values[1:]))

    model = _tiny_model()
    runner = SimpleNamespace(
        model=model, iter=1200,
        message_hub=MessageHub.get_instance('test_eomt_annealing'))
    hook.before_train_iter(runner, batch_idx=0)
    assert model.attn_mask_probs == hook.probs_at(1200)
    assert runner.message_hub.get_scalar(
        'train/attn_mask_prob_1').current() == pytest.approx(
            hook.probs_at(1200)[1])
    with pytest.raises(ValueError, match='start < end'):
        HOOKS.build(dict(type='MaskAnnealingHook', start_iters=[5, 10],
                         end_iters=[5, 20]))


def test_predict_outputs_and_mask_resolution():
    """_forward: (B, K, C + 1) class logits and stride-4 mask logits;
    predict: at most max_per_image instances per image in its original
    shape, with the dtypes of our Mask2Former students."""
    model = _tiny_model().eval()
    packed = _packed(shapes=((3, 64, 128), (3, 60, 90)))
    data = model.data_preprocessor(packed, False)
    assert data['inputs'].shape[-2:] == (64, 128)
    with torch.no_grad():
        cls_logits, mask_logits = model(**data, mode='tensor')
        results = model(**data, mode='predict')
    assert cls_logits.shape == (2, NUM_QUERIES, 9)
    assert mask_logits.shape == (2, NUM_QUERIES, 16, 32)
    for result, hw in zip(results, [(64, 128), (60, 90)]):
        pred = result.pred_instances
        n = len(pred)
        assert 0 < n <= 50
        assert pred.masks.shape == (n, *hw) and pred.masks.dtype == torch.bool
        assert pred.labels.shape == (n, ) and pred.labels.dtype == torch.int64
        assert pred.scores.shape == (n, )
        assert pred.scores.dtype == torch.float32
        assert pred.bboxes.shape == (n, 4)
        assert pred.bboxes.dtype == torch.float32
        assert ((pred.labels >= 0) & (pred.labels < 8)).all()


def test_bad_arguments():
    with pytest.raises(ValueError, match=r'num_blocks_with_queries must be '
                       r'in \[1, 4\]'):
        _tiny_model(num_blocks_with_queries=5)
    model = _tiny_model().eval()
    with pytest.raises(ValueError, match='multiple of the patch size 8'):
        model(torch.zeros(1, 3, 60, 64), mode='tensor')
    with pytest.raises(ValueError, match='one entry per block'):
        HOOKS.build(dict(type='MaskAnnealingHook', start_iters=[1],
                         end_iters=[2, 3]))


def test_parameter_counts():
    """The toy model; the ViT-S/16 size (DINOv3-S, 200 queries, the last 4
    blocks, 80 classes, two scale blocks), whose parameters do not depend
    on the input size (RoPE), with a forward at 160 px."""
    tiny = _tiny_model()
    assert _num_params(tiny.vit) == 212_480
    assert _num_params(tiny) == 243_977
    cfg = Config.fromfile(TOY_CONFIG).model
    cfg.vit = dict(arch='vit_small_patch16_dinov3')
    cfg.update(num_queries=200, num_blocks_with_queries=4)
    cfg.criterion.update(
        num_things_classes=80,
        loss_cls=dict(cfg.criterion.loss_cls, class_weight=[1.0] * 80 + [0.1]))
    cfg.panoptic_fusion_head.num_things_classes = 80
    model = MODELS.build(cfg).eval()
    assert len(model.upscale) == 2
    assert _num_params(model.vit) == 21_586_944
    # + queries 76_800, class head 31_185, mask MLP 443_520, 2 scale blocks
    # 1_188_864
    assert _num_params(model) == 23_327_313
    with torch.no_grad():
        cls_logits, mask_logits = model(torch.zeros(1, 3, 160, 160),
                                        mode='tensor')
    assert cls_logits.shape == (1, 200, 81)
    assert mask_logits.shape == (1, 200, 40, 40)



def test_toy_config_trains_under_the_runner(toy_data_root, tmp_path):
    """Two iterations and a validation through MMEngine's runner on the toy
    data, the annealing hook setting the model's probabilities; then a
    training step under bf16 autocast."""
    from mmengine.runner import Runner

    work_dir = str(tmp_path)
    cfg = toy_runner_config(
        TOY_CONFIG, toy_data_root, work_dir, 'train_cfg.max_iters=2',
        'train_cfg.val_interval=2', 'param_scheduler.end=2',
        'train_dataloader.dataset.ann_file='
        'annotations/semi/instancesonly_filtered_gtFine_train.1@25.json')
    cfg.custom_hooks = [
        dict(type='MaskAnnealingHook', start_iters=[0, 1],
             end_iters=[1, 2])]
    runner = Runner.from_cfg(cfg)
    model = runner.model
    assert type(model).__name__ == 'EoMTStudent'
    before = copy.deepcopy(model.state_dict())
    runner.train()
    assert model.attn_mask_probs == [0.0, 1.0]  # set at iteration 1
    moved = [k for k, v in model.state_dict().items()
             if v.is_floating_point() and not torch.equal(v, before[k])]
    assert 'query_embed.weight' in moved and len(moved) > len(before) // 2
    assert osp.isfile(osp.join(work_dir, 'iter_2.pth'))
    assert any(key.endswith('coco/segm_mAP')
               for key in runner.message_hub.log_scalars)

    model.train()
    optim_wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        log_vars = model.train_step(_packed(), optim_wrapper)
    assert_losses_train(log_vars)
    assert all(math.isfinite(float(v)) for v in log_vars.values())


def test_the_annealing_hook_refuses_windows_past_the_run():
    """A window ending after ``train_cfg.max_iters`` would leave the
    masked attention on at the end of training: refused before the first
    iteration, naming both numbers."""
    hook = HOOKS.build(dict(type='MaskAnnealingHook', start_iters=[0, 100],
                            end_iters=[100, 400]))
    with pytest.raises(ValueError, match=r'\[100, 400\].*max_iters=300'):
        hook.before_train(SimpleNamespace(max_iters=300))
    hook.before_train(SimpleNamespace(max_iters=400))

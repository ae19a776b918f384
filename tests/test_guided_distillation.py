# Copyright (c) mmcast contributors. All rights reserved.
"""Guided Distillation: pseudo-label rule, GuidedDistiller, teacher schedule."""
import copy
import os
import os.path as osp
import subprocess
import sys
from types import SimpleNamespace
from unittest import mock

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.testing import demo_mm_inputs
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.logging import MMLogger
from torch import nn

import mmcast  # noqa: F401
from mmcast.engine.hooks import GuidedTeacherHook
from mmcast.pseudo_labels import (check_guided_rule_cfg,
                                  guided_distillation_pseudo_labels)

register_all_modules()
GD_TOY = 'configs/mmcast/guided_distillation/guided-distillation_r18_toy.py'
K = 2  # classes in the constructed logits; index K is "no object"


def test_rule_each_condition_rejects():
    big = torch.full((4, 4), 10.0)
    small = torch.full((4, 4), -10.0)
    small[:2, :2] = 10.0  # soft area ~4 < 5
    half = torch.full((4, 4), 10.0)
    half[:, 2:] = 0.0  # sigmoid(0) = 0.5 is not > 0.5
    cls = torch.tensor([
        [0.0, 8.0, 0.0],  # kept: class 1, p ~ 0.999, area 16
        [0.0, 0.0, 8.0],  # argmax is "no object"
        [1.0, 0.2, -9.0],  # max softmax ~0.69 <= 0.7
        [8.0, 0.0, 0.0],  # confident but the mask is too small
        [0.0, 8.0, 0.0],  # duplicate of the first: kept (no NMS)
        [8.0, 0.0, 0.0],  # kept: class 0, half the mask at exactly 0.5
    ])
    masks = torch.stack([big, big, big, small, big, half])
    out = guided_distillation_pseudo_labels(cls[None], masks[None], (8, 8))
    assert len(out) == 1
    inst = out[0]
    assert inst.labels.tolist() == [1, 1, 0]
    assert (inst.scores > 0.7).all()
    m = inst.masks.masks
    assert m.shape == (3, 8, 8) and m.dtype == torch.bool
    assert m[0].all() and m[1].all()
    # thresholded on the 1/4 grid, then resized (nearest): columns 4-7 off
    assert m[2, :, :4].all() and not m[2, :, 4:].any()
    # the thresholds are parameters
    loose = guided_distillation_pseudo_labels(
        cls[None], masks[None], (8, 8), score_thr=0.5, min_mask_area=3.0)
    assert loose[0].labels.tolist() == [1, 0, 0, 1, 0]


def test_rule_without_pseudo_labels_and_config_checks():
    cls = torch.tensor([[[0.0, 0.0, 9.0]] * 3])
    out = guided_distillation_pseudo_labels(cls, torch.zeros(1, 3, 4, 4), (16, 16))
    assert len(out[0]) == 0 and out[0].masks.masks.shape == (0, 16, 16)
    assert check_guided_rule_cfg({}) == dict(score_thr=0.7, min_mask_area=5.0,
                                             mask_thr=0.5)
    with pytest.raises(ValueError, match='score_thr'):
        check_guided_rule_cfg(dict(score_thr=1.5))
    with pytest.raises(ValueError, match='unknown'):
        check_guided_rule_cfg(dict(nms=True))


def _model_cfg(repo_root):
    cfg = Config.fromfile(osp.join(repo_root, GD_TOY)).model
    cfg.teacher_checkpoint = None
    cfg.student.train_cfg.num_points = 256
    cfg.teacher.train_cfg.num_points = 256
    return cfg


@pytest.fixture
def gd_model(repo_root):
    torch.manual_seed(0)
    return MODELS.build(_model_cfg(repo_root))


def _batches(model, sup_items=(2, 1), unsup=2, seed=0):
    def pack(items, s):
        torch.manual_seed(s)
        packed = demo_mm_inputs(len(items), [[3, 64, 128]] * len(items),
                                num_items=list(items), num_classes=8,
                                with_mask=True)
        return model.student.data_preprocessor(packed, True)
    sup, uns = pack(sup_items, seed), pack((0, ) * unsup, seed + 1)
    for sample in uns['data_samples']:  # unlabeled: no ground truth
        sample.gt_instances = sample.gt_instances[:0]
    return (dict(sup=sup['inputs'], unsup=uns['inputs']),
            dict(sup=sup['data_samples'], unsup=uns['data_samples']))


def test_teacher_labels_weak_view_student_trains_on_strong_view(gd_model):
    rule = gd_model.semi_train_cfg['pseudo_label_rule']
    rule.update(score_thr=0.0, min_mask_area=0.0)  # the random teacher's all
    # its "no object" logit raised by 1: some of its queries argmax it
    with torch.no_grad():
        gd_model.teacher.panoptic_head.cls_embed.bias[-1] += 1.0
    inputs, samples = _batches(gd_model)
    weak = inputs['unsup'].clone()
    gd_model.train()
    with mock.patch.object(gd_model.teacher, '_forward',
                           wraps=gd_model.teacher._forward) as teacher_fwd, \
            mock.patch.object(gd_model.student, 'loss',
                              wraps=gd_model.student.loss) as student_loss:
        losses = gd_model.loss(inputs, samples)
    assert torch.equal(teacher_fwd.call_args.args[0], weak)
    student_inputs = [c.args[0] for c in student_loss.call_args_list]
    assert any(torch.equal(x, inputs['sup']) for x in student_inputs)
    strong = [x for x in student_inputs if x.shape == weak.shape
              and not torch.equal(x, inputs['sup'])]
    assert len(strong) == 1 and not torch.equal(strong[0], weak)
    # the teacher's queries not argmax "no object" (of 20 per image)
    counts = [len(s.gt_instances) for s in samples['unsup']]
    assert 0 < sum(counts) < 40
    assert float(losses['pseudo_per_image']) == sum(counts) / 2
    assert samples['unsup'][0].gt_instances.masks.masks.shape[-2:] == (64, 128)
    total = sum(v for k, v in losses.items() if 'loss' in k)
    total.backward()
    assert all(p.grad is None for p in gd_model.teacher.parameters())
    assert not gd_model.teacher.training
    assert any(p.grad is not None for p in gd_model.student.parameters())


def test_zero_pseudo_labels_train_no_object_with_weight_two(gd_model,
                                                             repo_root):
    gd_model.semi_train_cfg['pseudo_label_rule']['score_thr'] = 0.999999
    inputs, samples = _batches(gd_model)
    gd_model.train()
    torch.manual_seed(3)
    losses = gd_model.loss(inputs, copy.deepcopy(samples))
    assert float(losses['pseudo_per_image']) == 0.0
    for key, value in losses.items():
        assert torch.isfinite(value).all(), key
    assert losses['unsup_loss_cls'] > 0  # every query pushed to no-object
    # the unsup branch is weighted x2.0 (GD); x1.0 gives half
    cfg = _model_cfg(repo_root)
    cfg.semi_train_cfg.unsup_weight = 1.0
    torch.manual_seed(0)
    model_1 = MODELS.build(cfg)
    model_1.semi_train_cfg['pseudo_label_rule']['score_thr'] = 0.999999
    model_1.train()
    torch.manual_seed(3)
    half = model_1.loss(inputs, copy.deepcopy(samples))
    torch.testing.assert_close(losses['unsup_loss_cls'],
                               2 * half['unsup_loss_cls'])
    torch.testing.assert_close(losses['sup_loss_cls'], half['sup_loss_cls'])


def test_teacher_is_in_state_dict_and_predict_on(repo_root, gd_model):
    keys = gd_model.state_dict().keys()
    assert any(k.startswith('teacher.') for k in keys)
    assert any(k.startswith('student.') for k in keys)
    assert gd_model.predictor is gd_model.student
    cfg = _model_cfg(repo_root)
    cfg.semi_test_cfg.predict_on = 'teacher'
    assert type(MODELS.build(cfg).predictor).__name__ == 'CASTMask2Former'
    cfg.semi_test_cfg.predict_on = 'ema'
    with pytest.raises(ValueError, match='predict_on'):
        MODELS.build(cfg)
    cfg = _model_cfg(repo_root)
    cfg.semi_train_cfg.pseudo_label_mode = 'offline'
    with pytest.raises(ValueError, match='online'):
        MODELS.build(cfg)


def test_runner_init_keeps_the_loaded_teacher(repo_root, tmp_path, gd_model):
    path = str(tmp_path / 'teacher.pth')
    classes = ('person', 'rider', 'car', 'truck', 'bus', 'train',
               'motorcycle', 'bicycle')
    torch.save(dict(state_dict=gd_model.student.state_dict(),
                    meta=dict(dataset_meta=dict(classes=classes))), path)
    cfg = _model_cfg(repo_root)
    cfg.teacher_checkpoint = path
    torch.manual_seed(1)
    model = MODELS.build(cfg)
    model.init_weights()  # what the runner does before training
    for key, value in gd_model.student.state_dict().items():
        assert torch.equal(model.teacher.state_dict()[key], value), key
    # the student is fresh, not the teacher
    assert not torch.equal(model.student.backbone.conv1.weight,
                           model.teacher.backbone.conv1.weight)
    # the hook refuses data whose classes are not the teacher's
    hook = GuidedTeacherHook(burn_in_iters=3)
    hook.before_train(_runner(model, 0, classes))
    with pytest.raises(ValueError, match='differ'):
        hook.before_train(_runner(model, 0, classes[::-1]))


class _TeacherStudent(nn.Module):
    """A minimal teacher/student pair with parameters, float and int buffers."""

    def __init__(self):
        super().__init__()
        self.student = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4))
        self.teacher = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4))
        self.teacher.requires_grad_(False)
        self.teacher_checkpoint = 'pretrained.pth'

    def train_step(self, optimizer, seed):
        torch.manual_seed(seed)
        self.student.train()
        loss = self.student(torch.randn(2, 3, 6, 6)).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def _runner(model, it, classes=()):
    dataset = SimpleNamespace(metainfo=dict(classes=classes))
    return SimpleNamespace(model=model, iter=it,
                           logger=MMLogger.get_current_instance(),
                           train_dataloader=SimpleNamespace(dataset=dataset))


def test_hook_burn_in_switch_and_ema_arithmetic():
    torch.manual_seed(0)
    model = _TeacherStudent()
    optimizer = torch.optim.SGD(model.student.parameters(), lr=0.1)
    hook = GuidedTeacherHook(burn_in_iters=3)
    hook.before_train(_runner(model, 0))
    pretrained = copy.deepcopy(model.teacher.state_dict())
    for it in range(2):  # burn-in: the teacher does not change
        model.train_step(optimizer, it)
        hook.after_train_iter(_runner(model, it), it)
        for key, value in model.teacher.state_dict().items():
            assert torch.equal(value, pretrained[key]), key
    model.train_step(optimizer, 2)
    hook.after_train_iter(_runner(model, 2), 2)  # 3 done: the switch
    student = model.student.state_dict()
    for key, value in model.teacher.state_dict().items():
        assert torch.equal(value, student[key]), key
    assert int(model.teacher[1].num_batches_tracked) == 3
    before = copy.deepcopy(model.teacher.state_dict())
    model.train_step(optimizer, 3)
    hook.after_train_iter(_runner(model, 3), 3)  # EMA, decay 0.9996
    student = model.student.state_dict()
    for key, value in model.teacher.state_dict().items():
        if value.dtype.is_floating_point:  # weights and BN statistics
            expected = 0.9996 * before[key] + 0.0004 * student[key]
            torch.testing.assert_close(value, expected, rtol=0, atol=1e-7)
            assert not torch.equal(value, before[key]), key
        else:  # num_batches_tracked keeps the switch's copy
            assert torch.equal(value, before[key]), key


def test_hook_refuses_mismatched_pair_and_missing_teacher_weights():
    model = _TeacherStudent()
    model.teacher = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False))
    with pytest.raises(ValueError, match='share an architecture'):
        GuidedTeacherHook(burn_in_iters=3).before_train(_runner(model, 0))
    model = _TeacherStudent()
    model.teacher_checkpoint = None
    with pytest.raises(ValueError, match='teacher_checkpoint'):
        GuidedTeacherHook(burn_in_iters=3).before_train(_runner(model, 0))
    GuidedTeacherHook(burn_in_iters=3).before_train(_runner(model, 5))
    with pytest.raises(ValueError, match='decay'):
        GuidedTeacherHook(burn_in_iters=3, decay=1.0)


def _train(repo_root, stop, resume_from=None, total=6, burn_in=3):
    """Train a GuidedDistiller for iterations [start, stop); each iteration
    seeds torch with its index (as a deterministic run would), so runs can
    be compared weight by weight. Returns (model, optimizer)."""
    torch.manual_seed(0)
    model = MODELS.build(_model_cfg(repo_root))
    optimizer = torch.optim.AdamW(model.student.parameters(), lr=1e-3)
    start = 0
    if resume_from is not None:
        state = torch.load(resume_from, weights_only=True)
        model.load_state_dict(state['model'])
        optimizer.load_state_dict(state['optimizer'])
        start = state['iter']
    hook = GuidedTeacherHook(burn_in_iters=burn_in)
    model.teacher_checkpoint = 'pretrained'
    hook.before_train(_runner(model, start))
    model.train()
    for it in range(start, stop):
        inputs, samples = _batches(model, seed=10 * it)
        torch.manual_seed(it)
        losses = model.loss(inputs, samples)
        optimizer.zero_grad()
        sum(v for k, v in losses.items() if 'loss' in k).backward()
        optimizer.step()
        hook.after_train_iter(_runner(model, it), it)
    return model, optimizer


def test_resume_before_at_and_after_the_switch_is_exact(repo_root, tmp_path):
    reference, _ = _train(repo_root, 6)
    expected = reference.state_dict()
    for stop in (2, 3, 4):  # before, at and after the switch (burn-in 3)
        model, optimizer = _train(repo_root, stop)
        path = str(tmp_path / f'iter_{stop}.pth')
        torch.save(dict(model=model.state_dict(),
                        optimizer=optimizer.state_dict(), iter=stop), path)
        resumed, _ = _train(repo_root, 6, resume_from=path)
        state = resumed.state_dict()
        # where the strong views' draws stand too (the wrapper's extra state)
        assert torch.equal(state.pop('_extra_state'),
                           expected['_extra_state'])
        for key, value in state.items():
            assert torch.equal(value, expected[key]), (stop, key)


DDP_SCRIPT = '''
import sys
from types import SimpleNamespace

import torch
import torch.distributed as dist
from mmengine.logging import MMLogger
from mmengine.model import MMDistributedDataParallel
from torch import nn

from mmcast.engine.hooks import GuidedTeacherHook


class Pair(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.teacher = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
        self.student = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
        self.teacher.requires_grad_(False)
        self.teacher_checkpoint = 'pretrained.pth'

    def forward(self, x):
        return self.student(x)


out, distributed = sys.argv[1], sys.argv[2] == 'ddp'
model = Pair()
rank, world = 0, 1
if distributed:
    dist.init_process_group('gloo')
    rank, world = dist.get_rank(), dist.get_world_size()
    model = MMDistributedDataParallel(model)
optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
hook = GuidedTeacherHook(burn_in_iters=2, decay=0.9)
logger = MMLogger.get_instance('gd_ddp')
data = SimpleNamespace(dataset=SimpleNamespace(metainfo={}))
hook.before_train(SimpleNamespace(model=model, iter=0, logger=logger,
                                  train_dataloader=data))
for it in range(5):
    g = torch.Generator().manual_seed(it)
    x, y = torch.randn(8, 4, generator=g), torch.randn(8, 1, generator=g)
    per_rank = 8 // world  # the global batch of 8, split over the ranks
    xs, ys = x[rank * per_rank:(rank + 1) * per_rank], y[rank * per_rank:(rank + 1) * per_rank]
    loss = (model(xs) - ys).square().mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    hook.after_train_iter(SimpleNamespace(model=model, iter=it, logger=logger), it)
pair = model.module if distributed else model
torch.save(pair.teacher.state_dict(), f'{out}.rank{rank}')
'''


def test_two_process_gloo_ema_teacher_equals_one_process(tmp_path, repo_root):
    script = tmp_path / 'gd_ddp.py'
    script.write_text(DDP_SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS='1',
               PYTHONWARNINGS='ignore')
    single = str(tmp_path / 'single')
    multi = str(tmp_path / 'multi')
    for cmd in ([sys.executable, str(script), single, 'one'],
                [sys.executable, '-m', 'torch.distributed.run',
                 '--standalone', '--nproc_per_node=2', str(script), multi,
                 'ddp']):
        proc = subprocess.run(cmd, cwd=repo_root, capture_output=True,
                              text=True, env=env)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    reference = torch.load(single + '.rank0', weights_only=True)
    for rank in (0, 1):
        teacher = torch.load(f'{multi}.rank{rank}', weights_only=True)
        for key, value in reference.items():
            torch.testing.assert_close(teacher[key], value)
    # the teacher did move (switch at 2, EMA at 3, 4), away from its start
    torch.manual_seed(0)
    initial = nn.Linear(4, 8)  # the script's first module: the teacher's
    assert not torch.allclose(reference['0.weight'], initial.weight)


REAL_GD = {
    'cityscapes': ('configs/mmcast/guided_distillation/'
                   'guided-distillation_dinov2-s_cityscapes.py',
                   'annotations/instancesonly_filtered_gtFine_train.json',
                   'instancesonly_filtered_gtFine_train.1@perc_10.json', 8),
    'coco': ('configs/mmcast/guided_distillation/'
             'guided-distillation_dinov2-s_coco.py',
             'annotations/instances_train2017.json',
             'instances_train2017.1@10.json', 80),
}


@pytest.mark.parametrize('ds', sorted(REAL_GD))
def test_real_size_config_follows_the_spec(repo_root, ds):
    path, pool_ann, labeled, num_classes = REAL_GD[ds]
    cfg = Config.fromfile(osp.join(repo_root, path))
    model = cfg.model
    assert model.type == 'GuidedDistiller'
    assert model.student == model.teacher  # the switch copies one into the other
    assert model.student.panoptic_head.num_things_classes == num_classes
    assert model.semi_train_cfg.unsup_weight == 2.0
    assert check_guided_rule_cfg(model.semi_train_cfg.pseudo_label_rule) == \
        dict(score_thr=0.7, min_mask_area=5.0, mask_thr=0.5)
    # GD's schedule: AdamW 1e-4 at 16 + 16 images, here 5e-5 at 4 + 4
    # (square-root rule), wd 0.05, backbone x0.1, clip 0.01, AMP
    optim = cfg.optim_wrapper
    assert optim.type == 'AmpOptimWrapper'
    assert (optim.optimizer.type, optim.optimizer.lr,
            optim.optimizer.weight_decay) == ('AdamW', 5e-5, 0.05)
    assert optim.clip_grad.max_norm == 0.01
    assert optim.paramwise_cfg.custom_keys['backbone'].lr_mult == 0.1
    hook = [h for h in cfg.custom_hooks if h.type == 'GuidedTeacherHook']
    assert len(hook) == 1 and hook[0].decay == 0.9996
    assert hook[0].burn_in_iters == 50000
    # GD's schedules: Cityscapes 90k poly; COCO 368,750 iterations, the lr
    # divided by 10 at 327,778 and 355,092
    if ds == 'coco':
        assert cfg.train_cfg.max_iters == 368750
        assert (cfg.param_scheduler.type, cfg.param_scheduler.milestones,
                cfg.param_scheduler.gamma) == ('MultiStepLR',
                                               [327778, 355092], 0.1)
    else:
        assert cfg.train_cfg.max_iters == 90000
        assert cfg.param_scheduler.type == 'PolyLR'
    # the lr written at the global batch of 4 GPUs x 2 (the square-root
    # rule's 1e-4 x sqrt(8 / 32)); --auto-scale-lr scales it from there
    assert cfg.auto_scale_lr.base_batch_size == 8
    assert cfg.runner_type == 'BatchScaledRunner'
    # its teacher: the labels-only baseline's default work dir
    assert cfg.model.teacher_checkpoint == (
        'work-dir://work_dirs/supervised_dinov2-s-dpt_4xb2-100k_'
        f'{ds}-10p')
    # 1:1 batches; the unlabeled pool is every train image, unannotated
    assert cfg.train_dataloader.sampler.source_ratio == [1, 1]
    sup, pool = cfg.train_dataloader.dataset.datasets
    # the labeled side repeated class-balanced (threshold 10)
    assert sup.type == 'ClassBalancedDataset' and sup.oversample_thr == 10.0
    assert osp.basename(sup.dataset.ann_file) == labeled
    assert pool.ann_file == pool_ann
    assert pool.filter_cfg.filter_empty_gt is False
    types = [t['type'] for t in pool.pipeline]
    assert 'LoadAnnotations' not in types and types[-1] == 'MultiBranch'
    assert list(pool.pipeline[-1]) == ['type', 'branch_field', 'unsup']

# Copyright (c) mmcast contributors. All rights reserved.
"""CASTMask2Former, its head, CASTDistiller and the temperature hook."""
import copy
from unittest import mock

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.testing import demo_mm_inputs
from mmdet.utils import register_all_modules
from mmengine.config import Config

import mmcast  # noqa: F401
from mmcast.engine.hooks import ContrastTemperatureHook
from mmcast.models.detectors import student_state_dict
from mmcast.models.losses import InstanceAwarePixelContrastLoss

register_all_modules()
STOCK = 'configs/mmcast/_base_/models/mask2former_r18_toy.py'
CAST = 'configs/mmcast/_base_/models/cast_mask2former_r18_toy.py'


def _model_cfg(path, repo_root):
    cfg = Config.fromfile(f'{repo_root}/{path}').model
    cfg.train_cfg.num_points = 256
    return cfg


def _batch(model, num_items=(2, 0), seed=0, shape=(64, 128)):
    torch.manual_seed(seed)
    packed = demo_mm_inputs(len(num_items), [[3, *shape]] * len(num_items),
                            num_items=list(num_items), num_classes=8,
                            with_mask=True)
    return model.data_preprocessor(packed, True)


def test_zero_contrast_weight_is_stock_mask2former(repo_root):
    torch.manual_seed(0)
    stock = MODELS.build(_model_cfg(STOCK, repo_root))
    cfg = _model_cfg(CAST, repo_root)
    cfg.panoptic_head.loss_pixel_contrast.loss_weight = 0.0
    cast = MODELS.build(cfg)
    assert not hasattr(cast.panoptic_head, 'projection_head')
    cast.load_state_dict(stock.state_dict(), strict=True)
    data = _batch(stock, (2, 1))
    torch.manual_seed(1)
    ref = stock.loss(data['inputs'], data['data_samples'])
    torch.manual_seed(1)
    out = cast.loss(data['inputs'], data['data_samples'])
    assert ref.keys() == out.keys()
    for key in ref:
        torch.testing.assert_close(out[key], ref[key])
    stock.eval(), cast.eval()
    with torch.no_grad():
        pred_ref = stock.predict(data['inputs'], copy.deepcopy(data['data_samples']))
        pred = cast.predict(data['inputs'], copy.deepcopy(data['data_samples']))
    for a, b in zip(pred_ref, pred):
        torch.testing.assert_close(a.pred_instances.scores, b.pred_instances.scores)
        assert torch.equal(a.pred_instances.masks, b.pred_instances.masks)


def test_contrastive_branch_trains_weak_view_only(repo_root):
    torch.manual_seed(0)
    model = MODELS.build(_model_cfg(CAST, repo_root))
    data = _batch(model, (2, 3))
    with mock.patch.object(model.panoptic_head.loss_pixel_contrast, 'forward',
                           wraps=model.panoptic_head.loss_pixel_contrast.forward) as spy:
        losses = model.loss(data['inputs'], data['data_samples'])
    z_weak, z_strong = spy.call_args.args[:2]
    assert z_weak.requires_grad and not z_strong.requires_grad
    assert z_weak.shape == (2, 128, 4, 8)  # stride-16 map of a 64x128 batch
    mask_logits, cls_logits = spy.call_args.args[2:4]
    assert not mask_logits.requires_grad and not cls_logits.requires_grad
    for key in ('loss_pxl', 'pxl_margin', 'pxl_fnr'):
        assert torch.isfinite(losses[key]), key
    losses['loss_pxl'].backward()
    head = model.panoptic_head.projection_head
    assert all(p.grad is not None for p in head.parameters())
    assert model.backbone.conv1.weight.grad is not None


def test_finer_contrast_level_and_channel_check(repo_root):
    cfg = _model_cfg(CAST, repo_root)
    cfg.panoptic_head.contrast_level = 1  # stride 8, 32 channels
    with pytest.raises(ValueError, match='projection_head.in_channels is 64'):
        model = MODELS.build(cfg)
        data = _batch(model, (2, 3))
        model.loss(data['inputs'], data['data_samples'])
    cfg.panoptic_head.projection_head.in_channels = 32
    cfg.panoptic_head.loss_pixel_contrast.update(
        draw='rejection', num_negatives=8)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    data = _batch(model, (2, 3))
    loss_fn = model.panoptic_head.loss_pixel_contrast
    with mock.patch.object(loss_fn, 'forward', wraps=loss_fn.forward) as spy:
        losses = model.loss(data['inputs'], data['data_samples'])
    assert spy.call_args.args[0].shape == (2, 128, 8, 16)
    assert torch.isfinite(losses['loss_pxl'])


@pytest.fixture
def distiller(repo_root, tmp_path):
    cfg = Config.fromfile(f'{repo_root}/configs/mmcast/distill_toy.py').model
    cfg.teacher = f'{repo_root}/configs/mmcast/adapt_teacher_toy.py'
    cfg.teacher_checkpoint = None
    cfg.student.train_cfg.num_points = 256
    torch.manual_seed(0)
    return MODELS.build(cfg)


def _multi_branch(distiller, sup_items=(2, 1), unsup_items=(0, 3)):
    dp = distiller.data_preprocessor.data_preprocessor
    sup = _batch(distiller.student, sup_items, seed=0)
    unsup = _batch(distiller.student, unsup_items, seed=1)
    return (dict(sup=sup['inputs'], unsup=unsup['inputs']),
            dict(sup=sup['data_samples'], unsup=unsup['data_samples']), dp)


def test_distiller_losses_and_frozen_teacher(distiller):
    inputs, samples, _ = _multi_branch(distiller)
    losses = distiller.loss(inputs, samples)
    for prefix in ('sup_', 'unsup_'):
        for key in ('loss_cls', 'loss_mask', 'loss_dice'):
            assert torch.isfinite(losses[prefix + key]), prefix + key
    # one contrastive term over D_l ∪ D_u
    assert torch.isfinite(losses['loss_pxl'])
    assert not any(k.endswith('_loss_pxl') for k in losses)
    # an unlabeled image with zero pseudo-labels still gives finite losses
    assert len(samples['unsup'][0].gt_instances) == 0
    teacher = distiller.teacher
    assert teacher is not None and not teacher.training
    distiller.train()
    assert distiller.student.training and not teacher.training
    assert all(not p.requires_grad for p in teacher.parameters())
    # weights of the student only, and its strong view's draw counter
    assert all(k.startswith(('student.', 'data_preprocessor.'))
               for k in distiller.state_dict() if k != '_extra_state')
    param_ids = {id(p) for p in distiller.parameters()}
    assert not any(id(p) in param_ids for p in teacher.parameters())


def test_unsup_weight_scales_set_losses_not_pxl(distiller):
    inputs, samples, _ = _multi_branch(distiller)
    torch.manual_seed(3)
    base = distiller.loss(inputs, copy.deepcopy(samples))
    distiller.semi_train_cfg['unsup_weight'] = 2.0
    torch.manual_seed(3)
    doubled = distiller.loss(inputs, copy.deepcopy(samples))
    torch.testing.assert_close(doubled['unsup_loss_cls'], 2 * base['unsup_loss_cls'])
    torch.testing.assert_close(doubled['sup_loss_cls'], base['sup_loss_cls'])


def test_one_pass_equals_per_branch_losses(distiller):
    """Merging the branches into one forward pass changes no set loss."""
    student = distiller.student
    student.eval()  # BatchNorm statistics must not depend on the batch
    inputs, samples, _ = _multi_branch(distiller)
    for first, second in (('sup', 'unsup'), ('unsup', 'sup')):
        # the first branch's point sampling draws the same random numbers
        torch.manual_seed(5)
        merged, _ = student.loss_branches(
            {first: inputs[first], second: inputs[second]},
            copy.deepcopy(samples))
        torch.manual_seed(5)
        alone, _ = student.loss_branches({first: inputs[first]},
                                         {first: copy.deepcopy(samples[first])})
        for key in ('loss_cls', 'loss_mask', 'd0.loss_dice'):
            torch.testing.assert_close(merged[first][key], alone[first][key])


def test_branches_of_different_shapes_are_padded_together(distiller):
    sup = _batch(distiller.student, (2, 1), seed=0)
    unsup = _batch(distiller.student, (1, 2), seed=1, shape=(96, 160))
    inputs = dict(sup=sup['inputs'], unsup=unsup['inputs'])
    samples = dict(sup=sup['data_samples'], unsup=unsup['data_samples'])
    losses = distiller.loss(inputs, samples)
    assert all(torch.isfinite(v) for k, v in losses.items() if 'loss' in k)
    for sample in samples['sup']:
        assert sample.batch_input_shape == (96, 160)
        assert sample.gt_instances.masks.height == 96


def test_online_pseudo_labels_are_padded_tensor_masks(distiller):
    distiller.semi_train_cfg['pseudo_label_mode'] = 'online'
    distiller.semi_train_cfg['pseudo_label_filter'] = dict(score_thr=0.0)
    inputs, samples, _ = _multi_branch(distiller)
    labeled = distiller.label_online(inputs['unsup'], samples['unsup'])
    for sample in labeled:
        masks = sample.gt_instances.masks
        assert masks.to_tensor(torch.bool).shape[-2:] == inputs['unsup'].shape[-2:]
    losses = distiller.loss(inputs, samples)
    assert torch.isfinite(losses['unsup_loss_mask'])


def test_missing_teacher_checkpoint_names_the_path(repo_root, tmp_path):
    cfg = Config.fromfile(f'{repo_root}/configs/mmcast/distill_toy.py').model
    cfg.teacher = f'{repo_root}/configs/mmcast/adapt_teacher_toy.py'
    cfg.teacher_checkpoint = str(tmp_path / 'nowhere' / 'teacher.pth')
    with pytest.raises(FileNotFoundError, match='nowhere/teacher.pth'):
        MODELS.build(cfg)


def test_student_weights_from_distiller_checkpoint(distiller, tmp_path):
    torch.save({'state_dict': distiller.state_dict()}, tmp_path / 'd.pth')
    weights = student_state_dict(str(tmp_path / 'd.pth'))
    distiller.student.load_state_dict(weights, strict=True)
    torch.save({'state_dict': distiller.student.state_dict()}, tmp_path / 's.pth')
    with pytest.raises(KeyError, match='not a CASTDistiller checkpoint'):
        student_state_dict(str(tmp_path / 's.pth'))


def test_temperature_hook_anneals_and_resumes():
    hook = ContrastTemperatureHook(start=0.3, end=0.07)
    loss = InstanceAwarePixelContrastLoss()
    runner = mock.MagicMock()
    runner.model = torch.nn.Sequential(loss)
    runner.max_iters = 11
    seen = []
    for it in (0, 5, 10):
        runner.iter = it
        hook.before_train_iter(runner, it)
        seen.append(loss.temperature)
    assert seen == pytest.approx([0.3, 0.185, 0.07])
    with pytest.raises(ValueError):
        ContrastTemperatureHook(start=0.0)


def test_teacher_student_class_mismatch_is_refused(distiller):
    classes = ('person', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle',
               'bicycle')
    distiller.check_classes(classes)
    distiller.teacher_classes = classes[::-1]
    with pytest.raises(ValueError, match='teacher classes'):
        distiller.check_classes(classes)
    distiller.teacher_classes = None
    with pytest.raises(ValueError, match='predicts 8 classes'):
        distiller.check_classes(classes[:5])

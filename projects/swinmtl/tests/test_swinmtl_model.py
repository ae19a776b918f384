# Copyright (c) mmcast contributors. All rights reserved.
"""SwinMTL model: depth scaling, gradient penalty, SiLog loss, predictions,
two-optimizer training, resume, and Microsoft Swin-V2 checkpoints."""
import copy
import math
import os.path as osp

import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.hooks import Hook
from mmengine.optim import OptimWrapper, OptimWrapperDict, build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmengine.structures import PixelData
from torch.utils.data import Dataset

from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

import projects.swinmtl.swinmtl  # noqa: F401  (registers the SwinMTL modules)
from projects.swinmtl.swinmtl.models import (PatchGANCritic, SiLogDepthLoss,
                                             SwinMTLDepthHead,
                                             critic_input_gradient,
                                             gradient_penalty,
                                             swinv2_microsoft_to_mmpretrain)

NUM_CLASSES = 3
SIZE = 64
TINY_BACKBONE = dict(
    type='mmpretrain.SwinTransformerV2',
    arch=dict(
        embed_dims=16,
        depths=[1, 1, 1, 1],
        num_heads=[1, 1, 2, 2],
        extra_norm_every_n_blocks=0),
    img_size=SIZE,
    window_size=[4, 4, 2, 2],
    drop_path_rate=0.0,
    out_indices=(3, ))
TINY = dict(
    type='SwinMTL',
    backbone=TINY_BACKBONE,
    decoder=dict(
        type='SwinMTLDecoder',
        in_channels=128,
        deconv_channels=8,
        out_channels=16),
    depth_head=dict(type='SwinMTLDepthHead', in_channels=16, channels=16),
    seg_head=dict(
        type='SwinMTLSegHead',
        num_classes=NUM_CLASSES,
        in_channels=16,
        channels=16),
    critic=dict(type='PatchGANCritic', channels=(8, 16, 16, 16)),
    data_preprocessor=dict(
        type='SegDataPreProcessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        size=(SIZE, SIZE),
        test_cfg=dict(size_divisor=32)))
OPTIM_WRAPPER = dict(
    constructor='MultiOptimWrapperConstructor',
    generator=dict(
        type='OptimWrapper',
        optimizer=dict(type='AdamW', lr=5e-4, weight_decay=0.05),
        constructor='mmpretrain.LearningRateDecayOptimWrapperConstructor',
        paramwise_cfg=dict(layer_decay_rate=0.9)),
    critic=dict(
        type='OptimWrapper',
        optimizer=dict(type='Adam', lr=1e-4, betas=(0.5, 0.9))))


@pytest.fixture(autouse=True)
def mmseg_scope():
    init_default_scope('mmseg')


def build_model(**overrides):
    cfg = copy.deepcopy(TINY)
    cfg.update(overrides)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def make_sample(index: int, height: int = SIZE, width: int = SIZE):
    """A deterministic image and data sample with labels and depth; some
    pixels ignored (255) and some without depth (0)."""
    gen = torch.Generator().manual_seed(index)
    image = torch.randint(0, 256, (3, height, width), generator=gen,
                          dtype=torch.uint8)
    labels = torch.randint(0, NUM_CLASSES, (1, height, width), generator=gen)
    labels[:, :4] = 255
    depth = torch.rand(1, height, width, generator=gen) * 60 + 0.5
    depth[:, :, :5] = 0
    sample = SegDataSample(
        metainfo=dict(
            img_path=f'sample_{index}.png',
            img_shape=(height, width),
            ori_shape=(height, width)))
    sample.gt_sem_seg = PixelData(data=labels)
    sample.gt_depth_map = PixelData(data=depth)
    return image, sample


def make_batch(indices=(0, 1)):
    images, samples = zip(*(make_sample(i) for i in indices))
    return dict(inputs=list(images), data_samples=list(samples))


# (1) depth scaling ----------------------------------------------------------


@pytest.mark.parametrize('scaling,at_zero', [('log', 1e-3), ('linear', 0.0)])
def test_depth_encode_decode_round_trip(scaling, at_zero):
    head = SwinMTLDepthHead(depth_scaling=scaling, min_depth=1e-3,
                            max_depth=80.0)
    sigma = torch.linspace(0, 1, 101, dtype=torch.float64)
    depth = head.decode(sigma)
    assert torch.all(depth[1:] > depth[:-1])  # strictly increasing
    assert depth[0].item() == pytest.approx(at_zero, abs=1e-12)
    assert depth[-1].item() == pytest.approx(80.0, rel=1e-9)
    torch.testing.assert_close(head.encode(depth), sigma, rtol=0, atol=1e-9)
    metres = torch.tensor([1e-3, 0.01, 0.5, 3.0, 42.0, 80.0],
                          dtype=torch.float64)
    torch.testing.assert_close(head.decode(head.encode(metres)), metres)
    if scaling == 'log':
        # equal steps of sigma are equal depth ratios
        ratios = depth[1:] / depth[:-1]
        torch.testing.assert_close(ratios, torch.full_like(ratios,
                                                           80e3**0.01))
        assert head.decode(torch.tensor(0.5)).item() == pytest.approx(
            math.sqrt(1e-3 * 80.0), rel=1e-6)
    else:
        assert head.decode(torch.tensor(0.25)).item() == pytest.approx(20.0)
    # invalid ground truth (0 m) encodes to a finite value
    assert torch.isfinite(head.encode(torch.zeros(3))).all()
    with pytest.raises(ValueError, match='depth_scaling'):
        SwinMTLDepthHead(depth_scaling='sqrt')


# (2) gradient penalty -------------------------------------------------------


def test_gradient_penalty_of_linear_critics():
    torch.manual_seed(0)
    real = torch.randn(6, 4, 5, 5)
    fake = torch.randn(6, 4, 5, 5)
    weight = torch.randn(4 * 5 * 5, dtype=torch.float64).float()
    weight = weight / weight.norm()  # ‖∇‖ = 1 everywhere: 1-Lipschitz

    def critic(x):
        return x.flatten(1) @ weight

    assert gradient_penalty(critic, real, fake).item() < 1e-6

    def steep_critic(x):
        return 3 * critic(x)

    assert gradient_penalty(steep_critic, real,
                            fake).item() == pytest.approx(4.0, rel=1e-4)


def test_critic_input_gradient_loss_scale_under_fp16():
    """A critic with small output weights has input gradients (~1e-7 each)
    in fp16's subnormal range: under fp16 autocast they lose most of their
    precision; scaled as the AMP loss scaler scales (2^16) they keep it. In
    fp32 the scale changes nothing, and neither does it the penalty."""
    torch.manual_seed(0)
    critic = PatchGANCritic(4, channels=(8, 16, 16, 16))
    with torch.no_grad():
        critic.layers[-1].weight.mul_(1e-3)
    x = torch.rand(2, 4, 128, 128, requires_grad=True)
    exact = critic_input_gradient(critic, x)
    assert exact.abs().max() < 1e-6
    assert torch.allclose(
        critic_input_gradient(critic, x, 2.0**16), exact, rtol=1e-4,
        atol=0)

    def error(grad):
        return ((grad - exact).norm() / exact.norm()).item()

    with torch.autocast('cpu', dtype=torch.float16):
        unscaled = critic_input_gradient(critic, x)
        scaled = critic_input_gradient(critic, x, 2.0**16)
    assert unscaled.dtype == scaled.dtype == torch.float32
    assert error(unscaled) > 0.3
    assert error(scaled) < 0.05
    real, fake = torch.rand(2, 4, 32, 32), torch.rand(2, 4, 32, 32)
    penalties = []
    for scale in (1.0, 2.0**16):
        torch.manual_seed(1)
        penalties.append(gradient_penalty(critic, real, fake, scale).item())
    assert penalties[0] == pytest.approx(penalties[1], rel=1e-6)


def test_gradient_penalty_trains_the_critic():
    model = build_model()
    real = torch.rand(2, 1 + NUM_CLASSES, 32, 32)
    fake = torch.rand(2, 1 + NUM_CLASSES, 32, 32)
    penalty = gradient_penalty(model.critic, real, fake)
    assert penalty.item() > 0
    penalty.backward()
    # every weight gets a gradient (an output bias cannot change ∇ₓC)
    for name, param in model.critic.named_parameters():
        if name.endswith('weight'):
            assert param.grad is not None and param.grad.abs().sum() > 0


# (5) SiLog loss -------------------------------------------------------------


def test_silog_loss_matches_hand_computation():
    pred = torch.tensor([[[[2.0, 4.0, 1.0], [8.0, 0.5, 3.0]]]])
    target = torch.tensor([[[[1.0, 0.0, 2.0], [4.0, 1.0, 255.0]]]])
    valid = (target > 1e-3) & (target < 80)
    # valid pixels: (2, 1), (1, 2), (8, 4), (0.5, 1)
    g = [math.log(1 / 2), math.log(2 / 1), math.log(4 / 8), math.log(1 / 0.5)]
    mean_g2 = sum(x * x for x in g) / 4
    mean_g = sum(g) / 4
    expected = math.sqrt(mean_g2 - 0.5 * mean_g**2)
    loss = SiLogDepthLoss()(pred, target, valid)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # a weight and another lambda
    loss = SiLogDepthLoss(variance_focus=0.85, loss_weight=2.0)(pred, target,
                                                                valid)
    assert loss.item() == pytest.approx(
        2 * math.sqrt(mean_g2 - 0.85 * mean_g**2), rel=1e-6)


@pytest.mark.parametrize('case', ['no valid pixel', 'perfect prediction'])
def test_silog_loss_gradient_is_finite(case):
    target = torch.rand(2, 1, 4, 4) * 10 + 1
    pred = target.clone().requires_grad_(True)
    valid = torch.ones_like(target, dtype=torch.bool)
    if case == 'no valid pixel':
        valid[:] = False
    loss = SiLogDepthLoss()(pred, target, valid)
    loss.backward()
    assert loss.item() == pytest.approx(0.0, abs=2e-3)
    assert torch.isfinite(pred.grad).all()


# (3) predictions ------------------------------------------------------------


def test_predict_gives_contract_fields_at_original_size():
    model = build_model()
    model.eval()
    ori_shapes = [(50, 70), (40, 90)]
    images, samples = [], []
    for i, (height, width) in enumerate(ori_shapes):
        image, sample = make_sample(i, height, width)
        images.append(torch.nn.functional.interpolate(
            image[None].float(), size=(50, 70))[0].to(torch.uint8))
        sample.set_metainfo(dict(img_shape=(50, 70)))
        samples.append(sample)
    data = dict(inputs=images, data_samples=samples)
    with torch.no_grad():
        outputs = model.val_step(data)
    for (height, width), out in zip(ori_shapes, outputs):
        # test_cfg pads 50x70 to 64x96; predictions come back unpadded
        assert list(out.metainfo['img_padding_size']) == [0, 26, 0, 14]
        assert out.seg_logits.data.shape == (NUM_CLASSES, height, width)
        assert out.pred_sem_seg.data.shape == (1, height, width)
        assert out.pred_sem_seg.data.dtype == torch.int64
        assert torch.equal(out.pred_sem_seg.data[0],
                           out.seg_logits.data.argmax(dim=0))
        depth = out.pred_depth_map.data
        assert depth.shape == (1, height, width)
        assert depth.dtype == torch.float32
        assert depth.min() >= 1e-3 and depth.max() <= 80
    # mmseg's metrics take the predictions as they are
    evaluator = Evaluator([
        dict(type='IoUMetric', iou_metrics=['mIoU']),
        dict(type='DepthMetric', min_depth_eval=1e-3, max_depth_eval=80)
    ])
    evaluator.dataset_meta = dict(classes=('a', 'b', 'c'))
    evaluator.process(outputs, data)
    metrics = evaluator.evaluate(len(outputs))
    assert {'mIoU', 'abs_rel', 'rmse', 'd1'} <= set(metrics)
    # without data samples: input-size predictions
    with torch.no_grad():
        bare = model.predict(torch.zeros(1, 3, SIZE, SIZE))
    assert bare[0].pred_depth_map.data.shape == (1, SIZE, SIZE)


# (4) training ---------------------------------------------------------------


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def _changed(before, module):
    return {
        k for k, v in module.named_parameters()
        if not torch.equal(v.detach(), before[k])
    }


def test_train_step_updates_generator_and_critic():
    model = build_model()
    optim_wrapper = build_optim_wrapper(model, OPTIM_WRAPPER)
    assert isinstance(optim_wrapper, OptimWrapperDict)
    assert set(optim_wrapper.keys()) == {'generator', 'critic'}
    # layer-wise decay: the patch embedding is the lowest layer
    lrs = {  # (MMEngine adds a group without name to track the base lr)
        group['param_name']: group['lr']
        for group in optim_wrapper['generator'].param_groups
        if 'param_name' in group
    }
    num_layers = 4 + 2
    assert lrs['backbone.patch_embed.projection.weight'] == pytest.approx(
        5e-4 * 0.9**(num_layers - 1))
    assert lrs['backbone.stages.1.downsample.reduction.weight'] == \
        pytest.approx(5e-4 * 0.9**(num_layers - 2))
    assert lrs['decoder.conv.conv.weight'] == pytest.approx(5e-4)

    generator, critic = _snapshot(model.generator), _snapshot(model.critic)
    log_vars = model.train_step(make_batch(), optim_wrapper)
    assert set(log_vars) == {
        'loss', 'loss_seg', 'loss_depth', 'loss_adv', 'loss_critic', 'loss_gp'
    }
    assert all(torch.isfinite(v) for v in log_vars.values())
    assert log_vars['loss'].item() == pytest.approx(
        (log_vars['loss_seg'] + log_vars['loss_depth'] +
         log_vars['loss_adv']).item())
    assert _changed(generator, model.generator) == set(generator)
    assert _changed(critic, model.critic) == set(critic)
    # the generator's adversarial term leaves no gradient in the critic
    assert all(p.grad is None or not p.grad.any()
               for p in model.critic.parameters())
    with pytest.raises(TypeError, match='OptimWrapperDict'):
        model.train_step(make_batch(), optim_wrapper['generator'])


def test_critic_off_trains_with_one_optimizer():
    model = build_model(critic=None)
    assert model.critic is None and not model.with_critic
    optim_wrapper = build_optim_wrapper(
        model, dict(optimizer=dict(type='AdamW', lr=1e-3)))
    assert isinstance(optim_wrapper, OptimWrapper)
    generator = _snapshot(model.generator)
    log_vars = model.train_step(make_batch(), optim_wrapper)
    assert set(log_vars) == {'loss', 'loss_seg', 'loss_depth'}
    assert _changed(generator, model.generator) == set(generator)
    # or a dict with only the generator
    only_generator = build_optim_wrapper(
        model,
        dict(
            constructor='MultiOptimWrapperConstructor',
            generator=OPTIM_WRAPPER['generator']))
    model.train_step(make_batch(), only_generator)
    with pytest.raises(ValueError, match="no submodule 'critic'"):
        build_optim_wrapper(model, OPTIM_WRAPPER)


def test_bad_training_input_is_named():
    model = build_model()
    optim_wrapper = build_optim_wrapper(model, OPTIM_WRAPPER)
    batch = make_batch()
    del batch['data_samples'][1].gt_depth_map
    with pytest.raises(KeyError, match='sample 1 .*has no gt_depth_map'):
        model.train_step(batch, optim_wrapper)
    batch = make_batch()
    batch['data_samples'][0].gt_sem_seg.data[0, 10, 10] = 7
    with pytest.raises(ValueError, match=r'labels \[7\] outside 0..2'):
        model.train_step(batch, optim_wrapper)


@pytest.mark.parametrize('preprocessor,pad', [('SegDataPreProcessor', 255),
                                               ('MultiTaskSegDataPreProcessor',
                                                0)])
def test_padding_is_not_depth(preprocessor, pad):
    """Padded depth (255 from mmseg's SegDataPreProcessor, 0 from mmcast's
    MultiTaskSegDataPreProcessor) is out of the depth range: no loss, no
    critic target there."""
    data_preprocessor = copy.deepcopy(TINY['data_preprocessor'])
    data_preprocessor['type'] = preprocessor
    if preprocessor == 'MultiTaskSegDataPreProcessor':
        data_preprocessor['batch_augments'] = [
            dict(type='CutMixPatches', prob=1.0)
        ]
    model = build_model(data_preprocessor=data_preprocessor)
    images, samples = zip(*(make_sample(i, 48, 56) for i in range(2)))
    batch = dict(inputs=list(images), data_samples=list(samples))
    data = model.data_preprocessor(copy.deepcopy(batch), True)
    assert data['inputs'].shape[-2:] == (SIZE, SIZE)
    padded = data['data_samples'][0].gt_depth_map.data
    assert (padded[:, 48:] == pad).all()
    _, _, valid = model._ground_truth(data['data_samples'], (SIZE, SIZE))
    assert not valid[:, :, 48:].any() and not valid[:, :, :, 56:].any()
    assert valid[:, :, :48, 5:56].all()
    log_vars = model.train_step(batch,
                                build_optim_wrapper(model, OPTIM_WRAPPER))
    assert all(torch.isfinite(v) for v in log_vars.values())


# (6) resume -----------------------------------------------------------------


class _ListDataset(Dataset):
    """Four fixed samples, as a dataloader hands them to the model."""

    def __len__(self):
        return 4

    def __getitem__(self, index):
        image, sample = make_sample(index)
        return dict(inputs=image, data_samples=sample)


class _SeedEveryIter(Hook):
    """Seed the gradient penalty's random mix by iteration, so that a
    resumed run draws what the uninterrupted one drew (MMEngine does not
    checkpoint the RNG state)."""

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        torch.manual_seed(runner.iter)


def _runner(work_dir, name, load_from=None):
    return Runner(
        model=copy.deepcopy(TINY),
        work_dir=work_dir,
        experiment_name=name,
        train_dataloader=dict(
            dataset=_ListDataset(),
            sampler=dict(type='InfiniteSampler', shuffle=False),
            batch_size=2,
            num_workers=0),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=2),
        optim_wrapper=copy.deepcopy(OPTIM_WRAPPER),
        param_scheduler=dict(
            generator=[
                dict(
                    type='PolyLR',
                    power=0.9,
                    eta_min=3e-5,
                    begin=0,
                    end=2,
                    by_epoch=False)
            ],
            critic=[]),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=1,
                            by_epoch=False),
            logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[_SeedEveryIter()],
        default_scope='mmseg',
        randomness=dict(seed=0),
        load_from=load_from,
        resume=load_from is not None)


def _assert_same(a, b, path=''):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
    elif isinstance(a, dict):
        assert set(a) == set(b), path
        for key in a:
            _assert_same(a[key], b[key], f'{path}.{key}')
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f'{path}[{i}]')
    else:
        assert a == b, path


def test_resume_restores_both_optimizers_and_the_critic(tmp_path):
    straight = _runner(str(tmp_path / 'straight'), 'swinmtl_straight')
    straight.train()
    checkpoint = osp.join(str(tmp_path / 'straight'), 'iter_1.pth')
    saved = torch.load(checkpoint, map_location='cpu', weights_only=True)
    assert set(saved['optimizer']) == {'generator', 'critic'}
    assert any(k.startswith('critic.') for k in saved['state_dict'])

    resumed = _runner(str(tmp_path / 'resumed'), 'swinmtl_resumed',
                      load_from=checkpoint)
    resumed.train()
    assert resumed.iter == straight.iter == 2
    # generator and critic parameters and buffers (BatchNorm statistics)
    _assert_same(straight.model.state_dict(), resumed.model.state_dict(),
                 'model')
    # both optimizers: AdamW and Adam moments and step counts
    _assert_same(straight.optim_wrapper.state_dict(),
                 resumed.optim_wrapper.state_dict(), 'optimizer')
    assert straight.optim_wrapper.get_lr() == resumed.optim_wrapper.get_lr()
    # and the run did move away from iteration 1
    assert not torch.equal(
        saved['state_dict']['critic.layers.4.weight'],
        resumed.model.state_dict()['critic.layers.4.weight'])


# Microsoft-format Swin-V2 checkpoints ---------------------------------------


def _hf_to_microsoft(state_dict):
    """Rename HuggingFace ``Swinv2Model`` parameters (an independent Swin-V2
    implementation with Microsoft's layout) to Microsoft's checkpoint keys;
    the first block uses SimMIM's ``rpe_mlp`` name."""
    renames = [
        ('embeddings.patch_embeddings.projection', 'patch_embed.proj'),
        ('embeddings.norm', 'patch_embed.norm'),
        ('encoder.layers', 'layers'),
        ('layernorm_before', 'norm1'),
        ('layernorm_after', 'norm2'),
        ('attention.self.logit_scale', 'attn.logit_scale'),
        ('attention.output.dense', 'attn.proj'),
        ('intermediate.dense', 'mlp.fc1'),
        ('output.dense', 'mlp.fc2'),
    ]
    out = {}
    for key, value in state_dict.items():
        if 'relative' in key:
            continue
        new = key
        for old, name in renames:
            new = new.replace(old, name)
        if new.startswith('layernorm.'):
            new = 'norm.' + new[len('layernorm.'):]
        mlp = 'rpe_mlp' if new.startswith('layers.0.blocks.0.') else 'cpb_mlp'
        new = new.replace('attention.self.continuous_position_bias_mlp',
                          f'attn.{mlp}')
        if key.endswith('attention.self.query.weight'):
            hf = key[:-len('query.weight')]
            ms = new[:-len('attention.self.query.weight')] + 'attn.'
            out[ms + 'qkv.weight'] = torch.cat([
                state_dict[hf + 'query.weight'], state_dict[hf + 'key.weight'],
                state_dict[hf + 'value.weight']
            ])
            out[ms + 'q_bias'] = state_dict[hf + 'query.bias']
            out[ms + 'v_bias'] = state_dict[hf + 'value.bias']
        elif 'attention.self.' not in new:
            out[new] = value
    return out


def test_microsoft_swinv2_checkpoint_loads_through_init_cfg(tmp_path):
    from transformers import Swinv2Config, Swinv2Model

    torch.manual_seed(0)
    reference = Swinv2Model(
        Swinv2Config(
            image_size=SIZE,
            embed_dim=16,
            depths=[1, 2, 1, 1],
            num_heads=[1, 1, 2, 2],
            window_size=2,
            pretrained_window_sizes=[3, 3, 3, 2],
            drop_path_rate=0.0)).eval()
    with torch.no_grad():  # move norms and biases off their init values
        for param in reference.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    # a SimMIM file: the encoder beside a decoder, plus the mask token
    model_state = {
        'encoder.' + k: v
        for k, v in _hf_to_microsoft(reference.state_dict()).items()
    }
    model_state['encoder.mask_token'] = torch.zeros(1, 1, 16)
    model_state['decoder.0.weight'] = torch.zeros(48, 128, 1, 1)
    path = str(tmp_path / 'swin_v2_simmim.pth')
    torch.save(dict(model=model_state, epoch=99), path)

    backbone = copy.deepcopy(TINY_BACKBONE)
    backbone.update(
        arch=dict(
            embed_dims=16,
            depths=[1, 2, 1, 1],
            num_heads=[1, 1, 2, 2],
            extra_norm_every_n_blocks=0),
        window_size=[2, 2, 2, 2],
        pretrained_window_sizes=[3, 3, 3, 2],
        init_cfg=dict(
            type='Pretrained', checkpoint='microsoft-swinv2://' + path))
    model = build_model(backbone=backbone)
    model.eval()
    images = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        expected = reference(pixel_values=images).last_hidden_state
        feature = model.extract_feat(images)[-1]
    torch.testing.assert_close(
        feature.flatten(2).transpose(1, 2), expected, rtol=1e-4, atol=1e-4)

    with pytest.raises(ValueError, match='not a Microsoft-format'):
        swinv2_microsoft_to_mmpretrain({'backbone.stages.0.x': torch.zeros(1)})


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_train_step_under_autocast(dtype):
    """A critic + generator step under CPU autocast (the ops CUDA AMP puts
    in half precision): finite losses, every parameter of both updated,
    predictions in float32 metres."""
    model = build_model()
    optim_wrapper = build_optim_wrapper(model, OPTIM_WRAPPER)
    generator, critic = _snapshot(model.generator), _snapshot(model.critic)
    with torch.autocast('cpu', dtype=dtype):
        log_vars = model.train_step(make_batch(), optim_wrapper)
        assert all(torch.isfinite(v) for v in log_vars.values()), log_vars
        assert log_vars['loss_gp'] > 0
        model.eval()
        with torch.no_grad():
            out = model.val_step(make_batch((2, )))[0]
    assert _changed(generator, model.generator) == set(generator)
    assert _changed(critic, model.critic) == set(critic)
    depth = out.pred_depth_map.data
    assert depth.dtype == torch.float32 and torch.isfinite(depth).all()
    assert depth.min() >= 1e-3 and depth.max() <= 80

# Copyright (c) mmcast contributors. All rights reserved.
"""SwinMTL: monocular depth + semantic segmentation with a WGAN-GP critic."""
import copy
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.optim import OptimWrapper, OptimWrapperDict
from mmengine.structures import PixelData
from torch import Tensor

from mmseg.models.segmentors.base import BaseSegmentor
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from mmcast.utils import unwrap_model
from .swinmtl_generator import SwinMTLGenerator
from .wgan_gp_critic import gradient_penalty


@contextmanager
def _frozen(module: nn.Module) -> Iterator[None]:
    """Turn off the gradients of ``module``'s parameters inside the block."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def _loss_scale(optim_wrapper: OptimWrapper) -> float:
    """The current scale of an ``AmpOptimWrapper``'s loss scaler; 1 for an
    optim wrapper without one."""
    scaler = getattr(optim_wrapper, 'loss_scaler', None)
    return float(scaler.get_scale()) if scaler is not None else 1.0


@MODELS.register_module()
class SwinMTL(BaseSegmentor):
    """Multi-task depth estimation and semantic segmentation (SwinMTL).

    A :class:`SwinMTLGenerator` (SwinV2 encoder, shared decoder, depth and
    segmentation heads) trained with cross-entropy + scale-invariant log
    loss + ``adv_weight`` × a WGAN-GP adversarial term from a
    :class:`PatchGANCritic` that sees ``[σ, softmax(logits)]``: the depth
    head's normalised depth and the class probabilities (not an argmax, so
    that its gradient reaches both tasks).

    :meth:`train_step` makes one critic step and then one generator step
    with the two optimizers of an ``OptimWrapperDict`` (``generator`` and
    ``critic``, see ``MultiOptimWrapperConstructor``); checkpoints and
    ``--resume`` keep both. ``critic=None`` switches the adversarial part
    off (an ablation); then a plain optim wrapper or one with only
    ``generator`` trains the model.

    The critic's real sample is ``[encode(gt depth), one-hot(gt labels)]``.
    Where the ground truth has no value (depth outside ``(min_depth,
    max_depth)`` or padding, label ``ignore_index``) it holds the
    prediction itself, detached, so that the critic cannot tell real from
    fake by the holes, and those pixels give the generator no adversarial
    gradient through the real sample.

    Predictions (``predict``, ``val_step``, ``test_step``) carry
    ``seg_logits``, ``pred_sem_seg`` and ``pred_depth_map`` (metres) at
    ``ori_shape``, with padding removed and flips undone, for mmseg's
    ``IoUMetric`` and ``DepthMetric``.

    Args:
        backbone (dict): Encoder config, e.g.
            ``dict(type='mmpretrain.SwinTransformerV2', arch='base',
            out_indices=(3, ))``.
        seg_head (dict): :class:`SwinMTLSegHead` config (``num_classes``).
        decoder (dict): :class:`SwinMTLDecoder` config. Defaults to 1024
            input channels (SwinV2-B).
        depth_head (dict): :class:`SwinMTLDepthHead` config (depth scaling,
            depth range). Defaults to log scaling over 1e-3..80 m.
        critic (dict, optional): :class:`PatchGANCritic` config;
            ``in_channels`` defaults to ``1 + num_classes``. None trains
            without the adversarial term. Defaults to a PatchGAN critic.
        loss_depth (dict): Depth loss config. Defaults to
            :class:`SiLogDepthLoss`.
        loss_seg (dict): Segmentation loss config. Defaults to mmseg's
            ``CrossEntropyLoss`` averaged over non-ignored pixels.
        adv_weight (float): Weight of the generator's adversarial term
            ``−E[C(fake)]``. Defaults to 0.1.
        gp_weight (float): Weight of the gradient penalty. Defaults to 100.
        ignore_index (int): Label of unlabelled pixels. Defaults to 255.
        align_corners (bool): ``align_corners`` of the resizing back to
            ``ori_shape``. Defaults to False.
        data_preprocessor (dict, optional): ``SegDataPreProcessor`` config.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 backbone: dict,
                 seg_head: dict,
                 decoder: dict = dict(type='SwinMTLDecoder', in_channels=1024),
                 depth_head: dict = dict(type='SwinMTLDepthHead'),
                 critic: Optional[dict] = dict(type='PatchGANCritic'),
                 loss_depth: dict = dict(type='SiLogDepthLoss'),
                 loss_seg: dict = dict(
                     type='CrossEntropyLoss', avg_non_ignore=True),
                 adv_weight: float = 0.1,
                 gp_weight: float = 100.0,
                 ignore_index: int = 255,
                 align_corners: bool = False,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.generator = SwinMTLGenerator(
            backbone=backbone,
            decoder=decoder,
            depth_head=depth_head,
            seg_head=seg_head)
        self.num_classes = self.generator.seg_head.num_classes
        if critic is not None:
            critic = copy.deepcopy(critic)
            critic.setdefault('in_channels', 1 + self.num_classes)
            if critic['in_channels'] != 1 + self.num_classes:
                raise ValueError(
                    f'critic.in_channels must be 1 + num_classes = '
                    f'{1 + self.num_classes}, got {critic["in_channels"]}')
            self.critic = MODELS.build(critic)
        else:
            self.critic = None
        self.loss_depth = MODELS.build(loss_depth)
        self.loss_seg = MODELS.build(loss_seg)
        self.adv_weight = adv_weight
        self.gp_weight = gp_weight
        self.ignore_index = ignore_index
        self.align_corners = align_corners

    @property
    def with_critic(self) -> bool:
        """bool: Whether the adversarial part is on."""
        return self.critic is not None

    @property
    def _net(self) -> SwinMTLGenerator:
        """The generator, unwrapped if a DDP wrapper holds it."""
        net = self.generator
        return unwrap_model(net)

    def extract_feat(self, inputs: Tensor) -> Tuple[Tensor]:
        """Encoder features of ``(B, 3, H, W)`` images (last stage only)."""
        return self._net.backbone(inputs)

    def encode_decode(self, inputs: Tensor,
                      batch_img_metas: List[dict]) -> Tensor:
        """Segmentation logits ``(B, C, H, W)`` at the input size."""
        return self.generator(inputs)[0]

    def _forward(self,
                 inputs: Tensor,
                 data_samples: Optional[List[SegDataSample]] = None
                 ) -> Tuple[Tensor, Tensor]:
        """Logits ``(B, C, H, W)`` and depth in metres ``(B, 1, H, W)``."""
        seg_logits, sigma = self.generator(inputs)
        return seg_logits, self._net.depth_head.decode(sigma)

    def get_layer_depth(self, param_name: str) -> Tuple[int, int]:
        """Layer id for layer-wise learning-rate decay over the whole model
        (one optimizer); see :meth:`SwinMTLGenerator.get_layer_depth`."""
        return self._net.get_layer_depth(param_name, prefix='generator.')

    def _ground_truth(self, data_samples: Sequence[SegDataSample],
                      size: Tuple[int, int]) -> Tuple[Tensor, Tensor, Tensor]:
        """Stack the labels and depths of a training batch.

        Args:
            data_samples (Sequence[SegDataSample]): Samples with
                ``gt_sem_seg`` and ``gt_depth_map`` padded to ``size``.
            size (tuple[int, int]): ``(H, W)`` of the batch input.

        Returns:
            tuple[Tensor, Tensor, Tensor]: Labels ``(B, H, W)`` long, depth
            ``(B, 1, H, W)`` float and its valid mask ``(B, 1, H, W)`` bool:
            inside the depth head's ``(min_depth, max_depth)``, which
            excludes padding, whether ``MultiTaskSegDataPreProcessor`` pads
            depth with 0 or mmseg's ``SegDataPreProcessor`` with 255.
        """
        for i, sample in enumerate(data_samples):
            for key in ('gt_sem_seg', 'gt_depth_map'):
                if key not in sample:
                    raise KeyError(
                        f'SwinMTL trains on gt_sem_seg and gt_depth_map, '
                        f'but sample {i} ({sample.metainfo.get("img_path")}) '
                        f'has no {key}: the pipeline needs LoadAnnotations, '
                        'a depth loader (LoadDepthAnnotation or '
                        'LoadCityscapesDepth) and PackSegInputs')
                if tuple(sample.get(key).shape) != tuple(size):
                    raise ValueError(
                        f'{key} of sample {i} is '
                        f'{tuple(sample.get(key).shape)}, but the batch '
                        f'input is {tuple(size)}; set size or size_divisor '
                        'of SegDataPreProcessor so that it pads both')
        gt_seg = torch.stack([s.gt_sem_seg.data[0] for s in data_samples])
        gt_seg = gt_seg.long()
        bad = (gt_seg != self.ignore_index) & ((gt_seg < 0) |
                                               (gt_seg >= self.num_classes))
        if bad.any():
            raise ValueError(
                f'gt_sem_seg holds labels {gt_seg[bad].unique().tolist()} '
                f'outside 0..{self.num_classes - 1} and ignore_index '
                f'{self.ignore_index}')
        gt_depth = torch.stack([s.gt_depth_map.data
                                for s in data_samples]).float()
        return gt_seg, gt_depth, self._net.depth_head.valid_mask(gt_depth)

    def _task_losses(self, seg_logits: Tensor, sigma: Tensor, gt_seg: Tensor,
                     gt_depth: Tensor, valid_depth: Tensor) -> dict:
        """Cross-entropy and SiLog losses (shapes as :meth:`_ground_truth`,
        ``sigma`` the normalised depth ``(B, 1, H, W)``)."""
        depth = self._net.depth_head.decode(sigma)
        return dict(
            loss_seg=self.loss_seg(
                seg_logits, gt_seg, ignore_index=self.ignore_index),
            loss_depth=self.loss_depth(depth, gt_depth, valid_depth))

    def _critic_samples(self, seg_logits: Tensor, sigma: Tensor,
                        gt_seg: Tensor, gt_depth: Tensor,
                        valid_depth: Tensor) -> Tuple[Tensor, Tensor]:
        """The critic's fake and real samples, ``(B, 1 + C, H, W)`` each.

        fake = ``[σ, softmax(logits)]`` (with its graph); real = ``[encoded
        gt depth, one-hot gt labels]`` with the pixels without ground truth
        taken from fake, detached.
        """
        probs = seg_logits.softmax(dim=1)
        fake = torch.cat([sigma, probs], dim=1)
        with torch.no_grad():
            real_depth = torch.where(
                valid_depth, self._net.depth_head.encode(gt_depth), sigma)
            labelled = gt_seg != self.ignore_index
            one_hot = F.one_hot(
                torch.where(labelled, gt_seg, 0),
                self.num_classes).permute(0, 3, 1, 2).to(probs.dtype)
            real_seg = torch.where(labelled[:, None], one_hot, probs)
            real = torch.cat([real_depth.to(probs.dtype), real_seg], dim=1)
        return fake, real

    def loss(self, inputs: Tensor, data_samples: List[SegDataSample]) -> dict:
        """Task losses of a batch (no adversarial term; :meth:`train_step`
        adds it).

        Args:
            inputs (Tensor): Images ``(B, 3, H, W)``.
            data_samples (list[SegDataSample]): Samples with ``gt_sem_seg``
                and ``gt_depth_map``.

        Returns:
            dict: ``loss_seg`` and ``loss_depth``.
        """
        gt = self._ground_truth(data_samples, inputs.shape[-2:])
        return self._task_losses(*self.generator(inputs), *gt)

    def predict(self,
                inputs: Tensor,
                data_samples: Optional[List[SegDataSample]] = None
                ) -> List[SegDataSample]:
        """Predict segmentation and depth at the original image size.

        Args:
            inputs (Tensor): Images ``(B, 3, H, W)``.
            data_samples (list[SegDataSample], optional): Samples with
                ``ori_shape`` (and ``img_padding_size``/``padding_size``,
                ``flip`` when used) in their metainfo.

        Returns:
            list[SegDataSample]: With ``seg_logits`` ``(C, h, w)``,
            ``pred_sem_seg`` ``(1, h, w)`` and ``pred_depth_map``
            ``(1, h, w)`` in metres, ``(h, w)`` = ``ori_shape`` (the input
            size without data samples).
        """
        seg_logits, depth = self._forward(inputs)
        return self.postprocess_result(seg_logits, depth, data_samples)

    def _restore(self, x: Tensor, img_meta: dict) -> Tensor:
        """Remove padding, undo a flip and resize ``(1, K, H, W)`` to
        ``ori_shape``, as mmseg's segmentors do."""
        padding = img_meta.get('img_padding_size',
                               img_meta.get('padding_size', [0] * 4))
        left, right, top, bottom = padding
        height, width = x.shape[-2:]
        x = x[..., top:height - bottom, left:width - right]
        if img_meta.get('flip', False):
            direction = img_meta.get('flip_direction')
            if direction not in ('horizontal', 'vertical'):
                raise ValueError(f'unknown flip_direction {direction!r}')
            x = x.flip(dims=(3, ) if direction == 'horizontal' else (2, ))
        return F.interpolate(
            x,
            size=tuple(img_meta['ori_shape'][:2]),
            mode='bilinear',
            align_corners=self.align_corners)

    def postprocess_result(
            self,
            seg_logits: Tensor,
            depth: Tensor,
            data_samples: Optional[List[SegDataSample]] = None
    ) -> List[SegDataSample]:
        """Write the predictions into data samples.

        Args:
            seg_logits (Tensor): ``(B, C, H, W)`` at the input size.
            depth (Tensor): ``(B, 1, H, W)`` in metres.
            data_samples (list[SegDataSample], optional): Samples to fill;
                new ones at the input size when None.

        Returns:
            list[SegDataSample]: ``data_samples`` with ``seg_logits``,
            ``pred_sem_seg`` and ``pred_depth_map``.
        """
        if data_samples is None:
            data_samples = [SegDataSample() for _ in range(len(seg_logits))]
            metas = [None] * len(seg_logits)
        else:
            metas = [sample.metainfo for sample in data_samples]
        for i, (sample, meta) in enumerate(zip(data_samples, metas)):
            logits_i, depth_i = seg_logits[i:i + 1], depth[i:i + 1]
            if meta is not None:
                logits_i = self._restore(logits_i, meta)
                depth_i = self._restore(depth_i, meta)
            sample.set_data(
                dict(
                    seg_logits=PixelData(data=logits_i[0]),
                    pred_sem_seg=PixelData(
                        data=logits_i[0].argmax(dim=0, keepdim=True)),
                    pred_depth_map=PixelData(data=depth_i[0])))
        return data_samples

    def _optim_wrappers(
        self, optim_wrapper: Union[OptimWrapper, OptimWrapperDict]
    ) -> Tuple[OptimWrapper, Optional[OptimWrapper]]:
        """The generator's and the critic's (None without critic) optim
        wrappers, checked against the model."""
        expected = {'generator', 'critic'} if self.with_critic else \
            {'generator'}
        if isinstance(optim_wrapper, OptimWrapperDict):
            if set(optim_wrapper.keys()) != expected:
                raise ValueError(
                    f'SwinMTL ({"with" if self.with_critic else "without"} '
                    f'critic) needs optimizers {sorted(expected)}, got '
                    f'{sorted(optim_wrapper.keys())}')
            return optim_wrapper['generator'], (
                optim_wrapper['critic'] if self.with_critic else None)
        if self.with_critic:
            raise TypeError(
                'SwinMTL with a critic needs an OptimWrapperDict with '
                "'generator' and 'critic': optim_wrapper=dict(constructor="
                "'MultiOptimWrapperConstructor', generator=dict(...), "
                f'critic=dict(...)); got {type(optim_wrapper).__name__}')
        return optim_wrapper, None

    def _train_critic(self, real: Tensor, fake: Tensor,
                      optim_wrapper: OptimWrapper) -> Dict[str, Tensor]:
        """One critic step: ``E[C(fake)] − E[C(real)] + gp_weight · GP``.

        Args:
            real (Tensor): Real samples ``(B, 1 + C, H, W)``.
            fake (Tensor): Detached fake samples, same shape.
            optim_wrapper (OptimWrapper): The critic's optim wrapper.

        Returns:
            dict[str, Tensor]: ``loss_critic`` and ``loss_gp`` (weighted).
        """
        with optim_wrapper.optim_context(self.critic):
            scores = self.critic(torch.cat([fake, real]))
            fake_scores, real_scores = scores.chunk(2)
            losses = dict(
                loss_critic=fake_scores.mean() - real_scores.mean(),
                loss_gp=self.gp_weight * gradient_penalty(
                    self.critic, real, fake, _loss_scale(optim_wrapper)))
        loss, log_vars = self.parse_losses(losses)
        optim_wrapper.update_params(loss)
        log_vars.pop('loss')
        return log_vars

    def train_step(self, data: Union[dict, tuple, list],
                   optim_wrapper: Union[OptimWrapper, OptimWrapperDict]
                   ) -> Dict[str, Tensor]:
        """One training iteration: a critic step, then a generator step.

        The generator runs once; the critic learns from its detached output,
        then the generator minimises ``loss_seg + loss_depth + adv_weight ·
        (−E[C(fake)])`` against the updated critic (whose parameters get no
        gradient from it).

        Args:
            data (dict | tuple | list): A batch from the dataloader.
            optim_wrapper (OptimWrapper | OptimWrapperDict): ``generator``
                and ``critic`` optim wrappers; without critic also a single
                optim wrapper.

        Returns:
            dict[str, Tensor]: ``loss`` (the generator's total),
            ``loss_seg``, ``loss_depth`` and, with critic, ``loss_adv``,
            ``loss_critic`` and ``loss_gp``.
        """
        generator_wrapper, critic_wrapper = self._optim_wrappers(
            optim_wrapper)
        data = self.data_preprocessor(data, True)
        inputs, data_samples = data['inputs'], data['data_samples']
        gt_seg, gt_depth, valid_depth = self._ground_truth(
            data_samples, inputs.shape[-2:])
        log_vars = {}
        with generator_wrapper.optim_context(self.generator):
            seg_logits, sigma = self.generator(inputs)
            losses = self._task_losses(seg_logits, sigma, gt_seg, gt_depth,
                                       valid_depth)
        if self.with_critic:
            fake, real = self._critic_samples(seg_logits, sigma, gt_seg,
                                              gt_depth, valid_depth)
            log_vars.update(
                self._train_critic(real, fake.detach(), critic_wrapper))
            with generator_wrapper.optim_context(self.generator), \
                    _frozen(self.critic):
                losses['loss_adv'] = -self.adv_weight * self.critic(
                    fake).mean()
        loss, generator_log_vars = self.parse_losses(losses)
        generator_wrapper.update_params(loss)
        log_vars.update(generator_log_vars)
        return log_vars

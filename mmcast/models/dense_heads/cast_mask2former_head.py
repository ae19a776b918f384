# Copyright (c) mmcast contributors. All rights reserved.
"""Mask2Former head with CAST's instance-aware pixel-wise contrastive branch."""
from typing import Dict, List, Optional, Tuple

import torch
from mmdet.models.utils import unpack_gt_instances
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.utils import ConfigType, OptConfigType
from torch import Tensor

from .fp32_loss_mask2former_head import FP32LossMask2FormerHead


@MODELS.register_module()
class CASTMask2FormerHead(FP32LossMask2FormerHead):
    """Everything :class:`FP32LossMask2FormerHead` does, plus ``loss_pxl``.

    The contrastive branch reads one level of the backbone features (by
    default the deepest), projects it per pixel with ``projection_head``
    into unit-norm embeddings, and compares the weak view (with gradient)
    to the pixel-aligned strong view (no gradient) with
    ``loss_pixel_contrast``, whose negatives are mined from the head's own
    detached last-layer predictions. With ``loss_pixel_contrast=None`` or a
    ``loss_weight`` of 0 the head is exactly an
    :class:`FP32LossMask2FormerHead` (the projection head is then not
    built).

    The set-prediction losses are :class:`FP32LossMask2FormerHead`'s (the
    stock head's, computed in float32 under autocast).

    Args:
        contrast_level (int): Index into the backbone features used for the
            embeddings. Defaults to -1 (the deepest, stride 32/28).
        projection_head (dict): Config of the per-pixel projection head.
            Without ``in_channels`` it takes the channels of the chosen
            level (``in_channels[contrast_level]`` of the head), so one key,
            ``contrast_level``, moves the branch to another level.
        loss_pixel_contrast (dict, optional): Config of
            ``InstanceAwarePixelContrastLoss`` (its ``loss_weight`` is
            λ_pxl).
        *args, **kwargs: Passed to :class:`Mask2FormerHead`.
    """

    def __init__(self,
                 *args,
                 contrast_level: int = -1,
                 projection_head: ConfigType = dict(
                     type='PixelProjectionHead'),
                 loss_pixel_contrast: OptConfigType = dict(
                     type='InstanceAwarePixelContrastLoss'),
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.contrast_level = contrast_level
        self.with_pixel_contrast = (
            loss_pixel_contrast is not None
            and loss_pixel_contrast.get('loss_weight', 1.0) > 0)
        if self.with_pixel_contrast:
            projection_head = dict(projection_head)
            if projection_head.get('in_channels') is None:
                projection_head['in_channels'] = \
                    kwargs['in_channels'][contrast_level]
            self.projection_head = MODELS.build(projection_head)
            self.loss_pixel_contrast = MODELS.build(loss_pixel_contrast)

    def loss(self,
             x: Tuple[Tensor],
             batch_data_samples: SampleList,
             strong_x: Optional[Tuple[Tensor]] = None) -> Dict[str, Tensor]:
        """Mask2Former's set-prediction losses plus the contrastive loss.

        Args:
            x (tuple[Tensor]): Multi-level features of the weak view, each
                (B, C_l, H_l, W_l).
            batch_data_samples (list[:obj:`DetDataSample`]): With
                ``gt_instances`` (ground truth or pseudo-labels).
            strong_x (tuple[Tensor], optional): The same features of the
                photometric strong view, computed without gradient. When
                None (or the branch is off) no ``loss_pxl`` is returned.

        Returns:
            dict[str, Tensor]: ``loss_cls``, ``loss_mask``, ``loss_dice``
            (and their ``d{i}.`` deep-supervision copies), plus ``loss_pxl``,
            ``pxl_margin`` and, with ground-truth masks, ``pxl_fnr``.
        """
        branch_losses, contrast_losses = self.loss_branches(
            x, dict(batch=batch_data_samples), strong_x)
        losses = branch_losses['batch']
        losses.update(contrast_losses)
        return losses

    def loss_branches(
        self,
        x: Tuple[Tensor],
        branches: Dict[str, SampleList],
        strong_x: Optional[Tuple[Tensor]] = None
    ) -> Tuple[Dict[str, Dict[str, Tensor]], Dict[str, Tensor]]:
        """Losses of a batch made of several branches, in one forward pass.

        The set-prediction losses are normalised per branch (so a wrapper can
        weight labeled and pseudo-labeled images differently), the
        contrastive loss once over the whole batch, i.e. over
        D_l ∪ D_u as in the paper's objective.

        Args:
            x (tuple[Tensor]): Features of all branches' images stacked in
                the order of ``branches``, each (B, C_l, H_l, W_l).
            branches (dict[str, list[:obj:`DetDataSample`]]): The samples of
                each branch, with ``gt_instances``.
            strong_x (tuple[Tensor], optional): Strong-view features, as
                ``x``, computed without gradient.

        Returns:
            tuple[dict, dict]: The set-prediction losses of each branch, and
            ``loss_pxl`` / ``pxl_margin`` / ``pxl_fnr`` (empty when the
            contrastive branch is off or ``strong_x`` is None).
        """
        batch_data_samples = [s for samples in branches.values() for s in samples]
        batch_gt_instances, _, batch_img_metas = unpack_gt_instances(
            batch_data_samples)
        batch_gt_semantic_segs = [
            data_sample.get('gt_sem_seg', None)
            for data_sample in batch_data_samples
        ]
        all_cls_scores, all_mask_preds = self(x, batch_data_samples)
        batch_gt_instances = self.preprocess_gt(batch_gt_instances,
                                                batch_gt_semantic_segs)
        branch_losses, start = dict(), 0
        for name, samples in branches.items():
            part = slice(start, start + len(samples))
            start += len(samples)
            branch_losses[name] = self.loss_by_feat(
                [scores[part] for scores in all_cls_scores],
                [masks[part] for masks in all_mask_preds],
                batch_gt_instances[part], batch_img_metas[part])
        contrast_losses = dict()
        if self.with_pixel_contrast and strong_x is not None:
            contrast_losses = self.loss_contrast(
                x[self.contrast_level], strong_x[self.contrast_level],
                all_cls_scores[-1], all_mask_preds[-1], batch_gt_instances)
        return branch_losses, contrast_losses

    def loss_contrast(self, feat_weak: Tensor, feat_strong: Tensor,
                      cls_scores: Tensor, mask_preds: Tensor,
                      batch_gt_instances: List) -> Dict[str, Tensor]:
        """The instance-aware pixel-wise contrastive loss of one batch.

        Args:
            feat_weak (Tensor): Weak-view feature (B, C, h, w), with grad.
            feat_strong (Tensor): Strong-view feature (B, C, h, w).
            cls_scores (Tensor): Last-layer class logits (B, K, C+1).
            mask_preds (Tensor): Last-layer mask logits (B, K, H', W').
            batch_gt_instances (list[:obj:`InstanceData`]): Targets whose
                ``masks`` (N, H, W) and ``labels`` (N,) give the class id per
                embedding pixel, used only to log the false-negative rate.

        Returns:
            dict[str, Tensor]: ``loss_pxl``, ``pxl_margin``, ``pxl_fnr``.
        """
        in_channels = self.projection_head.mlp[0].in_channels
        if feat_weak.size(1) != in_channels:
            raise ValueError(
                f'panoptic_head.contrast_level={self.contrast_level} selects '
                f'a backbone feature with {feat_weak.size(1)} channels, but '
                f'panoptic_head.projection_head.in_channels is {in_channels}')
        z_weak = self.projection_head(feat_weak)
        with torch.no_grad():
            z_strong = self.projection_head(feat_strong)
        class_ids = self._class_id_map(batch_gt_instances, z_weak.shape[-2:])
        return self.loss_pixel_contrast(
            z_weak, z_strong, mask_preds.detach(), cls_scores.detach(),
            instance_ids=class_ids)

    @staticmethod
    def _class_id_map(batch_gt_instances: List,
                      size: Tuple[int, int]) -> Tensor:
        """Class id of the target instance at each embedding pixel.

        Target masks (N, H, W), padded to the batch shape, are resampled to
        ``size`` (nearest); where targets overlap, the last one in target
        order wins; pixels covered by no target get -1. Computed without a
        loop over the instances and without any host synchronisation.

        Returns:
            Tensor: (B, h, w) long.
        """
        maps = []
        for gt in batch_gt_instances:
            masks = gt.masks
            if not len(masks):
                maps.append(masks.new_full(tuple(size), -1, dtype=torch.long))
                continue
            small = torch.nn.functional.interpolate(
                masks[None].float(), size=size, mode='nearest')[0] > 0.5
            # 1-based index of the last target covering each pixel, 0: none
            rank = torch.arange(
                1, len(masks) + 1, device=masks.device).view(-1, 1, 1)
            last = (small * rank).amax(dim=0)
            labels = gt.labels.long()[(last - 1).clamp_(min=0)]
            maps.append(torch.where(last > 0, labels, -1))
        return torch.stack(maps)

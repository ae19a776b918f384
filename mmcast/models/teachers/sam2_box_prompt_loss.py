# Copyright (c) mmcast contributors. All rights reserved.
"""SAM 2's own training loss for box prompts (class-agnostic box -> mask).

The released SAM 2.1 learnt to turn a box into the mask of the object in it
on SA-1B / SA-V; a randomly initialised SAM 2 (the toy teacher's) has to be
taught the same before it can stand in for it. One prompt per ground-truth
instance: its box, jittered as in SAM's training (Gaussian noise of
``box_noise`` x the box's side per coordinate, at most ``2 * box_noise`` x the
side), decoded by SAM 2's mask decoder with all its mask tokens, then as
SAM 2's ``MultiStepMultiMasksAndIous`` (``sam2/training/loss_fns.py``):

* ``loss_sam2_mask`` / ``loss_sam2_dice``: sigmoid focal loss (mean over the
  pixels) and dice loss of the mask logits, bilinearly upsampled to the
  training image, against the instance's mask; the single-mask token's, plus
  the best (lowest loss) of the multi-mask tokens', so that the decoder's
  stability fallback at inference (``multimask_output=False`` with the
  official post-processing) picks a trained mask too;
* ``loss_sam2_iou``: L1 between every token's predicted IoU and the IoU of
  its binarised mask with the ground truth (SAM 2.1's ``supervise_all_iou``).

The weights default to SAM 2.1's (focal 20, dice 1, IoU 1). Losses are
averaged over the instances of the batch.
"""
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from torch import Tensor, nn

from .sam2_prompting import (decode_box_prompts, image_features_of,
                             sam2_image_features, sam2_input)

DEFAULT_LOSSES = dict(
    loss_mask=dict(
        type='FocalLoss',
        use_sigmoid=True,
        gamma=2.0,
        alpha=0.25,
        loss_weight=20.0),
    loss_dice=dict(
        type='DiceLoss',
        use_sigmoid=True,
        activate=True,
        naive_dice=True,
        eps=1.0,
        loss_weight=1.0),
    loss_iou=dict(type='L1Loss', loss_weight=1.0),
)


class SAM2BoxPromptLoss(nn.Module):
    """SAM 2's mask losses for ground-truth box prompts.

    Args:
        losses (dict, optional): overrides of :data:`DEFAULT_LOSSES`
            (mmdet ``MODELS`` configs by loss name).
        box_noise (float): standard deviation of the box jitter, as a share
            of the box's width (x) or height (y). 0 disables it.
    """

    def __init__(self,
                 losses: Optional[dict] = None,
                 box_noise: float = 0.1) -> None:
        super().__init__()
        cfgs = dict(DEFAULT_LOSSES)
        unknown = sorted(set(losses or {}) - set(cfgs))
        if unknown:
            raise ValueError(f'unknown SAM 2 losses {unknown}; known: '
                             f'{sorted(cfgs)}')
        cfgs.update(losses or {})
        self.loss_mask = MODELS.build(cfgs['loss_mask'])
        self.loss_dice = MODELS.build(cfgs['loss_dice'])
        self.loss_iou = MODELS.build(cfgs['loss_iou'])
        if box_noise < 0:
            raise ValueError(f'box_noise must be >= 0, got {box_noise}')
        self.box_noise = float(box_noise)

    def jitter(self, boxes: Tensor, height: int, width: int) -> Tensor:
        """SAM's box jitter of (N, 4) xyxy boxes, clipped to the image."""
        if self.box_noise == 0 or len(boxes) == 0:
            return boxes
        side = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)
        noise = torch.randn_like(boxes) * self.box_noise * side
        boxes = boxes + noise.clamp(-2 * self.box_noise * side,
                                    2 * self.box_noise * side)
        limit = boxes.new_tensor([width, height, width, height])
        return torch.minimum(boxes.clamp(min=0), limit)

    def forward(self, model: nn.Module, images: List[Tensor],
                boxes: List[Tensor], masks: List[Tensor]) -> Dict[str, Tensor]:
        """The losses of one batch.

        Args:
            model: the ``SAM2Base`` being trained.
            images: per image an RGB (3, H_i, W_i) float tensor in [0, 255]
                (the training view, augmentation applied).
            boxes: per image the (N_i, 4) xyxy ground-truth boxes in its
                pixels.
            masks: per image the (N_i, H_i, W_i) ground-truth masks.

        Returns:
            dict: ``loss_sam2_mask``, ``loss_sam2_dice``, ``loss_sam2_iou``
            (zero, with gradient, when the batch has no instance).
        """
        size = int(model.image_size)
        feats = sam2_image_features(model, sam2_input(images, size))
        per_token, ious, iou_preds = [], [], []
        for i, (image, img_boxes, img_masks) in enumerate(
                zip(images, boxes, masks)):
            if len(img_boxes) == 0:
                continue
            h, w = image.shape[-2:]
            prompts = self.jitter(img_boxes.float(), h, w)
            prompts = prompts / prompts.new_tensor([w, h, w, h]) * size
            logits, iou_pred = decode_box_prompts(
                model, image_features_of(feats, i), prompts, all_tokens=True)
            logits = F.interpolate(
                logits, (h, w), mode='bilinear', align_corners=False)
            target = img_masks.to(logits).unsqueeze(1).expand_as(logits)
            per_token.append(self._mask_losses(logits, target))
            ious.append(self._mask_iou(logits.detach() > 0, target > 0.5))
            iou_preds.append(iou_pred)
        if not per_token:
            zero = sum(p.sum() for p in feats['image_embed']) * 0
            return dict(loss_sam2_mask=zero, loss_sam2_dice=zero,
                        loss_sam2_iou=zero)
        focal, dice = (torch.cat(t) for t in zip(*per_token))
        # the single-mask token, and the best of the multi-mask tokens
        best = (focal[:, 1:] + dice[:, 1:]).argmin(dim=1, keepdim=True) + 1
        focal = focal[:, :1] + focal.gather(1, best)
        dice = dice[:, :1] + dice.gather(1, best)
        return dict(
            loss_sam2_mask=focal.mean(),
            loss_sam2_dice=dice.mean(),
            loss_sam2_iou=self.loss_iou(torch.cat(iou_preds), torch.cat(ious)))

    def _mask_losses(self, logits: Tensor, target: Tensor) -> tuple:
        """Weighted focal (pixel mean) and dice loss, (N, K) each."""
        n, k = logits.shape[:2]
        flat_logits = logits.reshape(n * k, -1)
        flat_target = target.reshape(n * k, -1)
        focal = self.loss_mask(
            flat_logits, flat_target, reduction_override='none').mean(1)
        dice = self.loss_dice(
            flat_logits, flat_target, reduction_override='none')
        return focal.view(n, k), dice.view(n, k)

    @staticmethod
    def _mask_iou(pred: Tensor, target: Tensor) -> Tensor:
        """IoU of binary masks (N, K, H, W) -> (N, K)."""
        inter = (pred & target).flatten(2).sum(-1).float()
        union = (pred | target).flatten(2).sum(-1).float()
        return torch.where(union > 0, inter / union.clamp(min=1),
                           torch.ones_like(union))

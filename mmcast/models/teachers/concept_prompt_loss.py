# Copyright (c) mmcast contributors. All rights reserved.
"""Supervised loss of SAM 3's concept-prompt outputs (stage-1 adaptation).

One *pair* is (image, class prompt): the prompt's queries are matched
one-to-one to the ground-truth instances of the prompt's class in that image
(mmdet's ``HungarianAssigner``: focal class cost, L1 and GIoU box costs, as
SAM 3's own matcher), then

* ``loss_cls``: sigmoid focal loss on the query logits (matched = positive),
  only for pairs whose class is present in the image. As in SAM 3's own
  training, an absent concept gives no per-query classification loss: the
  presence head alone has to say "absent" (the score is
  ``sigmoid(logit) * sigmoid(presence)``);
* ``loss_bbox`` / ``loss_iou``: L1 and GIoU on the matched boxes
  (normalised xyxy);
* ``loss_mask`` / ``loss_dice``: BCE and dice on the matched masks at the
  mask-logit resolution (ground truth resized to it);
* ``loss_presence``: BCE of the presence logit against "the class is in the
  image", for every pair.

Box and mask losses are averaged over all matched ground truths of the
batch, the classification loss likewise (as DETR), the presence loss over
the pairs. Only the final decoder layer is supervised.
"""
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from mmdet.registry import MODELS, TASK_UTILS
from mmengine.structures import InstanceData
from torch import Tensor, nn

DEFAULT_ASSIGNER = dict(
    type='HungarianAssigner',
    match_costs=[
        dict(type='FocalLossCost', weight=2.0),
        dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
        dict(type='IoUCost', iou_mode='giou', weight=2.0),
    ])
DEFAULT_LOSSES = dict(
    loss_cls=dict(
        type='FocalLoss',
        use_sigmoid=True,
        gamma=2.0,
        alpha=0.25,
        loss_weight=2.0),
    loss_bbox=dict(type='L1Loss', loss_weight=5.0),
    loss_iou=dict(type='GIoULoss', loss_weight=2.0),
    loss_mask=dict(
        type='CrossEntropyLoss', use_sigmoid=True, loss_weight=5.0),
    loss_dice=dict(
        type='DiceLoss',
        use_sigmoid=True,
        activate=True,
        naive_dice=True,
        eps=1.0,
        loss_weight=5.0),
    loss_presence=dict(
        type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
)


class ConceptPromptLoss(nn.Module):
    """Matching and losses for (image, class prompt) pairs.

    Args:
        assigner (dict, optional): a ``TASK_UTILS`` assigner config.
            Defaults to :data:`DEFAULT_ASSIGNER`.
        losses (dict, optional): overrides of :data:`DEFAULT_LOSSES`
            (mmdet ``MODELS`` configs by loss name).
    """

    def __init__(self,
                 assigner: Optional[dict] = None,
                 losses: Optional[dict] = None) -> None:
        super().__init__()
        self.assigner = TASK_UTILS.build(assigner or DEFAULT_ASSIGNER)
        cfgs = dict(DEFAULT_LOSSES)
        unknown = sorted(set(losses or {}) - set(cfgs))
        if unknown:
            raise KeyError(f'unknown concept-prompt losses {unknown}; valid '
                           f'names are {sorted(cfgs)}')
        cfgs.update(losses or {})
        for name, cfg in cfgs.items():
            setattr(self, name, MODELS.build(cfg))

    @torch.no_grad()
    def match(self, logits: Tensor, boxes: Tensor,
              gt_boxes: Tensor) -> Tensor:
        """Hungarian matching of one pair.

        Args:
            logits: (Q,) query logits.
            boxes: (Q, 4) normalised xyxy.
            gt_boxes: (G, 4) normalised xyxy.

        Returns:
            Tensor: (Q,) index of the matched ground truth, -1 if none.
        """
        pred = InstanceData(scores=logits[:, None], bboxes=boxes)
        gt = InstanceData(
            bboxes=gt_boxes,
            labels=torch.zeros(
                len(gt_boxes), dtype=torch.long, device=gt_boxes.device))
        result = self.assigner.assign(
            pred, gt, img_meta=dict(img_shape=(1, 1)))
        return result.gt_inds - 1

    def forward(self, logits: Tensor, boxes: Tensor, masks: Tensor,
                presence: Tensor, gt_boxes: List[Tensor],
                gt_masks: List[Optional[Tensor]]) -> Dict[str, Tensor]:
        """Losses of P pairs.

        Args:
            logits: (P, Q) query logits.
            boxes: (P, Q, 4) normalised xyxy boxes.
            masks: (P, Q, h, w) mask logits.
            presence: (P,) presence logits.
            gt_boxes: per pair (G_p, 4) normalised xyxy boxes of the pair's
                class (G_p = 0: the class is absent).
            gt_masks: per pair (G_p, h, w) float {0, 1} masks at the
                mask-logit resolution, or ``None`` (no mask supervision).

        Returns:
            dict[str, Tensor]: the six losses.
        """
        device = logits.device
        pos_pairs, pos_queries, gt_idx = [], [], []
        for p in range(len(logits)):
            if len(gt_boxes[p]) == 0:
                continue
            assigned = self.match(logits[p].detach(), boxes[p].detach(),
                                  gt_boxes[p])
            q = torch.nonzero(assigned >= 0).flatten()
            pos_pairs.append(torch.full_like(q, p))
            pos_queries.append(q)
            gt_idx.append(assigned[q])
        present = torch.tensor([len(g) > 0 for g in gt_boxes],
                               dtype=torch.bool, device=device)
        num_pos = max(sum(len(q) for q in pos_queries), 1)

        # classification: present pairs only; label 0 = matched, 1 = bg
        targets = torch.ones_like(logits, dtype=torch.long)
        for p, q in zip(pos_pairs, pos_queries):
            targets[p, q] = 0
        cls_logits = logits[present].reshape(-1, 1)
        if len(cls_logits):
            loss_cls = self.loss_cls(
                cls_logits, targets[present].reshape(-1), avg_factor=num_pos)
        else:
            loss_cls = logits.sum() * 0
        losses = dict(loss_cls=loss_cls)

        if pos_pairs:
            pairs = torch.cat(pos_pairs)
            queries = torch.cat(pos_queries)
            pred_boxes = boxes[pairs, queries]
            tgt_boxes = torch.cat(
                [gt_boxes[int(p[0])][g] for p, g in zip(pos_pairs, gt_idx)])
            losses['loss_bbox'] = self.loss_bbox(
                pred_boxes, tgt_boxes, avg_factor=num_pos)
            losses['loss_iou'] = self.loss_iou(
                pred_boxes, tgt_boxes, avg_factor=num_pos)
            with_mask = [
                gt_masks[int(p[0])] is not None for p in pos_pairs
            ]
            losses.update(
                self._mask_losses(masks, pos_pairs, pos_queries, gt_idx,
                                  gt_masks, with_mask, num_pos))
        else:
            zero = boxes.sum() * 0 + masks.sum() * 0
            losses.update(
                loss_bbox=zero, loss_iou=zero, loss_mask=zero, loss_dice=zero)
        losses['loss_presence'] = self.loss_presence(
            presence[:, None],
            present.float()[:, None],
            avg_factor=len(presence))
        return losses

    def _mask_losses(self, masks: Tensor, pos_pairs: List[Tensor],
                     pos_queries: List[Tensor], gt_idx: List[Tensor],
                     gt_masks: List[Optional[Tensor]], with_mask: List[bool],
                     num_pos: int) -> Dict[str, Tensor]:
        pred, tgt = [], []
        for p, q, g, ok in zip(pos_pairs, pos_queries, gt_idx, with_mask):
            if ok and len(q):
                pred.append(masks[p, q])
                tgt.append(gt_masks[int(p[0])][g])
        if not pred:
            zero = masks.sum() * 0
            return dict(loss_mask=zero, loss_dice=zero)
        pred = torch.cat(pred)
        tgt = torch.cat(tgt).to(pred)
        num = pred.shape[-2] * pred.shape[-1]
        loss_mask = self.loss_mask(
            pred.reshape(-1), tgt.reshape(-1), avg_factor=num_pos * num)
        loss_dice = self.loss_dice(pred, tgt, avg_factor=num_pos)
        return dict(loss_mask=loss_mask, loss_dice=loss_dice)


def resize_gt_masks(masks: Tensor, size: tuple) -> Tensor:
    """(G, H, W) {0, 1} masks -> (G, h, w) float {0, 1} (bilinear, > 0.5)."""
    if len(masks) == 0:
        return masks.new_zeros((0, *size), dtype=torch.float)
    up = F.interpolate(
        masks[:, None].float(), size, mode='bilinear', align_corners=False)
    return (up[:, 0] > 0.5).float()

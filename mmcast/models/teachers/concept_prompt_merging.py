# Copyright (c) mmcast contributors. All rights reserved.
"""Turning SAM 3's per-prompt detections into one instance set per image.

* per-class score thresholds and class-agnostic mask NMS: SAM 3 scores every
  concept prompt independently, so one object gets a score from several
  prompts ('rider' and 'cyclist' of one class, or 'person' and 'rider' of two
  classes); the higher-scored instance is kept;
* class prompts and thresholds: several prompts per class, one score
  threshold per class;
* tiling of wide images (e.g. 2:1 Cityscapes) into overlapping square tiles,
  pasting each tile's mask logits into one image-wide canvas and merging the
  instances that a tile border cut into pieces.

All masks here are logits on a common *canvas*: the image at the mask-logit
resolution of one view (for a single view the canvas is that grid itself).
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.structures import InstanceData
from torch import Tensor

#: canvas logit outside every tile that saw an instance
OUTSIDE_LOGIT = -100.0


def mask_iou_matrix(a: Tensor, b: Tensor) -> Tensor:
    """IoU of bool masks ``a`` (N, H, W) and ``b`` (M, H, W) -> (N, M)."""
    a = a.flatten(1).float()
    b = b.flatten(1).float()
    inter = a @ b.t()
    union = a.sum(1)[:, None] + b.sum(1)[None] - inter
    return inter / union.clamp(min=1)


def mask_nms(masks: Tensor, scores: Tensor, iou_thr: float) -> Tensor:
    """Greedy class-agnostic mask NMS.

    Args:
        masks: (N, H, W) bool.
        scores: (N,).
        iou_thr: an instance whose mask IoU with a kept, higher-scored one
            is ``> iou_thr`` is dropped.

    Returns:
        Tensor: indices of the kept instances, by descending score (ties:
        the lower index first).
    """
    order = torch.argsort(scores, descending=True, stable=True)
    if len(order) == 0:
        return order
    iou = mask_iou_matrix(masks[order], masks[order])
    keep = torch.ones(len(order), dtype=torch.bool, device=scores.device)
    for i in range(len(order)):
        if keep[i]:
            suppressed = iou[i] > iou_thr
            suppressed[:i + 1] = False
            keep &= ~suppressed
    return order[keep]


def select_instances(scores: Tensor, labels: Tensor, masks: Tensor,
                     class_thrs: Tensor, nms_iou_thr: float,
                     max_per_img: int) -> Tensor:
    """Per-class thresholds, then cross-class mask NMS, then top-k.

    Args:
        scores: (N,) in [0, 1].
        labels: (N,) class ids.
        masks: (N, H, W) bool (any common grid).
        class_thrs: (num_classes,) score thresholds; ``score > thr`` kept.
        nms_iou_thr: mask IoU above which the lower-scored instance goes,
            whatever the two classes; ``>= 1`` disables NMS.
        max_per_img: keep at most this many.

    Returns:
        Tensor: kept indices by descending score.
    """
    above = torch.nonzero(scores > class_thrs.to(scores)[labels]).flatten()
    if nms_iou_thr < 1:
        kept = above[mask_nms(masks[above], scores[above], nms_iou_thr)]
    else:
        kept = above[torch.argsort(scores[above], descending=True,
                                   stable=True)]
    return kept[:max_per_img]


def tile_windows(height: int, width: int, tile_size: int,
                 overlap: float) -> List[Tuple[int, int, int, int]]:
    """Square tiles ``(x0, y0, x1, y1)`` covering an image.

    Along each axis, ``n = ceil((L - o) / (t - o))`` tiles of side ``t`` (at
    most the axis length) are spread evenly from 0 to ``L - t``, so that
    neighbours overlap by at least ``o = overlap * t`` pixels.

    Args:
        height, width: image size.
        tile_size: tile side; ``0`` means the short side of the image.
        overlap: fraction of the tile side shared by neighbours, in [0, 1).
    """
    if not 0 <= overlap < 1:
        raise ValueError(f'tiling overlap must be in [0, 1), got {overlap}')
    side = min(tile_size or min(height, width), height, width)

    def starts(length: int) -> List[int]:
        if length <= side:
            return [0]
        step = side - overlap * side
        n = math.ceil((length - overlap * side) / step - 1e-9)
        n = max(n, 2)
        return [round(i * (length - side) / (n - 1)) for i in range(n)]

    return [(x, y, x + side, y + side) for y in starts(height)
            for x in starts(width)]


def canvas_geometry(height: int, width: int, tile: Sequence[int],
                    mask_hw: Tuple[int, int]) -> Tuple[float, float, int, int]:
    """Scale (sy, sx) image->canvas and canvas size (ch, cw) for tiles of
    the size of ``tile`` whose masks are ``mask_hw``."""
    sy = mask_hw[0] / (tile[3] - tile[1])
    sx = mask_hw[1] / (tile[2] - tile[0])
    return sy, sx, max(1, round(height * sy)), max(1, round(width * sx))


def paste_tile_masks(logits: Tensor, tile: Sequence[int], scale: Tuple[float,
                                                                       float],
                     canvas_hw: Tuple[int, int]) -> Tensor:
    """Put one tile's mask logits (N, h, w) into the image canvas.

    Pixels outside the tile get :data:`OUTSIDE_LOGIT`.
    """
    sy, sx = scale
    ch, cw = canvas_hw
    out = logits.new_full((len(logits), ch, cw), OUTSIDE_LOGIT)
    y0, x0 = round(tile[1] * sy), round(tile[0] * sx)
    h = min(logits.shape[1], ch - y0)
    w = min(logits.shape[2], cw - x0)
    out[:, y0:y0 + h, x0:x0 + w] = logits[:, :h, :w]
    return out


def merge_tile_instances(masks: Tensor, tile_ids: Tensor, labels: Tensor,
                         tiles: Sequence[Sequence[int]],
                         scale: Tuple[float, float],
                         iou_thr: float) -> List[List[int]]:
    """Groups of instances of one object cut by tile borders.

    Two instances of the same class from different, overlapping tiles are
    one object when their masks agree in the band the two tiles share:
    the IoU of the masks restricted to that band is ``>= iou_thr``
    (a whole-mask IoU would be low for the two halves of a cut object).
    Groups are the connected components of that relation.

    Args:
        masks: (N, ch, cw) bool canvas masks.
        tile_ids: (N,) index into ``tiles`` of the tile that found each.
        labels: (N,) class ids.
        tiles: tile windows ``(x0, y0, x1, y1)`` in image pixels.
        scale: (sy, sx) image -> canvas.
        iou_thr: band IoU needed to merge.

    Returns:
        list[list[int]]: the groups (singletons included), ordered by their
        smallest index.
    """
    parent = list(range(len(masks)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    sy, sx = scale
    for a in range(len(tiles)):
        for b in range(a + 1, len(tiles)):
            x0 = max(tiles[a][0], tiles[b][0])
            y0 = max(tiles[a][1], tiles[b][1])
            x1 = min(tiles[a][2], tiles[b][2])
            y1 = min(tiles[a][3], tiles[b][3])
            if x1 <= x0 or y1 <= y0:
                continue
            band = (slice(round(y0 * sy), round(y1 * sy)),
                    slice(round(x0 * sx), round(x1 * sx)))
            ia = torch.nonzero(tile_ids == a).flatten()
            ib = torch.nonzero(tile_ids == b).flatten()
            if len(ia) == 0 or len(ib) == 0:
                continue
            iou = mask_iou_matrix(masks[ia][:, band[0], band[1]],
                                  masks[ib][:, band[0], band[1]])
            same = labels[ia][:, None] == labels[ib][None]
            for i, j in torch.nonzero((iou >= iou_thr) & same).tolist():
                ri, rj = find(int(ia[i])), find(int(ib[j]))
                if ri != rj:
                    parent[max(ri, rj)] = min(ri, rj)
    groups = {}
    for i in range(len(masks)):
        groups.setdefault(find(i), []).append(i)
    return sorted(groups.values(), key=lambda g: g[0])


def fuse_groups(groups: List[List[int]], scores: Tensor, labels: Tensor,
                bboxes: Tensor, logits: Tensor
                ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """One instance per group: the max score, the union box (xyxy), the
    pixel-wise max of the mask logits; the label of the group."""
    out_s, out_l, out_b, out_m = [], [], [], []
    for group in groups:
        idx = torch.tensor(group, device=scores.device)
        out_s.append(scores[idx].max())
        out_l.append(labels[idx[0]])
        box = bboxes[idx]
        out_b.append(
            torch.cat([box[:, :2].min(0).values, box[:, 2:].max(0).values]))
        out_m.append(logits[idx].max(0).values)
    if not groups:
        return scores[:0], labels[:0], bboxes[:0], logits[:0]
    return (torch.stack(out_s), torch.stack(out_l), torch.stack(out_b),
            torch.stack(out_m))


def merge_views(dets: List[dict], tiles: List[tuple], hw, class_thrs: Tensor,
                mask_threshold: float, nms_iou_thr: float, max_per_img: int,
                merge_iou_thr: float) -> InstanceData:
    """One image's instances from its views (tiles, or the whole image).

    Pastes the views' mask logits into one canvas, merges instances cut by
    tile borders (:func:`merge_tile_instances`), applies the per-class
    thresholds, cross-class mask NMS and top-k (:func:`select_instances`)
    and upsamples the kept masks to the image.

    Args:
        dets: per view ``scores`` (N,), ``labels`` (N,), ``boxes`` (N, 4)
            normalised xyxy in the view, ``masks`` (N, h, w) logits.
        tiles: per view its window ``(x0, y0, x1, y1)`` in image pixels.
        hw: (H, W) of the image.
        class_thrs: (num_classes,) score thresholds.
        mask_threshold: mask logit threshold.
        nms_iou_thr, max_per_img: see :func:`select_instances`.
        merge_iou_thr: see :func:`merge_tile_instances`.

    Returns:
        InstanceData: ``bboxes`` (K, 4) in image pixels, ``scores``,
        ``labels`` (int64), ``masks`` (K, H, W) bool.
    """
    h, w = int(hw[0]), int(hw[1])
    mask_hw = tuple(dets[0]['masks'].shape[-2:])
    sy, sx, ch, cw = canvas_geometry(h, w, tiles[0], mask_hw)
    scores, labels, boxes, logits, tile_ids = [], [], [], [], []
    for t, (det, (x0, y0, x1, y1)) in enumerate(zip(dets, tiles)):
        scale = det['boxes'].new_tensor([x1 - x0, y1 - y0, x1 - x0, y1 - y0])
        offset = det['boxes'].new_tensor([x0, y0, x0, y0])
        boxes.append(det['boxes'] * scale + offset)
        logits.append(
            paste_tile_masks(det['masks'], (x0, y0, x1, y1), (sy, sx),
                             (ch, cw)))
        scores.append(det['scores'])
        labels.append(det['labels'])
        tile_ids.append(torch.full_like(det['labels'], t))
    scores, labels = torch.cat(scores), torch.cat(labels)
    boxes, logits = torch.cat(boxes), torch.cat(logits)
    if len(tiles) > 1 and len(scores):
        groups = merge_tile_instances(logits > mask_threshold,
                                      torch.cat(tile_ids), labels, tiles,
                                      (sy, sx), merge_iou_thr)
        scores, labels, boxes, logits = fuse_groups(groups, scores, labels,
                                                    boxes, logits)
    keep = select_instances(scores, labels, logits > mask_threshold,
                            class_thrs, nms_iou_thr, max_per_img)
    boxes = boxes[keep]
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
    return InstanceData(
        bboxes=boxes,
        scores=scores[keep],
        labels=labels[keep].long(),
        masks=upsample_masks(logits[keep], (h, w), mask_threshold))


def upsample_masks(logits: Tensor,
                   hw: Tuple[int, int],
                   threshold: float,
                   chunk: int = 16) -> Tensor:
    """(N, ch, cw) canvas logits -> (N, H, W) bool masks (bilinear)."""
    out = torch.zeros((len(logits), *hw),
                      dtype=torch.bool,
                      device=logits.device)
    for s in range(0, len(logits), chunk):
        up = F.interpolate(
            logits[s:s + chunk, None], hw, mode='bilinear',
            align_corners=False)
        out[s:s + chunk] = up[:, 0] > threshold
    return out


def build_class_prompts(classes: Sequence[str],
                        class_prompts: Optional[Dict[str, List[str]]]
                        ) -> Tuple[List[str], List[int]]:
    """All prompts and, per prompt, its class id.

    Classes missing from ``class_prompts`` are prompted with their name
    ('_' as a space).

    Raises:
        ValueError: a key that is no class, an empty or non-list entry, or a
            prompt used twice.
    """
    class_prompts = dict(class_prompts or {})
    unknown = sorted(set(class_prompts) - set(classes))
    if unknown:
        raise ValueError(f'class_prompts keys {unknown} are not classes '
                         f'({list(classes)})')
    prompts, labels = [], []
    for label, name in enumerate(classes):
        texts = class_prompts.get(name, [name.replace('_', ' ')])
        if isinstance(texts, str) or not texts:
            raise ValueError(f'class_prompts[{name!r}] must be a non-empty '
                             f'list of strings, got {texts!r}')
        for text in texts:
            if text in prompts:
                raise ValueError(f'prompt {text!r} is used twice')
            prompts.append(str(text))
            labels.append(label)
    return prompts, labels


def class_thresholds(classes: Sequence[str],
                     score_thr: Union[float, Dict[str, float]]) -> Tensor:
    """(num_classes,) thresholds from one value or a dict over all classes.

    Raises:
        ValueError: a dict with unknown or missing classes.
    """
    if not isinstance(score_thr, dict):
        return torch.full((len(classes), ), float(score_thr))
    unknown = sorted(set(score_thr) - set(classes))
    missing = [c for c in classes if c not in score_thr]
    if unknown or missing:
        raise ValueError(
            f'score_thr per class: unknown classes {unknown}, missing '
            f'classes {missing} (classes: {list(classes)})')
    return torch.tensor([float(score_thr[c]) for c in classes])


def check_tiling(tiling: Optional[dict]) -> Optional[dict]:
    """Complete a tiling config with its defaults (``tile_size=0``,
    ``overlap=0.25``, ``merge_iou_thr=0.5``) and validate it."""
    if tiling is None:
        return None
    out = dict(tile_size=0, overlap=0.25, merge_iou_thr=0.5)
    unknown = sorted(set(tiling) - set(out))
    if unknown:
        raise ValueError(f'unknown tiling keys {unknown}; valid are '
                         f'{sorted(out)}')
    out.update(tiling)
    tile_windows(1, 2, out['tile_size'], out['overlap'])  # validates
    return out

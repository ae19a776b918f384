# Copyright (c) mmcast contributors. All rights reserved.
"""MaskFormer instance inference that resamples only the kept masks."""
import contextlib
from typing import Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmdet.models.seg_heads.panoptic_fusion_heads import MaskFormerFusionHead
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmengine.structures import InstanceData
from torch import Tensor, nn

from mmcast.structures import masks_to_bboxes

# Floats of resampled mask logits held at once (128 MiB): bounds the memory
# of large images; chunking does not change any value.
PIXEL_BUDGET = 2**25


def _resample(logits: Tensor, batch_input_shape: Tuple[int, int],
              img_shape: Tuple[int, int],
              ori_shape: Optional[Tuple[int, int]]) -> Tensor:
    """Mask logits (n, h, w) resampled as stock Mask2Former does: bilinear
    to the padded batch shape (unless they are already), the padding
    cropped, bilinear to the original shape (unless it is the same)."""
    if tuple(logits.shape[-2:]) != batch_input_shape:
        logits = F.interpolate(
            logits[None], size=batch_input_shape, mode='bilinear',
            align_corners=False)[0]
    logits = logits[:, :img_shape[0], :img_shape[1]]
    if ori_shape is not None and ori_shape != img_shape:
        logits = F.interpolate(
            logits[:, None], size=ori_shape, mode='bilinear',
            align_corners=False)[:, 0]
    return logits


def lean_instance_results(mask_cls: Tensor,
                          mask_pred: Tensor,
                          num_things_classes: int,
                          batch_input_shape: Sequence[int],
                          img_shape: Sequence[int],
                          ori_shape: Optional[Sequence[int]] = None,
                          max_per_image: int = 100,
                          score_thr: float = 0.0) -> InstanceData:
    """Mask2Former instance inference of one image, resampling only what is
    kept.

    The top ``min(max_per_image, Q × C)`` (query, class) pairs by class
    probability are chosen on the logits as stock ``MaskFormerFusionHead``
    chooses them; pairs of stuff classes and pairs whose class probability
    is under ``score_thr`` are dropped before any resampling (a detection's
    score is class probability × mask score ≤ class probability). Only the
    masks of the distinct kept queries are resampled to the output shape,
    in chunks, and scored there, in float32 also under autocast; boxes are
    computed on the device. With
    ``score_thr=0`` the result is the stock head's (same pairs, masks and
    boxes; scores up to float summation order); otherwise it is the stock
    result without the detections scored under ``score_thr``.

    Args:
        mask_cls (Tensor): Class logits (Q, C + 1), the last "no object".
        mask_pred (Tensor): Mask logits (Q, h, w) over the padded batch
            input, at any resolution (the head's 1/4, or already upsampled
            to ``batch_input_shape``).
        num_things_classes (int): Classes ``< num_things_classes`` are
            things; the others (stuff) are not instances.
        batch_input_shape (Sequence[int]): Padded input (H, W).
        img_shape (Sequence[int]): The resized image (h_i, w_i) inside it.
        ori_shape (Sequence[int], optional): Output (H_o, W_o); ``None``
            keeps ``img_shape`` (``rescale=False``).
        max_per_image (int): Pairs kept at most. Defaults to 100.
        score_thr (float): Minimum detection score. Defaults to 0.

    Returns:
        InstanceData: ``scores`` (n,) float32, ``labels`` (n,) int64,
        ``bboxes`` (n, 4) float32 and bool ``masks`` (n, H_o, W_o); its
        metainfo holds the cap (``max_per_image``, at most ``Q × C``) and
        ``num_over_cap``, the objects it left out (see
        :func:`count_over_cap`).
    """
    num_queries, num_classes = mask_cls.shape[0], mask_cls.shape[1] - 1
    probs = F.softmax(mask_cls.float(), dim=-1)
    scores = probs[:, :-1]
    top = min(max_per_image, num_queries * num_classes)
    top_scores, top_index = scores.flatten(0, 1).topk(top, sorted=False)
    num_over_cap = count_over_cap(probs, top_index, num_things_classes,
                                  score_thr)
    labels = top_index % num_classes
    queries = top_index // num_classes
    keep = labels < num_things_classes
    if score_thr > 0:
        keep &= top_scores >= score_thr
    top_scores, labels, queries = top_scores[keep], labels[keep], queries[keep]

    batch_input_shape, img_shape = tuple(batch_input_shape), tuple(img_shape)
    ori_shape = tuple(ori_shape) if ori_shape is not None else None
    out_shape = ori_shape or img_shape
    distinct, pair_to_query = torch.unique(queries, return_inverse=True)
    binary = torch.zeros((len(distinct), *out_shape), dtype=torch.bool,
                         device=mask_pred.device)
    mask_scores = mask_pred.new_zeros(len(distinct), dtype=torch.float32)
    pixels = max(out_shape[0] * out_shape[1],
                 batch_input_shape[0] * batch_input_shape[1])
    chunk = max(1, PIXEL_BUDGET // pixels)
    for start in range(0, len(distinct), chunk):
        part = slice(start, start + chunk)
        logits = _resample(mask_pred[distinct[part]].float(),
                           batch_input_shape, img_shape, ori_shape)
        positive = logits > 0
        binary[part] = positive
        area = torch.count_nonzero(positive.flatten(1), dim=1)
        # mean sigmoid over the mask (stock: sigmoid * binary, summed)
        inside = torch.where(positive, logits, float('-inf')).sigmoid_()
        mask_scores[part] = inside.flatten(1).sum(1) / (area + 1e-6)

    results = InstanceData()
    results.scores = top_scores.float() * mask_scores[pair_to_query]
    results.labels = labels
    results.masks = binary[pair_to_query]
    results.bboxes = masks_to_bboxes(binary)[pair_to_query]
    results.set_metainfo(dict(max_per_image=top, num_over_cap=num_over_cap))
    if score_thr > 0:
        results = results[results.scores >= score_thr]
    return results


def count_over_cap(probs: Tensor, kept_pairs: Tensor, num_things_classes: int,
                   score_thr: float = 0.0) -> int:
    """The objects of one image that a cap on the kept (query, class) pairs
    left out: queries whose most probable class is a thing (neither "no
    object" nor stuff), with a probability of at least ``score_thr``, whose
    pair of that class is not kept.

    Args:
        probs (Tensor): Class probabilities (Q, C + 1), the last "no
            object".
        kept_pairs (Tensor): The kept pairs as flat indices ``q × C + c``
            (n,).
        num_things_classes (int): Classes below it are things.
        score_thr (float): The lowest probability that counts.

    Returns:
        int: 0 when the cap left out no object.
    """
    num_queries, num_classes = probs.shape[0], probs.shape[1] - 1
    best_prob, best = probs.max(dim=-1)
    found = (best < num_things_classes) & (best_prob >= score_thr)
    kept = torch.zeros(num_queries * num_classes, dtype=torch.bool,
                       device=probs.device)
    kept[kept_pairs] = True
    pair = torch.arange(num_queries, device=probs.device) * num_classes + \
        best.clamp(max=num_classes - 1)
    return int((found & ~kept[pair]).sum())


@MODELS.register_module()
class LeanMaskFormerFusionHead(MaskFormerFusionHead):
    """Drop-in :class:`MaskFormerFusionHead` for instance segmentation that
    resamples only the masks it keeps (:func:`lean_instance_results`).

    Stock Mask2Former upsamples all Q query masks to the padded input,
    crops, upsamples them again to the original shape, binarises and scores
    all of them at full resolution and boxes them in a Python loop. Here
    the kept (query, class) pairs are chosen on the logits first, at most
    ``num_queries × num_classes`` of them (so any class count works), and
    only their distinct queries are resampled. ``CASTMask2Former`` hands
    the head the 1/4-resolution logits; under a stock ``Mask2Former`` it
    gets them upsampled and still gives the same results.

    The detector's ``test_cfg`` holds ``max_per_image`` (default 100) and
    the optional ``score_thr`` (default 0: every kept pair, as stock).
    Instance inference only (``panoptic_on`` and ``semantic_on`` False).

    Args:
        **kwargs: Passed to :class:`MaskFormerFusionHead`.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        test_cfg = self.test_cfg or {}
        if test_cfg.get('panoptic_on', True) or test_cfg.get(
                'semantic_on', False) or not test_cfg.get(
                    'instance_on', False):
            raise ValueError(
                'LeanMaskFormerFusionHead does instance segmentation only: '
                'set model.test_cfg panoptic_on=False, semantic_on=False, '
                f'instance_on=True (got {dict(test_cfg)}); use '
                'MaskFormerFusionHead for panoptic or semantic output')
        max_per_image = test_cfg.get('max_per_image', 100)
        if isinstance(max_per_image, bool) or not isinstance(
                max_per_image, int) or max_per_image < 1:
            raise ValueError('model.test_cfg.max_per_image must be an '
                             f'integer >= 1, got {max_per_image!r}')
        score_thr = test_cfg.get('score_thr', 0.0)
        if not 0 <= score_thr < 1:
            raise ValueError('model.test_cfg.score_thr must be in [0, 1), '
                             f'got {score_thr!r}')

    def predict(self,
                mask_cls_results: Tensor,
                mask_pred_results: Tensor,
                batch_data_samples: SampleList,
                rescale: bool = False,
                **kwargs) -> List[dict]:
        """Instance results of a batch.

        Args:
            mask_cls_results (Tensor): Class logits (B, Q, C + 1).
            mask_pred_results (Tensor): Mask logits (B, Q, h, w) over the
                padded batch, at the head's resolution or upsampled.
            batch_data_samples (list[:obj:`DetDataSample`]): Their metainfo
                has ``batch_input_shape``, ``img_shape`` and ``ori_shape``.
            rescale (bool): Masks and boxes in the original image shape.

        Returns:
            list[dict]: ``{'ins_results': InstanceData}`` per image.
        """
        results = []
        for mask_cls, mask_pred, sample in zip(
                mask_cls_results, mask_pred_results, batch_data_samples):
            meta = sample.metainfo
            results.append(dict(ins_results=lean_instance_results(
                mask_cls, mask_pred, self.num_things_classes,
                batch_input_shape=meta['batch_input_shape'],
                img_shape=meta['img_shape'][:2],
                ori_shape=meta['ori_shape'][:2] if rescale else None,
                max_per_image=self.test_cfg.get('max_per_image', 100),
                score_thr=self.test_cfg.get('score_thr', 0.0))))
        return results


@contextlib.contextmanager
def score_floor(model: nn.Module, score_thr: float) -> Iterator[None]:
    """Within the block, ``model``'s lean fusion head drops detections
    scored under ``score_thr`` before resampling their masks.

    For consumers that discard them anyway (the pseudo-label filter): at a
    threshold of 0.3 a teacher resamples a few masks instead of all
    ``max_per_image``. Models without a :class:`LeanMaskFormerFusionHead`
    of their own (ensembles, box-prompted teachers) are left as they are.

    Args:
        model (nn.Module): A detector.
        score_thr (float): Detections under it are not resampled.
    """
    head = getattr(model, 'panoptic_fusion_head', None)
    if not isinstance(head, LeanMaskFormerFusionHead) or score_thr <= 0:
        yield
        return
    test_cfg = head.test_cfg
    head.test_cfg = dict(
        test_cfg, score_thr=max(test_cfg.get('score_thr', 0.0), score_thr))
    try:
        yield
    finally:
        head.test_cfg = test_cfg

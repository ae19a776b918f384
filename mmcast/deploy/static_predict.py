# Copyright (c) mmcast contributors. All rights reserved.
"""Mask2Former instance prediction as one static-shape tensor function.

:class:`StaticMask2FormerPredictor` maps a batch of decoded images, placed
top-left on a canvas of one fixed deployment size, to a fixed number of
instances per image. Everything between (normalisation and padding,
backbone, pixel decoder, masked-attention decoder, top-k selection, mask
scores, upsampling, binarisation and boxes) is tensor code with shapes
that depend on the batch size alone: no data-dependent Python branch, no
``.item()``, no ``nonzero``/``unique``/boolean indexing. So the whole
predict compiles as one graph (``torch.compile(fullgraph=True)``), can be
captured in a CUDA graph, exports with ``torch.export`` (AOTInductor) and
ONNX, and gives every image of a batch what it gives the image alone.
Two stock modules are switched for it: an MSDeformAttn pixel decoder
(MMDetection's, with MMCV's deformable attention) to one that takes its
level shapes as Python integers (:mod:`mmcast.deploy.static_deform_attn`),
and Swin's windowed attention to one that merges its windows back without
a float batch size (:mod:`mmcast.deploy.static_swin`).

Against the stock ``Mask2Former.predict`` (``LeanMaskFormerFusionHead``):

* the same (query, class) pairs: the top ``capacity`` class probabilities
  (``capacity = min(test_cfg.max_per_image, Q × C)``), always that many
  (a consumer drops low scores afterwards; ``score_thr`` is a host step);
* the padded input is the deployment size, not the batch's own padded
  size: an image smaller than it sees more padding (Mask2Former does not
  mask padding), so its logits differ from the stock model's unless it
  fills the canvas (or the stock model pads to the same size);
* masks are the kept queries' logits upsampled bilinearly (as stock) to the
  canvas in the network's precision and thresholded at 0, zeroed outside
  the image, and returned packed 8 pixels to a byte along the width
  (``mask_format='packed'``, the default: :mod:`.packed_masks`) or as
  bool (``'bool'``); boxes are the masks' on the canvas, from which rows
  and columns hold a pixel. The caller unpacks the instances it keeps,
  cropped to the image, and resizes them to the original shape
  (:func:`mmcast.deploy.finish_instances`);
* ``score_resolution='low'`` (the deployment default) scores a mask by the
  mean sigmoid of its positive pixels on the head's 1/4-resolution logits
  inside the image, not on the upsampled mask: the upsampling then runs for
  the kept masks only and after the scores. ``'input'`` scores the
  upsampled mask inside the image (stock's score when the original shape
  is the resized one).
"""
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.structures import InstanceData
from torch import Tensor, nn

from mmcast.structures import bboxes_of_extents, masks_to_bboxes
from .half_precision import cast_network
from .metadata import DeployError
from .packed_masks import (check_mask_format, pack_masks, packed_extents,
                           unpack_masks)
from .static_deform_attn import use_static_deform_attn
from .static_swin import use_static_swin

#: Names of :meth:`StaticMask2FormerPredictor.forward`'s inputs / outputs
#: (``mask_format='bool'``; ``'packed'`` names its masks ``packed_masks``).
STATIC_INPUTS = ('images', 'image_sizes')
STATIC_OUTPUTS = ('scores', 'labels', 'masks', 'boxes', 'left_out')
SCORE_RESOLUTIONS = ('low', 'input')


def plain_python_settings(model: nn.Module) -> nn.Module:
    """Turn NumPy scalars held by modules (mmpretrain's stochastic-depth
    rates, ``np.linspace`` values) into Python floats, in place: a
    compiler takes a NumPy scalar for a tensor, and a branch on it
    (``if drop_prob == 0.``) for data-dependent control flow."""
    for module in model.modules():
        for name, value in vars(module).items():
            if isinstance(value, np.generic):
                setattr(module, name, value.item())
    return model


def valid_region(image_sizes: Tensor, shape: Sequence[int],
                 canvas: Sequence[int]) -> Tensor:
    """Which cells of a ``shape`` (h, w) grid over the ``canvas`` (H, W) lie
    inside each image: a cell is in when its centre is.

    Args:
        image_sizes (Tensor): (B, 2) int (height, width) of each image.

    Returns:
        Tensor: bool (B, h, w).
    """
    device = image_sizes.device
    rows = (torch.arange(shape[0], device=device) + 0.5) * (
        canvas[0] / shape[0])
    cols = (torch.arange(shape[1], device=device) + 0.5) * (
        canvas[1] / shape[1])
    inside_rows = rows[None, :] < image_sizes[:, :1]  # (B, h)
    inside_cols = cols[None, :] < image_sizes[:, 1:]  # (B, w)
    return inside_rows[:, :, None] & inside_cols[:, None, :]


class StaticMask2FormerPredictor(nn.Module):
    """A Mask2Former's instance predict as a static-shape function.

    Args:
        detector (nn.Module): An mmdet ``Mask2Former`` (``CASTMask2Former``)
            with a ``Mask2FormerHead``, instance classes only. Used, not
            copied: cast it (:func:`cast_network`) before, if at all; its
            MSDeformAttn pixel decoders and Swin windowed attention are
            switched in place (module doc).
        input_size (Sequence[int]): The canvas (H, W), a multiple of the
            data preprocessor's ``pad_size_divisor``.
        capacity (int, optional): Instances kept per image; defaults to
            ``test_cfg.max_per_image`` (100 if unset), at most Q × C.
        score_resolution (str): ``'low'`` or ``'input'`` (module doc).
        mask_format (str): ``'packed'`` (uint8 (B, K, H, ceil(W / 8)),
            :mod:`.packed_masks`) or ``'bool'`` (B, K, H, W).

    Inputs of :meth:`forward`: ``images`` uint8 (B, H, W, 3) in the test
    pipeline's channel order (BGR), each resized image top-left and
    anything in the rest; ``image_sizes`` int64 (B, 2) their (h, w).
    """

    def __init__(self,
                 detector: nn.Module,
                 input_size: Sequence[int],
                 capacity: Optional[int] = None,
                 score_resolution: str = 'low',
                 mask_format: str = 'packed') -> None:
        super().__init__()
        num_queries = self.num_queries_of(detector)
        fusion = detector.panoptic_fusion_head
        if fusion.num_stuff_classes:
            raise DeployError('the static predictor does instance '
                              'segmentation only: num_stuff_classes must be '
                              f'0, got {fusion.num_stuff_classes}')
        if score_resolution not in SCORE_RESOLUTIONS:
            raise DeployError(f'score_resolution must be one of '
                              f'{SCORE_RESOLUTIONS}, got {score_resolution!r}')
        pre = detector.data_preprocessor
        divisor = max(1, int(getattr(pre, 'pad_size_divisor', 1)))
        self.input_size = tuple(int(s) for s in input_size)
        if len(self.input_size) != 2 or any(
                s <= 0 or s % divisor for s in self.input_size):
            raise DeployError(f'input_size={tuple(input_size)}: (H, W) must '
                              'be positive multiples of pad_size_divisor '
                              f'{divisor}')
        use_static_deform_attn(detector)
        use_static_swin(detector)
        self.detector = plain_python_settings(detector)
        self.num_classes = fusion.num_things_classes
        pairs = num_queries * self.num_classes
        if capacity is None:
            capacity = (detector.test_cfg or {}).get('max_per_image', 100)
        if isinstance(capacity, bool) or not isinstance(capacity, int) or \
                capacity < 1:
            raise DeployError(f'capacity must be an integer >= 1, got '
                              f'{capacity!r}')
        self.capacity = min(capacity, pairs)
        self.score_resolution = score_resolution
        self.mask_format = check_mask_format(mask_format,
                                             type(self).__name__)
        self.flip_channels = bool(getattr(pre, '_channel_conversion', False))
        normalize = bool(getattr(pre, '_enable_normalize', False))
        mean = pre.mean.detach().float().view(1, 3, 1, 1) if normalize \
            else torch.zeros(1, 3, 1, 1)
        std = pre.std.detach().float().view(1, 3, 1, 1) if normalize \
            else torch.ones(1, 3, 1, 1)
        self.register_buffer('mean', mean.clone(), persistent=False)
        self.register_buffer('std', std.clone(), persistent=False)
        self.pad_value = float(getattr(pre, 'pad_value', 0))

    @staticmethod
    def num_queries_of(detector: nn.Module) -> int:
        """The queries ``Q`` of a Mask2Former; raises :class:`DeployError`
        for a detector without ``panoptic_head`` / ``panoptic_fusion_head``
        (a subclass checks its own detector type)."""
        head = getattr(detector, 'panoptic_head', None)
        if head is None or not hasattr(head, 'num_queries') or getattr(
                detector, 'panoptic_fusion_head', None) is None:
            raise DeployError(f'{type(detector).__name__} is not a '
                              'Mask2Former (no panoptic_head / '
                              'panoptic_fusion_head)')
        return head.num_queries

    @property
    def dtype(self) -> torch.dtype:
        """The precision the network computes in (its first weight's)."""
        return next(self.detector.parameters()).dtype

    def preprocess(self, images: Tensor, image_sizes: Tensor) -> Tensor:
        """uint8 (B, H, W, 3) → the normalised network input (B, 3, H, W)
        in the network's precision, ``pad_value`` outside each image (the
        data preprocessor's normalise-then-pad)."""
        x = images.permute(0, 3, 1, 2).float()
        if self.flip_channels:
            x = x.flip(1)
        x = (x - self.mean) / self.std
        inside = valid_region(image_sizes, self.input_size, self.input_size)
        x = torch.where(inside[:, None], x, self.pad_value)
        return x.to(self.dtype)

    def network(self, inputs: Tensor) -> Tuple[Tensor, Tensor]:
        """Class logits (B, Q, C + 1) and mask logits (B, Q, h, w) of the
        last decoder layer."""
        feats = self.detector.extract_feat(inputs)
        cls_logits, mask_logits = self.detector.panoptic_head(feats, [])
        return cls_logits[-1], mask_logits[-1]

    def postprocess(self, cls_logits: Tensor, mask_logits: Tensor,
                    image_sizes: Tensor
                    ) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """The kept instances of each image (module doc): ``scores``
        (B, K) float32, ``labels`` (B, K) int64, ``masks`` on the canvas
        (``mask_format`` ``'packed'``: uint8 (B, K, H, ceil(W / 8));
        ``'bool'``: (B, K, H, W)) and their ``boxes`` (B, K, 4) float32;
        and
        ``left_out`` (B, Q) float32: for each query whose most probable
        class is an object and whose (query, class) pair the cap of K did
        not keep, that probability, else -1 (the objects the cap left out
        above a threshold t are ``(left_out >= t).sum(1)``, as
        :func:`~mmcast.models.seg_heads.lean_maskformer_fusion_head.
        count_over_cap` counts them)."""
        num_classes, canvas = self.num_classes, self.input_size
        all_probs = F.softmax(cls_logits.float(), dim=-1)
        probs = all_probs[..., :-1]
        top_probs, top_index = probs.flatten(1).topk(self.capacity, dim=1)
        left_out = self.left_out(all_probs, top_index)
        labels = top_index % num_classes
        queries = top_index // num_classes
        kept = torch.gather(
            mask_logits, 1, queries[:, :, None, None].expand(
                -1, -1, *mask_logits.shape[-2:]))  # (B, K, h, w)
        upsampled = F.interpolate(kept, size=canvas, mode='bilinear',
                                  align_corners=False)
        inside = valid_region(image_sizes, canvas, canvas)[:, None]
        if self.score_resolution == 'low':
            logits = kept
            positive = (kept > 0) & valid_region(
                image_sizes, kept.shape[-2:], canvas)[:, None]
        else:
            logits, positive = upsampled, (upsampled > 0) & inside
        inside_sigmoid = torch.where(positive, logits.float().sigmoid(), 0.)
        mask_scores = inside_sigmoid.sum(dim=(2, 3)) / (
            positive.sum(dim=(2, 3)) + 1e-6)
        scores = top_probs * mask_scores
        if self.mask_format == 'bool':
            masks = (upsampled > 0) & inside
            rows, cols = masks.any(dim=-1), masks.any(dim=-2)
        else:  # packed before the padding is cleared (a byte-wise and)
            masks = pack_masks(upsampled > 0) & pack_masks(inside)
            rows, cols = packed_extents(masks, canvas[1])
        boxes = bboxes_of_extents(rows, cols)
        return scores, labels, masks, boxes, left_out

    def left_out(self, probs: Tensor, top_index: Tensor) -> Tensor:
        """``probs`` (B, Q, C + 1), the kept pairs ``top_index`` (B, K) as
        flat ``q × C + c`` → ``left_out`` (B, Q) of :meth:`postprocess`."""
        num_queries, num_classes = probs.shape[1], self.num_classes
        best_prob, best = probs.max(dim=-1)
        kept = torch.zeros(probs.shape[0], num_queries * num_classes,
                           dtype=torch.bool, device=probs.device)
        kept = kept.scatter(1, top_index, True)
        pair = torch.arange(num_queries, device=probs.device) * num_classes \
            + best.clamp(max=num_classes - 1)
        missed = (best < num_classes) & ~torch.gather(kept, 1, pair)
        return torch.where(missed, best_prob, -1.)

    def forward(self, images: Tensor, image_sizes: Tensor
                ) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """``images`` uint8 (B, H, W, 3), ``image_sizes`` int64 (B, 2) →
        ``scores``, ``labels``, ``masks``, ``boxes``, ``left_out`` (see
        :meth:`postprocess`)."""
        cls_logits, mask_logits = self.network(
            self.preprocess(images, image_sizes))
        return self.postprocess(cls_logits, mask_logits, image_sizes)


#: Subclasses of :class:`StaticMask2FormerPredictor` for other detectors,
#: by the name of the detector's class or a base of it (e.g.
#: ``'EoMTStudent'``): :func:`build_static_predictor` builds them.
STATIC_PREDICTORS: Dict[str, type] = {}


def build_static_predictor(model: nn.Module,
                           input_size: Sequence[int],
                           dtype: Optional[torch.dtype] = None,
                           capacity: Optional[int] = None,
                           score_resolution: str = 'low',
                           mask_format: str = 'packed'
                           ) -> StaticMask2FormerPredictor:
    """A :class:`StaticMask2FormerPredictor` of ``model`` with its weights
    cast to ``dtype`` (:func:`cast_network`), in eval mode, on the model's
    device. ``dtype`` defaults to float16 on CUDA and bfloat16 on the CPU;
    masks are packed unless ``mask_format='bool'``; ``model`` itself is
    changed (cast), so pass a copy to keep it. The predictor is the model's
    in :data:`STATIC_PREDICTORS`, if any."""
    device = next(model.parameters()).device
    if dtype is None:
        dtype = torch.float16 if device.type == 'cuda' else torch.bfloat16
    cast_network(model.eval(), dtype)
    predictor_cls = next((STATIC_PREDICTORS[k.__name__]
                          for k in type(model).__mro__
                          if k.__name__ in STATIC_PREDICTORS),
                         StaticMask2FormerPredictor)
    return predictor_cls(
        model, input_size, capacity=capacity,
        score_resolution=score_resolution,
        mask_format=mask_format).to(device).eval()


def compile_predictor(predictor: nn.Module,
                      cuda_graph: bool = False) -> nn.Module:
    """``torch.compile`` the whole predict as one graph (``fullgraph``:
    any graph break is an error) for its fixed input size; with
    ``cuda_graph`` (CUDA only) inductor also captures it in a CUDA graph
    (``mode='reduce-overhead'``): then the outputs of a call are
    overwritten by the next call, so copy or consume them first."""
    return torch.compile(
        predictor, fullgraph=True, dynamic=False,
        mode='reduce-overhead' if cuda_graph else None)


def finish_instances(scores: Tensor, labels: Tensor, masks: Tensor,
                     img_shape: Sequence[int],
                     ori_shape: Optional[Sequence[int]] = None,
                     score_thr: float = 0.0,
                     boxes: Optional[Tensor] = None) -> InstanceData:
    """One image's static outputs as ``DetDataSample.pred_instances`` in
    the original image.

    Instances scored under ``score_thr`` are dropped; the masks of the
    others are unpacked (packed ones) and cropped to the resized image
    ``img_shape`` (h, w) and, when ``ori_shape`` differs, resized to it
    (bilinear on the binary mask, kept at >= 0.5: the stock head resizes
    the logits before binarising them); boxes are the masks'
    (:func:`mmcast.structures.masks_to_bboxes`): ``boxes`` of the graph
    where given and the masks are not resized, else computed.

    Args:
        scores (Tensor): (K, ) of :meth:`StaticMask2FormerPredictor.forward`
            for this image; ``labels`` (K, ), ``masks`` (uint8
            (K, H, ceil(W / 8)) packed, or bool (K, H, W)) and ``boxes``
            (K, 4) too.

    Returns:
        InstanceData: ``scores``, ``labels``, ``bboxes``, bool ``masks``.
    """
    keep = scores >= score_thr
    h, w = int(img_shape[0]), int(img_shape[1])
    if masks.dtype == torch.uint8:
        kept_masks = unpack_masks(masks[keep], h, w)
    else:
        kept_masks = masks[keep][:, :h, :w]
    rescale = ori_shape is not None and tuple(ori_shape[:2]) != (h, w)
    if rescale:
        kept_masks = F.interpolate(
            kept_masks[:, None].float(), size=tuple(ori_shape[:2]),
            mode='bilinear', align_corners=False,
            antialias=True)[:, 0] >= 0.5
    results = InstanceData()
    results.scores = scores[keep].float()
    results.labels = labels[keep].long()
    results.masks = kept_masks
    results.bboxes = masks_to_bboxes(kept_masks) if rescale or \
        boxes is None else boxes[keep].float()
    return results

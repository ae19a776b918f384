# Copyright (c) mmcast contributors. All rights reserved.
"""A concept-prompted VFM teacher: SAM 3 segments every instance of every
class from its names (one or more text prompts per class)."""
import contextlib
import copy
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmdet.models.detectors.base import BaseDetector
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from torch import Tensor

from .concept_prompt_loss import ConceptPromptLoss, resize_gt_masks
from .concept_prompt_merging import (build_class_prompts, check_tiling,
                                     class_thresholds, merge_views,
                                     tile_windows)
from .sam3_building import (build_sam3_image, check_bpe_file,
                            check_sam3_checkpoint, load_sam3_checkpoint,
                            released_to_image_state, sam3_arch)
from .utils import original_rgb_image, resolve_class_names, undo_preprocess

# SAM 3's own input normalisation (Sam3Processor: [0, 1] scaling, then mean =
# std = 0.5), in [0, 255] units; the teacher reads the original image anyway.
SAM3_DATA_PREPROCESSOR = dict(
    type='DetDataPreprocessor',
    mean=[127.5] * 3,
    std=[127.5] * 3,
    bgr_to_rgb=True)
DEFAULT_TRAINABLE = ('transformer.decoder', 'dot_prod_scoring',
                     'segmentation_head')
# units kept in eval mode while they hold no trainable parameter
_UNITS = ('backbone.vision_backbone', 'backbone.language_backbone',
          'geometry_encoder', 'transformer.encoder', 'transformer.decoder',
          'dot_prod_scoring', 'segmentation_head')
_SAM3_KEYS = ('arch', 'checkpoint', 'bpe_path', 'mask_threshold', 'autocast',
              'prompt_batch_size')


@MODELS.register_module()
class ConceptPromptedTeacher(BaseDetector):
    """SAM 3 prompted with class names, as an MMDetection detector.

    ``predict`` returns per image ``pred_instances`` with ``bboxes`` (N, 4),
    ``scores`` (N,), ``labels`` (N,) in the order of ``classes`` and
    ``masks`` (N, H, W) bool, on the input device; with ``rescale=True``
    in the original image's pixels (the image from ``image_source``), with
    ``rescale=False`` in the frame of the batch inputs (``img_shape``, the
    image taken from the inputs). Per batch the vision backbone runs once
    over all images (tiles), the text encoder never after the first batch
    (the prompts' embeddings are cached); the (image, prompt) pairs go
    through SAM 3's fusion encoder/decoder ``prompt_batch_size`` at a time.
    Scores are ``sigmoid(logit) * sigmoid(presence)`` as SAM 3's processor.

    ``loss`` (stage-1 adaptation and self-training) trains the modules in
    ``trainable`` with :class:`ConceptPromptLoss`. Default: the DETR-style
    decoder (with its presence token and box head), the dot-product scoring
    and the segmentation head; the vision and text encoders, the geometry
    encoder and the fusion encoder stay frozen (and in eval mode) because
    they carry SAM 3's open-vocabulary grounding and are the bulk of its
    1.6 GB, and a few thousand labelled images would mostly let them forget.

    Args:
        sam3 (dict): ``bpe_path`` (the CLIP BPE vocabulary), ``checkpoint``
            (local ``sam3.pt``; ``None`` = random init, tests only),
            ``arch`` (overrides of ``SAM3_ARCH``), ``mask_threshold`` (mask
            logit threshold, default 0.0 = probability 0.5),
            ``autocast`` (``'bfloat16'``/``'float16'`` on CUDA, default
            ``None``), ``prompt_batch_size`` ((image, prompt) pairs per
            fusion forward, default 16).
        classes (str | Sequence[str]): class names in label order, or a
            dataset registered in mmdet.
        class_prompts (dict, optional): class name -> list of prompts; a
            class's instances are the union over its prompts. Classes not
            listed are prompted with their name ('_' as a space).
        score_thr (float | dict): score threshold, or one per class name
            (all classes).
        nms_iou_thr (float): cross-class (class-agnostic) mask NMS IoU; the
            higher-scored instance is kept. ``1.0`` disables it.
        max_per_img (int): at most this many instances per image.
        tiling (dict, optional): ``tile_size`` (square tile side in pixels,
            0 = the image's short side), ``overlap`` (fraction of the side,
            default 0.25), ``merge_iou_thr`` (mask IoU inside the band two
            tiles share above which two same-class instances are one object
            cut by a border, default 0.5).
        trainable (Sequence[str]): ``Sam3Image`` submodule names trained by
            ``loss``. Defaults to :data:`DEFAULT_TRAINABLE`.
        train_cfg (dict, optional): ``assigner`` and ``losses`` of
            :class:`ConceptPromptLoss`.
        image_source (str): ``'file'``, ``'inputs'`` or ``'auto'`` as in
            :class:`BoxPromptedTeacher` (for ``rescale=True``).
        backend_args (dict, optional): file backend for ``'file'``.
        data_preprocessor (dict, optional): defaults to a
            ``DetDataPreprocessor`` with SAM 3's normalisation.
    """

    def __init__(self,
                 sam3: dict,
                 classes: Union[str, Sequence[str]],
                 class_prompts: Optional[Dict[str, List[str]]] = None,
                 score_thr: Union[float, Dict[str, float]] = 0.5,
                 nms_iou_thr: float = 0.7,
                 max_per_img: int = 100,
                 tiling: Optional[dict] = None,
                 trainable: Sequence[str] = DEFAULT_TRAINABLE,
                 train_cfg: Optional[dict] = None,
                 image_source: str = 'auto',
                 backend_args: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        sam3 = dict(sam3)
        unknown = sorted(set(sam3) - set(_SAM3_KEYS))
        if unknown:
            raise TypeError(f'unknown sam3 options {unknown}; valid are '
                            f'{list(_SAM3_KEYS)}')
        check_bpe_file(sam3.get('bpe_path'))
        if sam3.get('checkpoint') is not None:
            check_sam3_checkpoint(sam3['checkpoint'])
        if data_preprocessor is None:
            data_preprocessor = copy.deepcopy(SAM3_DATA_PREPROCESSOR)
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.classes = resolve_class_names(classes)
        self.dataset_meta = dict(classes=self.classes)
        self.prompts, self.prompt_labels = build_class_prompts(
            self.classes, class_prompts)
        self.register_buffer(
            'class_thrs', class_thresholds(self.classes, score_thr), False)
        self.nms_iou_thr = float(nms_iou_thr)
        self.max_per_img = int(max_per_img)
        self.tiling = check_tiling(tiling)
        if image_source not in ('auto', 'file', 'inputs'):
            raise ValueError(f'unknown image_source {image_source!r}')
        self.image_source = image_source
        self.backend_args = backend_args

        self.mask_threshold = float(sam3.get('mask_threshold', 0.0))
        self.autocast = sam3.get('autocast')
        self.prompt_batch_size = int(sam3.get('prompt_batch_size', 16))
        self.sam3_model = build_sam3_image(sam3.get('arch'), sam3['bpe_path'])
        if sam3.get('checkpoint') is not None:
            load_sam3_checkpoint(self.sam3_model, sam3['checkpoint'])
        self.image_size = int(sam3_arch(sam3.get('arch'))['image_size'])
        self.trainable = tuple(trainable)
        self._freeze(self.trainable)
        self.concept_loss = ConceptPromptLoss(**(train_cfg or {}))
        self._text_cache: Optional[dict] = None
        self.register_load_state_dict_pre_hook(
            lambda module, *args: module._accept_released_layout(*args))

    # ------------------------------------------------------------------
    # configuration
    def _freeze(self, trainable: Sequence[str]) -> None:
        names = [n for n, _ in self.sam3_model.named_parameters()]
        for prefix in trainable:
            if not any(n.startswith(prefix + '.') for n in names):
                raise ValueError(f'trainable entry {prefix!r} names no '
                                 'parameters of the SAM 3 model')
        for name, param in self.sam3_model.named_parameters():
            param.requires_grad_(
                any(name.startswith(p + '.') for p in trainable))

    def _unit_trains(self, unit: str) -> bool:
        module = self.sam3_model.get_submodule(unit)
        return any(p.requires_grad for p in module.parameters())

    def train(self, mode: bool = True):
        """Frozen units (no trainable parameter) always stay in eval mode."""
        super().train(mode)
        for unit in _UNITS:
            if not self._unit_trains(unit):
                self.sam3_model.get_submodule(unit).eval()
        return self

    def _apply(self, fn, *args, **kwargs):
        """Drop SAM 3's device-bound caches when the model moves."""
        super()._apply(fn, *args, **kwargs)
        self._text_cache = None
        for module in self.sam3_model.modules():
            if hasattr(module, '_device'):
                module._device = None
            if isinstance(getattr(module, 'cache', None), dict):
                module.cache = {}
            if hasattr(module, 'coord_cache'):
                module.coord_cache = {}
                module.compilable_cord_cache = None
                module.compilable_stored_size = None
        return self

    def _accept_released_layout(self, state_dict, prefix, *args) -> None:
        """Let a released SAM 3 file (``{'model': {'detector.*': ...}}``)
        load into the teacher; its tracker keys are dropped."""
        self._text_cache = None
        nested = state_dict.get(prefix + 'model')
        if isinstance(nested, dict):
            state_dict.pop(prefix + 'model')
            state_dict.update({prefix + k: v for k, v in nested.items()})
        released = [k for k in state_dict if k.startswith(prefix + 'detector.')
                    or k.startswith(prefix + 'tracker.')]
        if not released:
            return
        raw = {k[len(prefix):]: state_dict.pop(k) for k in released}
        image_state, _ = released_to_image_state(raw)
        for key, value in image_state.items():
            state_dict[prefix + 'sam3_model.' + key] = value

    # ------------------------------------------------------------------
    # SAM 3 forward pieces
    def _autocast(self, device: torch.device):
        """``sam3.autocast`` on CUDA; otherwise whatever autocast state the
        caller runs under (e.g. the AMP of a training step), unchanged."""
        if self.autocast is None or device.type != 'cuda':
            return contextlib.nullcontext()
        return torch.autocast('cuda', dtype=getattr(torch, self.autocast))

    def sam3_views(self, images: List[Tensor]) -> Tensor:
        """RGB images (3, h, w) in [0, 255] -> SAM 3 input (V, 3, S, S):
        square resize, ``(x / 255 - 0.5) / 0.5``."""
        size = self.image_size
        batch = [
            F.interpolate(
                img[None].float(), (size, size),
                mode='bilinear',
                align_corners=False,
                antialias=True) for img in images
        ]
        return torch.cat(batch) / 127.5 - 1.0

    def text_features(self, device: torch.device) -> dict:
        """Text features of all prompts (cached while the text encoder is
        frozen): ``language_features`` (L, P, d), ``language_mask`` (P, L),
        ``language_embeds``."""
        trains = self.training and self._unit_trains(
            'backbone.language_backbone')
        if not trains and self._text_cache is not None:
            return self._text_cache
        with torch.set_grad_enabled(trains and torch.is_grad_enabled()):
            feats = self.sam3_model.backbone.forward_text(
                self.prompts, device=device)
        if not trains:
            self._text_cache = feats
        return feats

    def ground(self, backbone_out: dict, img_ids: Tensor,
               text_ids: Tensor) -> dict:
        """SAM 3's ``forward_grounding`` for (image, prompt) pairs, without
        its training-time matcher; frozen stages run without autograd.

        Returns:
            dict: ``pred_logits`` (B, Q, 1), ``pred_boxes_xyxy`` (B, Q, 4)
            normalised, ``pred_masks`` (B, Q, h, w) logits,
            ``presence_logit_dec`` (B, 1) for the B pairs.
        """
        from sam3.model.data_misc import FindStage
        model = self.sam3_model
        find = FindStage(
            img_ids=img_ids,
            text_ids=text_ids,
            input_boxes=None,
            input_boxes_mask=None,
            input_boxes_label=None,
            input_points=None,
            input_points_mask=None)
        grad = torch.is_grad_enabled()
        front = any(
            self._unit_trains(u)
            for u in ('geometry_encoder', 'transformer.encoder'))
        with torch.set_grad_enabled(grad and front):
            prompt, prompt_mask, backbone_out = model._encode_prompt(
                backbone_out, find, model._get_dummy_prompt(len(img_ids)))
            backbone_out, encoder_out, _ = model._run_encoder(
                backbone_out, find, prompt, prompt_mask)
        out = {'encoder_hidden_states': encoder_out['encoder_hidden_states']}
        out, hs = model._run_decoder(
            memory=out['encoder_hidden_states'],
            pos_embed=encoder_out['pos_embed'],
            src_mask=encoder_out['padding_mask'],
            out=out,
            prompt=prompt,
            prompt_mask=prompt_mask,
            encoder_out=encoder_out)
        model._run_segmentation_heads(
            out=out,
            backbone_out=backbone_out,
            img_ids=img_ids,
            vis_feat_sizes=encoder_out['vis_feat_sizes'],
            encoder_hidden_states=out['encoder_hidden_states'],
            prompt=prompt,
            prompt_mask=prompt_mask,
            hs=hs)
        return out

    # ------------------------------------------------------------------
    # BaseDetector API
    def extract_feat(self, batch_inputs: Tensor) -> dict:
        """SAM 3's vision features of the (unpadded, RGB) batch images."""
        images = undo_preprocess(
            batch_inputs, self.data_preprocessor,
            [batch_inputs.shape[-2:]] * len(batch_inputs))
        images = [self._to_rgb(img) for img in images]
        return self.sam3_model.backbone.forward_image(self.sam3_views(images))

    def _forward(self, batch_inputs: Tensor, batch_data_samples=None):
        raise NotImplementedError(
            'ConceptPromptedTeacher has no tensor mode; use predict().')

    def _to_rgb(self, img: Tensor) -> Tensor:
        """Undone preprocessing gives the loader's channel order (BGR)."""
        return img.flip(0)

    def _input_images(self, batch_inputs: Tensor,
                      samples: SampleList) -> List[Tensor]:
        shapes = [s.metainfo['img_shape'][:2] for s in samples]
        return [
            self._to_rgb(img) for img in undo_preprocess(
                batch_inputs, self.data_preprocessor, shapes)
        ]

    def loss(self, batch_inputs: Tensor,
             batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """Supervised losses of every (image, class prompt) pair (see
        :class:`ConceptPromptLoss`); ground truth in the inputs' frame."""
        device = batch_inputs.device
        images = self._input_images(batch_inputs, batch_data_samples)
        with torch.set_grad_enabled(
                self._unit_trains('backbone.vision_backbone')):
            vision = self.sam3_model.backbone.forward_image(
                self.sam3_views(images))
        backbone_out = dict(vision, **self.text_features(device))
        num_p = len(self.prompts)
        img_ids = torch.arange(
            len(images), device=device).repeat_interleave(num_p)
        text_ids = torch.arange(num_p, device=device).repeat(len(images))
        with self._autocast(device):
            out = self.ground(backbone_out, img_ids, text_ids)
        masks = out['pred_masks'].float()
        gt_boxes, gt_masks = [], []
        for i, sample in enumerate(batch_data_samples):
            boxes, mask_t = self._gt_targets(sample, masks.shape[-2:])
            for label in self.prompt_labels:
                sel = sample.gt_instances.labels.to(device) == label
                gt_boxes.append(boxes[sel])
                gt_masks.append(mask_t[sel] if mask_t is not None else None)
        return self.concept_loss(out['pred_logits'][..., 0].float(),
                                 out['pred_boxes_xyxy'].float(), masks,
                                 out['presence_logit_dec'][:, 0].float(),
                                 gt_boxes, gt_masks)

    def _gt_targets(self, sample,
                    mask_hw) -> Tuple[Tensor, Optional[Tensor]]:
        """Normalised xyxy GT boxes and GT masks at ``mask_hw``."""
        gt = sample.gt_instances
        h, w = sample.metainfo['img_shape'][:2]
        device = self.class_thrs.device
        boxes = gt.bboxes
        boxes = getattr(boxes, 'tensor', boxes).to(device).float()
        boxes = boxes / boxes.new_tensor([w, h, w, h])
        if 'masks' not in gt:
            return boxes.clamp(0, 1), None
        masks = gt.masks
        if hasattr(masks, 'to_tensor'):
            masks = masks.to_tensor(torch.float, device)
        masks = torch.as_tensor(masks, device=device)[:, :h, :w]
        return boxes.clamp(0, 1), resize_gt_masks(masks, tuple(mask_hw))

    @torch.no_grad()
    def predict(self,
                batch_inputs: Tensor,
                batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        """Segment every class in every image (see the class docstring)."""
        device = batch_inputs.device
        if rescale:
            images = [
                torch.from_numpy(
                    original_rgb_image(ds, batch_inputs[i],
                                       self.data_preprocessor,
                                       self.image_source,
                                       self.backend_args)).to(device).permute(
                                           2, 0, 1)
                for i, ds in enumerate(batch_data_samples)
            ]
        else:
            images = self._input_images(batch_inputs, batch_data_samples)
        tiles = [self._tiles(img.shape[-2:]) for img in images]
        views = [
            img[:, y0:y1, x0:x1] for img, img_tiles in zip(images, tiles)
            for x0, y0, x1, y1 in img_tiles
        ]
        with self._autocast(device):
            vision = self.sam3_model.backbone.forward_image(
                self.sam3_views(views))
        backbone_out = dict(vision, **self.text_features(device))
        per_view = self._detect_views(backbone_out, len(views))
        start = 0
        for img, img_tiles, ds in zip(images, tiles, batch_data_samples):
            dets = per_view[start:start + len(img_tiles)]
            start += len(img_tiles)
            ds.pred_instances = merge_views(
                dets, img_tiles, img.shape[-2:], self.class_thrs,
                self.mask_threshold, self.nms_iou_thr, self.max_per_img,
                (self.tiling or {}).get('merge_iou_thr', 0.5))
        return batch_data_samples

    def _tiles(self, hw) -> List[Tuple[int, int, int, int]]:
        h, w = int(hw[0]), int(hw[1])
        if self.tiling is None:
            return [(0, 0, w, h)]
        return tile_windows(h, w, self.tiling['tile_size'],
                            self.tiling['overlap'])

    def _detect_views(self, backbone_out: dict, num_views: int) -> List[dict]:
        """Threshold every (view, prompt) pair's queries per class.

        Returns:
            list[dict]: per view ``scores``, ``labels``, ``boxes``
            (normalised xyxy) and ``masks`` (mask logits).
        """
        device = backbone_out['vision_features'].device
        num_p = len(self.prompts)
        labels = torch.tensor(self.prompt_labels, device=device)
        pairs_v = torch.arange(num_views, device=device).repeat_interleave(
            num_p)
        pairs_p = torch.arange(num_p, device=device).repeat(num_views)
        found = [[] for _ in range(num_views)]
        for s in range(0, len(pairs_v), self.prompt_batch_size):
            v = pairs_v[s:s + self.prompt_batch_size]
            p = pairs_p[s:s + self.prompt_batch_size]
            with self._autocast(device):
                out = self.ground(backbone_out, v, p)
            scores = out['pred_logits'][..., 0].float().sigmoid() * \
                out['presence_logit_dec'].float().sigmoid()
            keep = scores > self.class_thrs[labels[p]][:, None]
            for k, (vi, pi) in enumerate(zip(v.tolist(), p.tolist())):
                q = torch.nonzero(keep[k]).flatten()
                found[vi].append(
                    dict(
                        scores=scores[k, q],
                        labels=labels[pi].repeat(len(q)),
                        boxes=out['pred_boxes_xyxy'][k, q].float(),
                        masks=out['pred_masks'][k, q].float()))
        return [{
            key: torch.cat([d[key] for d in dets])
            for key in dets[0]
        } for dets in found]

# Copyright (c) mmcast contributors. All rights reserved.
"""A box-prompted VFM teacher: any MMDet detector proposes boxes, SAM 2
turns every box into a mask.

The paper's teacher is MM-Grounding-DINO Swin-L prompted with the dataset's
class names (" . "-joined, score threshold 0.3) followed by SAM 2.1 Hiera-L
with one box prompt per detection and ``multimask_output=False``; only the
Grounding-DINO is adapted (stage 1), SAM 2 is used as released. A SAM 2
without such weights (the toy's tiny one) is first trained class-agnostically
on ground-truth boxes (``sam2_trainable``, :class:`SAM2BoxPromptLoss`).
"""
import copy
import os.path as osp
import warnings
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmdet.models.detectors.base import BaseDetector
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample, SampleList
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData
from torch import Tensor

from .sam2_box_prompt_loss import SAM2BoxPromptLoss
from .sam2_builder import build_sam2_model
from .sam2_prompting import (SAM2_IMAGE_PARTS, decode_box_prompts,
                             sam2_image_features, sam2_input)
from .utils import (BERT_HINT, DETECTOR_HINT, SAM2_HINT, build_label_mapping,
                    check_local_dir, check_local_file, load_model_cfg,
                    original_rgb_image, remap_instances, resolve_class_names,
                    undo_preprocess)

_DETECTOR_META_KEYS = ('text', 'custom_entities', 'tokens_positive',
                       'caption_prompt', 'token_positive_map')


def find_language_model_name(cfg) -> Optional[str]:
    """The ``language_model.name`` of a detector config, if it has one."""
    lm = cfg.get('language_model') if hasattr(cfg, 'get') else None
    if lm is None:
        return None
    return lm.get('name')


@MODELS.register_module()
class BoxPromptedTeacher(BaseDetector):
    """Detector boxes -> SAM 2 masks, as an MMDetection detector.

    Training (``loss``) trains the detector part only (SAM 2 is frozen), so
    the stage-1 adaptation can run on this model directly; a plain detector
    config (``adapt_grounding_dino_cityscapes.py``) works as well. With
    ``sam2_trainable`` (the toy's pre-training of a randomly initialised
    SAM 2, standing in for SAM 2's own), the named SAM 2 parts learn too,
    class-agnostically: every ground-truth box is a prompt whose mask is
    supervised by :class:`SAM2BoxPromptLoss`.

    ``predict`` returns, per image, ``pred_instances`` with ``bboxes``
    (N, 4) and ``scores`` (N,) from the detector (boxes in the original
    image's pixels), ``labels`` (N,) in the order of ``classes`` and
    ``masks`` (N, H, W) bool at the original image resolution: one SAM 2
    mask per box (box prompt, ``multimask_output=False``).

    Args:
        detector (dict | str): config of any MMDetection detector, or the
            path of a config file (``mmdet::...`` allowed) whose ``model``
            is used, modified by ``detector_cfg_options``. For
            ``GroundingDINO`` the text prompt is set to ``detector_classes``
            (``custom_entities=True``: the names joined by ". "); its
            ``language_model.name`` must be a local folder.
        sam2 (dict): ``config_file`` (a config of the ``sam2`` package such
            as ``'configs/sam2.1/sam2.1_hiera_l.yaml'`` or a yaml path),
            ``checkpoint`` (local ``.pt``; ``None`` = random init, tests
            only), optional ``hydra_overrides`` (list of str),
            ``apply_postprocessing`` (bool, default True, as the official
            builder), ``mask_threshold`` (logit threshold, default 0.0),
            ``box_batch_size`` (boxes decoded at once, default 64) and
            ``autocast`` (``'bfloat16'``/``'float16'`` on CUDA, default
            ``None``).
        classes (str | Sequence[str]): the dataset's class names in label
            order, or a dataset name registered in mmdet (e.g.
            ``'CityscapesDataset'``) whose ``METAINFO['classes']`` is used.
        detector_classes (Sequence[str], optional): the names of the
            detector's label ids (for GroundingDINO: the prompt). Defaults to
            the keys of ``class_name_map`` if given, else ``classes``.
        class_name_map (dict, optional): detector class name -> dataset
            class name; detector classes absent from it are dropped.
        detector_checkpoint (str, optional): weights loaded into the
            detector only (e.g. the stage-1 adapted Grounding-DINO).
        detector_cfg_options (dict, optional): merged into the detector
            config (e.g. ``{'language_model.name': 'checkpoints/bert'}``).
        score_thr (float): detections with a lower score are dropped before
            SAM 2 runs. Defaults to 0.3 (the paper's).
        max_per_img (int): keep at most this many detections (by score).
        image_source (str): where SAM 2's image comes from: ``'file'``
            (``img_path``, full resolution), ``'inputs'`` (undo the detector's
            preprocessing of the batch) or ``'auto'`` (file if it exists).
        backend_args (dict, optional): file backend for ``'file'``.
        sam2_trainable (Sequence[str]): ``SAM2Base`` submodules trained by
            ``loss`` (of ``'image_encoder'``, ``'sam_prompt_encoder'``,
            ``'sam_mask_decoder'``); empty (the default): SAM 2 is frozen.
        sam2_loss (dict, optional): arguments of
            :class:`SAM2BoxPromptLoss` (``losses``, ``box_noise``); only
            with ``sam2_trainable``.
        data_preprocessor (dict, optional): defaults to the detector's.
    """

    def __init__(self,
                 detector: Union[dict, ConfigDict, str],
                 sam2: dict,
                 classes: Union[str, Sequence[str]],
                 detector_classes: Optional[Sequence[str]] = None,
                 class_name_map: Optional[Dict[str, str]] = None,
                 detector_checkpoint: Optional[str] = None,
                 detector_cfg_options: Optional[dict] = None,
                 score_thr: float = 0.3,
                 max_per_img: int = 100,
                 image_source: str = 'auto',
                 backend_args: Optional[dict] = None,
                 sam2_trainable: Sequence[str] = (),
                 sam2_loss: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        detector = load_model_cfg(detector, detector_cfg_options)
        sam2 = dict(sam2)
        # fail early, before anything heavy is built, on missing local files
        lm_name = find_language_model_name(detector)
        if lm_name is not None:
            check_local_dir(lm_name, 'text encoder (BERT) of the detector',
                            BERT_HINT)
        if sam2.get('checkpoint') is not None:
            check_local_file(sam2['checkpoint'], 'SAM 2 checkpoint',
                             SAM2_HINT, name=osp.basename(sam2['checkpoint']))
        if detector_checkpoint is not None:
            check_local_file(detector_checkpoint, 'detector checkpoint',
                             DETECTOR_HINT)
        if data_preprocessor is None:
            data_preprocessor = copy.deepcopy(
                detector.get('data_preprocessor', None))
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.classes = resolve_class_names(classes)
        if detector_classes is None:
            detector_classes = (
                list(class_name_map) if class_name_map is not None else
                self.classes)
        self.detector_classes = resolve_class_names(detector_classes)
        self.class_name_map = (
            dict(class_name_map) if class_name_map is not None else None)
        self.label_mapping = build_label_mapping(
            self.detector_classes, self.classes, self.class_name_map)
        if all(i < 0 for i in self.label_mapping):
            raise ValueError(
                f'no detector class ({list(self.detector_classes)}) maps to '
                f'a dataset class ({list(self.classes)})')
        self.dataset_meta = dict(classes=self.classes)
        self.score_thr = score_thr
        self.max_per_img = max_per_img
        if image_source not in ('auto', 'file', 'inputs'):
            raise ValueError(f'unknown image_source {image_source!r}')
        self.image_source = image_source
        self.backend_args = backend_args

        # ---- detector ---------------------------------------------------
        self.detector = MODELS.build(detector)
        self.text_prompted = hasattr(self.detector, 'language_model')
        if detector_checkpoint is not None:
            from mmengine.runner import load_checkpoint
            load_checkpoint(
                self.detector, detector_checkpoint, map_location='cpu')
            self.detector._is_init = True
        self.detector_checkpoint = detector_checkpoint

        # ---- SAM 2 -------------------------------------------------------
        self.mask_threshold = float(sam2.pop('mask_threshold', 0.0))
        self.box_batch_size = int(sam2.pop('box_batch_size', 64))
        self.autocast = sam2.pop('autocast', None)
        self.sam2_model = build_sam2_model(
            sam2.pop('config_file'),
            checkpoint=sam2.pop('checkpoint', None),
            hydra_overrides=sam2.pop('hydra_overrides', ()),
            apply_postprocessing=sam2.pop('apply_postprocessing', True))
        if sam2:
            raise TypeError(f'unknown sam2 options: {sorted(sam2)}')
        self.sam2_model.eval()
        self.sam2_trainable = self._unfreeze_sam2(sam2_trainable)
        if sam2_loss is not None and not self.sam2_trainable:
            raise ValueError('sam2_loss is given but SAM 2 is frozen (no '
                             'sam2_trainable parts)')
        self.sam2_loss = (
            SAM2BoxPromptLoss(**(sam2_loss or {}))
            if self.sam2_trainable else None)
        if hasattr(self, 'register_load_state_dict_pre_hook'):  # torch>=2.4
            self.register_load_state_dict_pre_hook(
                lambda module, *args: module._accept_detector_only(*args))
        else:  # pragma: no cover
            self._register_load_state_dict_pre_hook(
                self._accept_detector_only)

    def _unfreeze_sam2(self, trainable: Sequence[str]) -> tuple:
        """Freeze SAM 2 but for the ``trainable`` parts (checked names)."""
        trainable = tuple(trainable)
        unknown = sorted(set(trainable) - set(SAM2_IMAGE_PARTS))
        if unknown:
            raise ValueError(f'sam2_trainable: unknown SAM 2 parts {unknown}; '
                             f'known: {list(SAM2_IMAGE_PARTS)}')
        self.sam2_model.requires_grad_(False)
        for name in trainable:
            getattr(self.sam2_model, name).requires_grad_(True)
        return trainable

    # ------------------------------------------------------------------
    # checkpoints
    def _accept_detector_only(self, state_dict, prefix, *args) -> None:
        """Let a plain detector checkpoint load into the teacher.

        A state dict without ``detector.`` keys is taken for the detector's
        own (e.g. the zoo's Grounding-DINO weights, or the stage-1 adapted
        one) and re-keyed; SAM 2 weights missing from the checkpoint keep
        their current values (from ``sam2.checkpoint``).
        """
        det_prefix = prefix + 'detector.'
        sam_prefix = prefix + 'sam2_model.'
        own = [k for k in state_dict if k.startswith(prefix)]
        if own and not any(k.startswith(det_prefix) for k in own):
            for k in own:
                if not k.startswith(sam_prefix):
                    state_dict[det_prefix + k[len(prefix):]] = \
                        state_dict.pop(k)
        if not any(k.startswith(sam_prefix) for k in state_dict):
            for k, v in self.sam2_model.state_dict().items():
                state_dict[sam_prefix + k] = v

    def train(self, mode: bool = True):
        """SAM 2 always stays in eval mode (frozen, or trained without
        dropout and batch statistics either way)."""
        super().train(mode)
        self.sam2_model.eval()
        return self

    # ------------------------------------------------------------------
    # BaseDetector API
    def extract_feat(self, batch_inputs: Tensor):
        return self.detector.extract_feat(batch_inputs)

    def loss(self, batch_inputs: Tensor, batch_data_samples: SampleList):
        """Train the detector part on boxes (stage-1 adaptation).

        SAM 2 stays frozen unless ``sam2_trainable``. Ground-truth labels
        (dataset order) are mapped to the detector's label ids; instances of
        dataset classes that no detector class maps to are dropped. A
        text-prompted detector gets the same prompt as in :meth:`predict`.
        With ``sam2_trainable``, :class:`SAM2BoxPromptLoss` of every
        ground-truth instance is added (all classes: SAM 2 is
        class-agnostic).
        """
        inverse = {}
        for det_label, ds_label in enumerate(self.label_mapping):
            if ds_label >= 0:
                inverse.setdefault(ds_label, det_label)
        table = [inverse.get(i, -1) for i in range(len(self.classes))]
        det_samples = []
        for ds in batch_data_samples:
            sample = DetDataSample(metainfo=self._detector_meta(ds))
            gt = remap_instances(ds.gt_instances, table)
            sample.gt_instances = gt
            if 'ignored_instances' in ds:
                sample.ignored_instances = ds.ignored_instances
            det_samples.append(sample)
        losses = self.detector.loss(batch_inputs, det_samples)
        if self.sam2_loss is not None:
            losses.update(self._sam2_losses(batch_inputs, batch_data_samples))
        return losses

    def _sam2_losses(self, batch_inputs: Tensor,
                     batch_data_samples: SampleList) -> dict:
        """:class:`SAM2BoxPromptLoss` on the training views of the batch."""
        shapes = [ds.metainfo['img_shape'][:2] for ds in batch_data_samples]
        # the detector's preprocessing undone: loader (BGR) order -> RGB
        images = [
            img.flip(0) for img in undo_preprocess(
                batch_inputs, self.data_preprocessor, shapes)
        ]
        boxes, masks = [], []
        for ds, (h, w) in zip(batch_data_samples, shapes):
            gt = ds.gt_instances
            boxes.append(gt.bboxes)
            masks.append(
                gt.masks.to_tensor(torch.bool, batch_inputs.device)[
                    :, :int(h), :int(w)])
        return self.sam2_loss(self.sam2_model, images, boxes, masks)

    def _detector_meta(self, data_sample) -> dict:
        meta = {
            k: v
            for k, v in data_sample.metainfo.items()
            if k not in _DETECTOR_META_KEYS
        }
        if self.text_prompted:
            meta['text'] = tuple(self.detector_classes)
            meta['custom_entities'] = True
        return meta

    def _forward(self, batch_inputs: Tensor, batch_data_samples=None):
        raise NotImplementedError(
            'BoxPromptedTeacher has no tensor mode; use predict().')

    @torch.no_grad()
    def predict(self,
                batch_inputs: Tensor,
                batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        """Detect, relabel to the dataset's classes, segment with SAM 2.

        ``batch_inputs`` is the detector's preprocessed batch. Outputs are
        always at the original image resolution (``rescale`` is accepted
        for API compatibility; ``False`` is not supported).
        """
        if not rescale:
            warnings.warn('BoxPromptedTeacher always returns results at the '
                          'original image resolution (rescale=True).')
        det_samples = [
            DetDataSample(metainfo=self._detector_meta(ds))
            for ds in batch_data_samples
        ]
        test_cfg = getattr(self.detector, 'test_cfg', None) or {}
        if self.text_prompted and test_cfg.get('chunked_size', -1) > 0 \
                and len(det_samples) > 1:
            # mmdet's chunked prompts (long class lists) run one image at a
            # time
            det_samples = [
                self.detector.predict(
                    batch_inputs[i:i + 1], [ds], rescale=True)[0]
                for i, ds in enumerate(det_samples)
            ]
        else:
            det_samples = self.detector.predict(
                batch_inputs, det_samples, rescale=True)

        results, images = [], {}
        for i, (ds, det) in enumerate(zip(batch_data_samples, det_samples)):
            dets = det.pred_instances
            inst = InstanceData(
                bboxes=dets.bboxes.float(),
                scores=dets.scores.float(),
                labels=dets.labels.long())
            inst = remap_instances(inst, self.label_mapping)
            inst = inst[inst.scores > self.score_thr]
            if len(inst) > self.max_per_img:
                inst = inst[inst.scores.topk(self.max_per_img).indices]
            ori_h, ori_w = ds.metainfo['ori_shape'][:2]
            inst.bboxes[:, 0::2] = inst.bboxes[:, 0::2].clamp(0, ori_w)
            inst.bboxes[:, 1::2] = inst.bboxes[:, 1::2].clamp(0, ori_h)
            if len(inst) > 0:
                images[i] = original_rgb_image(ds, batch_inputs[i],
                                               self.data_preprocessor,
                                               self.image_source,
                                               self.backend_args)
            results.append(inst)

        if images:  # one SAM 2 encoder call, the boxes decoded together
            masks = self.segment_boxes(
                self.embed_images(list(images.values())),
                [image.shape[:2] for image in images.values()],
                [results[i].bboxes for i in images])
            for i, image_masks in zip(images, masks):
                results[i].masks = image_masks
        for i, (ds, inst) in enumerate(zip(batch_data_samples, results)):
            if i not in images:
                ori_h, ori_w = ds.metainfo['ori_shape'][:2]
                inst.masks = torch.zeros((0, ori_h, ori_w),
                                         dtype=torch.bool,
                                         device=batch_inputs.device)
            ds.pred_instances = inst
        return batch_data_samples

    # ------------------------------------------------------------------
    # SAM 2
    @property
    def sam2_image_size(self) -> int:
        return int(self.sam2_model.image_size)

    def _autocast(self, device: torch.device):
        if self.autocast is None or device.type != 'cuda':
            return torch.autocast(device.type, enabled=False)
        return torch.autocast('cuda', dtype=getattr(torch, self.autocast))

    @torch.no_grad()
    def embed_images(self, images: List[np.ndarray]) -> dict:
        """SAM 2 image features of RGB uint8 images (H, W, 3), batched
        (:func:`sam2_input`, :func:`sam2_image_features`)."""
        device = next(self.sam2_model.parameters()).device
        x = sam2_input([
            torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(
                2, 0, 1) for image in images
        ], self.sam2_image_size)
        with self._autocast(device):
            return sam2_image_features(self.sam2_model, x)

    @torch.no_grad()
    def segment_boxes(self, feats: dict, ori_hws: Sequence[Tuple[int, int]],
                      bboxes: Sequence[Tensor]) -> List[Tensor]:
        """One SAM 2 mask per box of each image -> (N_i, H_i, W_i) bool.

        The boxes of all images are decoded together, ``box_batch_size`` at
        a time (one mask-decoder call for a batch's boxes up to that many),
        each on its own image's features: an image gets the masks it gets
        alone, bit for bit on a CPU.

        Args:
            feats: :meth:`embed_images` output of the B images.
            ori_hws: (H, W) of each original image.
            bboxes: (N_i, 4) xyxy boxes of each image in its original
                pixels.
        """
        size = self.sam2_image_size
        device = feats['image_embed'].device
        prompts, owners = [], []
        for i, ((h, w), boxes) in enumerate(zip(ori_hws, bboxes)):
            scale = torch.tensor([w, h, w, h], dtype=torch.float,
                                 device=device)
            prompts.append(boxes.to(device).float() / scale * size)
            owners.append(torch.full((len(boxes), ), i, device=device))
        prompts, owners = torch.cat(prompts), torch.cat(owners)
        low_res = []
        for start in range(0, len(prompts), self.box_batch_size):
            chunk = slice(start, start + self.box_batch_size)
            with self._autocast(device):
                logits, _ = decode_box_prompts(
                    self.sam2_model, feats, prompts[chunk],
                    image_index=owners[chunk])
            low_res.append(logits.float())
        low_res = torch.cat(low_res).split([len(b) for b in bboxes])
        return [(F.interpolate(logits, (h, w), mode='bilinear',
                               align_corners=False)[:, 0] >
                 self.mask_threshold).to(boxes.device)
                for logits, (h, w), boxes in zip(low_res, ori_hws, bboxes)]

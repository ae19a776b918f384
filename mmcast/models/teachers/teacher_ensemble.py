# Copyright (c) mmcast contributors. All rights reserved.
"""An ensemble of instance-segmentation teachers with mask-level fusion."""
import copy
import json
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmdet.models.detectors.base import BaseDetector
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample, SampleList
from mmdet.structures.mask import mask2bbox
from mmengine.structures import InstanceData
from torch import Tensor, nn

from mmcast.utils.checkpoint_loading import checkpoint_classes

from .frozen_teacher import REVISE_KEYS
from .utils import (DETECTOR_HINT, build_label_mapping, check_local_file,
                    load_model_cfg, remap_instances, resolve_class_names,
                    undo_preprocess)

FUSION_TYPES = ('mask_nms', 'weighted')
SCORE_AGGREGATIONS = ('mean', 'max', 'vote')


def mask_iou(masks_a: Tensor, masks_b: Tensor,
             chunk: int = 1 << 18) -> Tensor:
    """Pairwise IoU of binary masks (Na, H, W) x (Nb, H, W) -> (Na, Nb).

    Pixels are processed in chunks so that full-resolution masks of many
    instances fit in memory.
    """
    a = masks_a.flatten(1)
    b = masks_b.flatten(1)
    inter = a.new_zeros((a.shape[0], b.shape[0]), dtype=torch.float32)
    for s in range(0, a.shape[1], chunk):
        inter += a[:, s:s + chunk].float() @ b[:, s:s + chunk].float().T
    area_a = a.sum(1, dtype=torch.float32)
    area_b = b.sum(1, dtype=torch.float32)
    union = area_a[:, None] + area_b[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1),
                       torch.zeros_like(inter))


def _empty_like(instances: Sequence[InstanceData]) -> InstanceData:
    ref = instances[0] if instances else None
    if ref is None:
        raise ValueError('fuse_instances needs at least one InstanceData')
    h, w = ref.masks.shape[-2:]
    device = ref.masks.device
    return InstanceData(
        bboxes=torch.zeros((0, 4), device=device),
        scores=torch.zeros((0, ), device=device),
        labels=torch.zeros((0, ), dtype=torch.long, device=device),
        masks=torch.zeros((0, h, w), dtype=torch.bool, device=device))


def fuse_instances(instances: Sequence[InstanceData],
                   type: str = 'mask_nms',
                   iou_thr: float = 0.5,
                   score_agg: str = 'mean',
                   mask_thr: float = 0.5,
                   max_per_img: Optional[int] = None,
                   views_per_label: Optional[Dict[int, int]] = None
                   ) -> InstanceData:
    """Fuse the instance predictions of several models for ONE image.

    All inputs must already share the label space (the dataset's) and the
    image resolution; each has ``bboxes`` (N, 4), ``scores`` (N,),
    ``labels`` (N,) and ``masks`` (N, H, W) bool.

    Two instances are duplicates when they have the same label and a mask
    IoU >= ``iou_thr``. Instances are visited by decreasing score; each one
    not yet taken seeds a cluster with every untaken same-label instance
    whose mask IoU with the seed is >= ``iou_thr``. Instances without a
    duplicate are kept unchanged.

    * ``type='mask_nms'``: a cluster is replaced by its seed (the highest
      score), i.e. class-wise mask NMS over the union of all predictions.
    * ``type='weighted'``: a cluster is replaced by one instance whose mask
      is the score-weighted average of the members' masks thresholded at
      ``mask_thr`` (0.5: a pixel is kept when members holding more than half
      of the cluster's score mass cover it), whose score is the members'
      ``score_agg`` (``'mean'``, default, or ``'max'``), and whose box is
      the tight box of the fused mask (the seed's box if that mask is
      empty). ``score_agg='vote'`` treats the inputs as views of one model
      (test-time augmentation): an instance's score is the sum over the
      views of the best member score the view gives it, divided by the
      number of views, so an instance that only one of two views sees
      keeps half its score (a singleton, too). ``views_per_label``
      (label -> the number of inputs that can predict it; others: all)
      divides by the views that can name the class instead, so a class
      only one member of an ensemble knows keeps its score.

    Returns:
        InstanceData: fused instances sorted by decreasing score (at most
        ``max_per_img`` if given).
    """
    if type not in FUSION_TYPES:
        raise ValueError(f'fusion type must be one of {FUSION_TYPES}, '
                         f'got {type!r}')
    if score_agg not in SCORE_AGGREGATIONS:
        raise ValueError(f'score_agg must be one of {SCORE_AGGREGATIONS}, '
                         f'got {score_agg!r}')
    instances = [i for i in instances if i is not None]
    num_views = len(instances)
    views = [k for k, i in enumerate(instances) if len(i) > 0]
    non_empty = [i for i in instances if len(i) > 0]
    if not non_empty:
        return _empty_like(instances)
    shapes = {tuple(i.masks.shape[-2:]) for i in non_empty}
    if len(shapes) != 1:
        raise ValueError(f'instances have masks of different sizes {shapes}')
    device = non_empty[0].masks.device
    bboxes = torch.cat([i.bboxes.float().to(device) for i in non_empty])
    scores = torch.cat([i.scores.float().to(device) for i in non_empty])
    labels = torch.cat([i.labels.long().to(device) for i in non_empty])
    masks = torch.cat([i.masks.bool().to(device) for i in non_empty])
    view_of = torch.cat([
        torch.full((len(i), ), k, device=device)
        for k, i in zip(views, non_empty)
    ])

    out_boxes, out_scores, out_labels, out_masks = [], [], [], []
    for label in labels.unique().tolist():
        idx = torch.nonzero(labels == label).flatten()
        idx = idx[scores[idx].argsort(descending=True, stable=True)]
        dup = (mask_iou(masks[idx], masks[idx]) >= iou_thr).cpu().numpy()
        np.fill_diagonal(dup, True)  # also for empty masks (IoU 0)
        taken = np.zeros(len(idx), dtype=bool)
        for s in range(len(idx)):
            if taken[s]:
                continue
            members = np.nonzero(dup[s] & ~taken)[0]
            taken[members] = True
            seed = idx[s]
            m_idx = idx[torch.from_numpy(members).to(device)]
            w = scores[m_idx]
            out_labels.append(labels[seed])
            if score_agg == 'vote':
                score = sum(w[view_of[m_idx] == v].max()
                            for v in view_of[m_idx].unique()) / (
                                (views_per_label or {}).get(label, num_views))
            else:
                score = w.mean() if score_agg == 'mean' else w.max()
            if type == 'mask_nms' or len(members) == 1:
                out_boxes.append(bboxes[seed])
                out_scores.append(score if score_agg == 'vote' else
                                  scores[seed])
                out_masks.append(masks[seed])
                continue
            fused = (masks[m_idx].float() * w[:, None, None]).sum(0)
            fused = fused / w.sum().clamp(min=1e-12) >= mask_thr
            out_masks.append(fused)
            out_scores.append(score)
            if fused.any():
                out_boxes.append(mask2bbox(fused[None])[0].to(bboxes))
            else:
                out_boxes.append(bboxes[seed])
    result = InstanceData(
        bboxes=torch.stack(out_boxes),
        scores=torch.stack(out_scores),
        labels=torch.stack(out_labels),
        masks=torch.stack(out_masks))
    order = result.scores.argsort(descending=True, stable=True)
    if max_per_img is not None:
        order = order[:max_per_img]
    return result[order]


@MODELS.register_module()
class TeacherEnsemble(BaseDetector):
    """Several teachers predicting together, fused per image.

    Every member is an MMDet model satisfying the teacher interface
    (``pred_instances`` with ``masks``/``labels``/``scores``/``bboxes`` at
    the original resolution). Its labels are mapped to the dataset's
    classes by name, then duplicates across members are fused by
    :func:`fuse_instances`.

    Args:
        teachers (list[dict | nn.Module]): one entry per member: a built
            teacher (e.g. :func:`build_frozen_teacher`'s, which predicts in
            the label order of its ``teacher_classes``), a model config (it
            must already predict in the dataset's label order) or a dict
            with the keys
            ``model`` (model config) or ``config`` (path of a config file,
            ``mmdet::`` / ``mmcast`` paths allowed, whose ``model`` is used;
            ``cfg_options`` (dict) is merged into it),
            ``checkpoint`` (local weights, optional; a stage-1b
            ``CASTDistiller`` checkpoint is read as its student's),
            ``classes`` (the member's class names in label order; defaults
            to the checkpoint's ``meta.dataset_meta.classes`` or the
            member's ``dataset_meta``/``classes`` attribute),
            ``class_name_map`` (member name -> dataset name; classes not in
            the map are dropped; ``None`` keeps classes whose names match).
        classes (str | Sequence[str], optional): the dataset's class names
            (or a registered dataset name, see ``BoxPromptedTeacher``).
            None: every member already predicts in one label order.
        fusion (dict): ``type`` ('mask_nms' or 'weighted') and the other
            arguments of :func:`fuse_instances` (``iou_thr``, ``score_agg``,
            ``mask_thr``, ``max_per_img``).
        data_preprocessor (dict, optional): used for ``predict`` calls with
            an already preprocessed batch; defaults to the first member's.
            ``test_step``/``val_step`` run every member's own preprocessor
            on the raw batch instead.
    """

    def __init__(self,
                 teachers: List[Union[dict, nn.Module]],
                 classes: Union[str, Sequence[str], None],
                 fusion: dict = dict(type='mask_nms', iou_thr=0.5),
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if not teachers:
            raise ValueError('TeacherEnsemble needs at least one teacher')
        specs = [self._parse_member(t) for t in teachers]
        for spec in specs:  # fail early, before building anything
            if spec['checkpoint'] is not None:
                check_local_file(spec['checkpoint'], 'teacher checkpoint',
                                 DETECTOR_HINT)
        if data_preprocessor is None:
            first = specs[0]['built'] or specs[0]['model']
            data_preprocessor = copy.deepcopy(
                first.data_preprocessor if isinstance(first, nn.Module)
                else first.get('data_preprocessor', None))
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.classes = None if classes is None else \
            resolve_class_names(classes)
        self.dataset_meta = None if classes is None else \
            dict(classes=self.classes)
        fusion = dict(fusion)
        if fusion.get('type', 'mask_nms') not in FUSION_TYPES:
            raise ValueError(f'fusion type must be one of {FUSION_TYPES}')
        self.fusion = fusion
        self.teachers = nn.ModuleList()
        self.label_mappings = []
        for spec in specs:
            member, meta_classes = spec['built'], None
            if member is None:
                member = MODELS.build(spec['model'])
                if spec['checkpoint'] is not None:
                    from mmengine.runner import load_checkpoint
                    ckpt = load_checkpoint(
                        member, spec['checkpoint'], map_location='cpu',
                        revise_keys=REVISE_KEYS)
                    meta_classes = checkpoint_classes(ckpt)
                    member._is_init = True
            self.teachers.append(member)
            self.label_mappings.append(
                self._label_mapping(member, spec, meta_classes))
        self.views_per_label = self._views_per_label()

    def _label_mapping(self, member: nn.Module, spec: dict,
                       meta_classes: Optional[Sequence[str]]
                       ) -> Optional[List[int]]:
        """The member's label -> dataset label (None: the same order)."""
        member_classes = spec['classes'] or meta_classes or getattr(
            member, 'teacher_classes', None) or getattr(
                member, 'classes', None) or (getattr(
                    member, 'dataset_meta', None) or {}).get('classes')
        if self.classes is None or member_classes is None:
            if spec['class_name_map'] is not None:
                raise ValueError(
                    'a class_name_map needs the member\'s and the '
                    'dataset\'s class names: give `classes` to both')
            return None  # already in the dataset's order
        mapping = build_label_mapping(
            resolve_class_names(member_classes), self.classes,
            spec['class_name_map'])
        if all(i < 0 for i in mapping):
            raise ValueError(
                f'no class of member {len(self.teachers)} '
                f'({list(member_classes)}) maps to a dataset class')
        return mapping

    def _views_per_label(self) -> Optional[Dict[int, int]]:
        """Dataset label -> how many members can predict it (None: every
        member predicts every class); the denominator of the ``'vote'``
        score."""
        if all(m is None for m in self.label_mappings):
            return None
        return {
            label: sum(m is None or label in m for m in self.label_mappings)
            for label in range(len(self.classes))
        }

    @staticmethod
    def _parse_member(entry: Union[dict, nn.Module]) -> dict:
        spec = dict(built=None, model=None, checkpoint=None, classes=None,
                    class_name_map=None)
        if isinstance(entry, nn.Module):
            return dict(spec, built=entry)
        entry = copy.deepcopy(dict(entry))
        if 'model' not in entry and 'config' not in entry:
            return dict(spec, model=load_model_cfg(entry))
        if 'config' in entry and 'model' in entry:
            raise ValueError('give `model` or `config`, not both')
        spec.update(
            model=load_model_cfg(
                entry.pop('config') if 'config' in entry else
                entry.pop('model'), entry.pop('cfg_options', None)),
            checkpoint=entry.pop('checkpoint', None),
            classes=entry.pop('classes', None),
            class_name_map=entry.pop('class_name_map', None))
        if entry:
            raise TypeError(f'unknown teacher entry keys: {sorted(entry)}')
        return spec

    @property
    def labeling_identity(self) -> str:
        """What, beside its weights, makes its pseudo-labels: the fusion
        (in the pseudo-label header, so that another fusion labels anew)."""
        return 'fusion=' + json.dumps(self.fusion, sort_keys=True)

    # ------------------------------------------------------------------
    def extract_feat(self, batch_inputs: Tensor):
        raise NotImplementedError('TeacherEnsemble has no single feature map')

    def loss(self, batch_inputs: Tensor, batch_data_samples: SampleList):
        raise NotImplementedError('TeacherEnsemble is inference-only')

    def _forward(self, batch_inputs: Tensor, batch_data_samples=None):
        raise NotImplementedError('TeacherEnsemble has no tensor mode')

    def _fuse(self, member_outputs: List[SampleList],
              batch_data_samples: SampleList) -> SampleList:
        for i, ds in enumerate(batch_data_samples):
            per_member = [
                remap_instances(outs[i].pred_instances, mapping)
                for outs, mapping in zip(member_outputs, self.label_mappings)
            ]
            ds.pred_instances = fuse_instances(
                per_member,
                views_per_label=self.views_per_label,
                **self.fusion)
        return batch_data_samples

    @staticmethod
    def _fresh_samples(batch_data_samples: SampleList) -> SampleList:
        return [
            DetDataSample(metainfo=copy.deepcopy(ds.metainfo))
            for ds in batch_data_samples
        ]

    @torch.no_grad()
    def test_step(self, data: Union[dict, tuple, list]) -> list:
        """Every member preprocesses the raw batch itself, then fuse."""
        outputs = []
        for member in self.teachers:
            member_data = dict(data)
            member_data['data_samples'] = self._fresh_samples(
                data['data_samples'])
            outputs.append(member.test_step(member_data))
        return self._fuse(outputs, list(data['data_samples']))

    val_step = test_step

    @torch.no_grad()
    def predict(self,
                batch_inputs: Tensor,
                batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        """Run on a batch preprocessed by the ensemble's preprocessor.

        The batch is un-normalised and re-preprocessed by every member's own
        data preprocessor (mean/std, channel order, padding).
        """
        raw = undo_preprocess(batch_inputs, self.data_preprocessor,
                              [ds.img_shape[:2] for ds in batch_data_samples])
        outputs = []
        for member in self.teachers:
            samples = self._fresh_samples(batch_data_samples)
            data = member.data_preprocessor(
                dict(inputs=list(raw), data_samples=samples), False)
            outputs.append(
                member.predict(data['inputs'], data['data_samples'],
                               rescale=rescale))
        return self._fuse(outputs, batch_data_samples)

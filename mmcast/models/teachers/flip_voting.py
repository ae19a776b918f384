# Copyright (c) mmcast contributors. All rights reserved.
"""Test-time augmentation for the offline pseudo-labels: mirror voting.

The teacher labels every unlabeled image twice, as it is and mirrored
left-right; the mirrored prediction is flipped back and the two are fused
by mask voting (:func:`~mmcast.models.teachers.teacher_ensemble.
fuse_instances` with ``type='weighted'``, ``score_agg='vote'``): an
instance both views find gets the mean of their masks (thresholded at
``mask_thr``) and of their scores; one only a single view finds keeps half
its score, so a score threshold drops view-inconsistent instances first.

MMDetection's own ``DetTTAModel`` merges boxes only (it refuses masks),
hence this small wrapper around any teacher with the labeler's
``test_step`` interface (:func:`~mmcast.pseudo_labels.label_unlabeled_set`).
"""
import copy
from typing import List, Union

import torch
from mmdet.structures import DetDataSample
from mmdet.structures.mask import mask2bbox
from mmengine.structures import InstanceData
from torch import Tensor, nn

from .teacher_ensemble import fuse_instances

#: Appended to the ``teacher`` of a pseudo-label header made with mirror
#: voting, so that turning it on or off relabels.
FLIP_VOTING_MARK = ' + flip voting'


def mirror_instances(instances: InstanceData, width: int) -> InstanceData:
    """Instances predicted on a mirrored image, flipped back.

    Args:
        instances (InstanceData): ``masks`` (N, H, W) and ``bboxes`` (N, 4)
            (x1, y1, x2, y2) at the original resolution, width ``width``.
        width (int): The image width W.
    """
    out = instances.clone()
    out.masks = instances.masks.flip(-1)
    boxes = instances.bboxes.clone()
    boxes[:, 0], boxes[:, 2] = width - instances.bboxes[:, 2], \
        width - instances.bboxes[:, 0]
    out.bboxes = boxes
    return out


def binary_with_boxes(instances: InstanceData,
                      mask_thr: float = 0.5) -> InstanceData:
    """``instances`` with bool masks (float ones binarised at > ``mask_thr``,
    as the pseudo-label filter does) and ``bboxes`` (from the masks when
    the teacher gives none), which :func:`fuse_instances` needs."""
    out = instances.clone()
    if out.masks.dtype != torch.bool:
        out.masks = out.masks > mask_thr
    if 'bboxes' not in out:
        out.bboxes = mask2bbox(out.masks).float()
    return out


def _mirror_inputs(inputs: Union[Tensor, List[Tensor]]):
    """The batch's raw images (each ``(C, H, W)``) mirrored left-right."""
    if isinstance(inputs, Tensor):
        return inputs.flip(-1)
    return [img.flip(-1) for img in inputs]


class FlipVotingTTA(nn.Module):
    """A teacher that labels each image and its mirror image, fused.

    Args:
        teacher (nn.Module): The teacher (``test_step(data)`` on raw,
            unpadded images gives ``pred_instances`` with ``masks``,
            ``bboxes``, ``labels``, ``scores`` at the original resolution).
        iou_thr (float): Same-label instances of the two views with a mask
            IoU at least this are one instance. Defaults to 0.5.
        mask_thr (float): The fused mask keeps the pixels holding more than
            this share of the views' score mass. Defaults to 0.5.
    """

    def __init__(self,
                 teacher: nn.Module,
                 iou_thr: float = 0.5,
                 mask_thr: float = 0.5) -> None:
        super().__init__()
        self.teacher = teacher
        self.iou_thr = iou_thr
        self.mask_thr = mask_thr

    @property
    def dataset_meta(self):
        """The teacher's dataset meta (class names)."""
        return getattr(self.teacher, 'dataset_meta', None)

    @staticmethod
    def _fresh(samples: List[DetDataSample]) -> List[DetDataSample]:
        return [DetDataSample(metainfo=copy.deepcopy(ds.metainfo))
                for ds in samples]

    @torch.no_grad()
    def test_step(self, data: dict) -> List[DetDataSample]:
        """Predict on the batch and on its mirror image; fuse per image."""
        samples = list(data['data_samples'])
        plain = self.teacher.test_step(
            dict(data, data_samples=self._fresh(samples)))
        mirrored = self.teacher.test_step(
            dict(data, inputs=_mirror_inputs(data['inputs']),
                 data_samples=self._fresh(samples)))
        for ds, a, b in zip(samples, plain, mirrored):
            width = int(ds.ori_shape[1])
            ds.pred_instances = fuse_instances(
                [binary_with_boxes(a.pred_instances),
                 mirror_instances(binary_with_boxes(b.pred_instances),
                                  width)],
                type='weighted', iou_thr=self.iou_thr, score_agg='vote',
                mask_thr=self.mask_thr)
        return samples

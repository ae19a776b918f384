# Copyright (c) mmcast contributors. All rights reserved.
"""Mask2Former's set-prediction losses without Mask2Former's decoder."""
from typing import List, Optional, Tuple

from mmdet.models.dense_heads.base_dense_head import BaseDenseHead
from mmdet.registry import MODELS, TASK_UTILS
from mmdet.structures import SampleList
from mmdet.utils import ConfigType, InstanceList

from .fp32_loss_mask2former_head import FP32LossMask2FormerHead


@MODELS.register_module()
class Mask2FormerCriterion(FP32LossMask2FormerHead):
    """The loss machinery of :class:`FP32LossMask2FormerHead` alone.

    For query-based segmenters whose class and mask logits come from
    elsewhere (e.g. :class:`EoMTStudent`): the Hungarian matching on sampled
    points (``train_cfg.assigner``, ``train_cfg.sampler``), ``loss_cls``,
    the point-sampled ``loss_mask`` and ``loss_dice`` of every supervised
    prediction (``loss_by_feat``; float32 under AMP), and the ground-truth
    preprocessing (``preprocess_gt``) are the Mask2Former head's methods;
    no pixel decoder, transformer decoder or query is built, so the module
    holds no parameter.

    Args:
        num_things_classes (int): Thing classes.
        num_stuff_classes (int): Stuff classes.
        num_queries (int): Queries per image.
        loss_cls (dict): Classification loss (softmax over
            ``num_classes + 1``, with ``class_weight``).
        loss_mask (dict): Point-sampled binary cross-entropy.
        loss_dice (dict): Point-sampled dice loss.
        train_cfg (dict): ``assigner``, ``sampler``, ``num_points``,
            ``oversample_ratio`` and ``importance_sample_ratio`` as
            Mask2Former's.
    """

    def __init__(self,
                 num_things_classes: int,
                 num_stuff_classes: int,
                 num_queries: int,
                 loss_cls: ConfigType,
                 loss_mask: ConfigType,
                 loss_dice: ConfigType,
                 train_cfg: ConfigType,
                 init_cfg: Optional[dict] = None) -> None:
        BaseDenseHead.__init__(self, init_cfg=init_cfg)
        self.num_things_classes = num_things_classes
        self.num_stuff_classes = num_stuff_classes
        self.num_classes = num_things_classes + num_stuff_classes
        self.num_queries = num_queries
        self.train_cfg = train_cfg
        self.test_cfg = None
        self.assigner = TASK_UTILS.build(train_cfg['assigner'])
        self.sampler = TASK_UTILS.build(
            train_cfg['sampler'], default_args=dict(context=self))
        self.num_points = train_cfg.get('num_points', 12544)
        self.oversample_ratio = train_cfg.get('oversample_ratio', 3.0)
        self.importance_sample_ratio = train_cfg.get(
            'importance_sample_ratio', 0.75)
        self.class_weight = loss_cls.get('class_weight', None)
        self.loss_cls = MODELS.build(loss_cls)
        self.loss_mask = MODELS.build(loss_mask)
        self.loss_dice = MODELS.build(loss_dice)

    def init_weights(self) -> None:
        """Nothing to initialise."""

    def targets(self, batch_data_samples: SampleList
                ) -> Tuple[InstanceList, List[dict]]:
        """Ground truth and metainfo of a batch, as ``loss_by_feat`` reads
        them.

        Args:
            batch_data_samples (list[:obj:`DetDataSample`]): With
                ``gt_instances`` (``labels``, ``masks`` padded to
                ``batch_input_shape``) and optionally ``gt_sem_seg``.

        Returns:
            tuple[list[InstanceData], list[dict]]: Per image, ``labels``
            (n,) and ``masks`` (n, H, W) tensors; per image, its metainfo.
        """
        metas = [sample.metainfo for sample in batch_data_samples]
        gt_instances = [sample.gt_instances for sample in batch_data_samples]
        gt_sem_segs = [sample.get('gt_sem_seg', None)
                       for sample in batch_data_samples]
        return self.preprocess_gt(gt_instances, gt_sem_segs), metas

    def forward(self, *args, **kwargs) -> None:
        """Not a network: use ``loss_by_feat``."""
        raise NotImplementedError(
            'Mask2FormerCriterion computes losses only (loss_by_feat)')

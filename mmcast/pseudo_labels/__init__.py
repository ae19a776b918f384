# Copyright (c) mmcast contributors. All rights reserved.
"""Offline pseudo-labels: the unlabeled set from a teacher config, the COCO
file, the filter, the (distributed) labeller, staleness, quality, and the
job that keeps a stage's file current. No model is built here: the teacher
comes in."""
from .coco_pseudo_labels import (HEADER_KEY, IDENTITY_KEYS, SKIPPED_IMAGE_KEY,
                                 instances_to_coco_annotations, read_header,
                                 read_info, write_pseudo_label_json)
from .filtering import (DEFAULT_FILTER_CFG, PseudoLabelFilter, build_filter,
                        check_filter_cfg, masks_to_bboxes)
from .guided_distillation_rule import (DEFAULT_GUIDED_RULE_CFG,
                                       check_guided_rule_cfg,
                                       guided_distillation_pseudo_labels)
from .label_shards import merge_pseudo_label_shards, shard_path
from .labeler import label_unlabeled_set
from .labeling_dataset import (DEFAULT_MAX_UNREADABLE, UnreadableImagesError,
                               build_labeling_dataset, check_images_exist,
                               check_unreadable)
from .labeling_job import LabelingTeacherLike, OfflineLabelingJob
from .labeling_settings import AUTO, LabelingSettings
from .quality import DEFAULT_SCORE_THRS, pseudo_label_quality
from .staleness import (checkpoint_sha256, identity, is_current, make_header,
                        stale_reason, state_dict_sha256)
from .unlabeled_set_cfg import default_img_prefix, split_of, unlabeled_set_cfg
from .visualization import save_pseudo_label_overlays

__all__ = [
    'PseudoLabelFilter', 'build_filter', 'check_filter_cfg',
    'DEFAULT_FILTER_CFG', 'masks_to_bboxes', 'DEFAULT_GUIDED_RULE_CFG',
    'check_guided_rule_cfg', 'guided_distillation_pseudo_labels',
    'instances_to_coco_annotations', 'write_pseudo_label_json',
    'make_header', 'identity', 'is_current', 'read_header', 'read_info',
    'stale_reason', 'checkpoint_sha256', 'state_dict_sha256', 'HEADER_KEY',
    'IDENTITY_KEYS', 'SKIPPED_IMAGE_KEY', 'label_unlabeled_set',
    'merge_pseudo_label_shards', 'shard_path', 'DEFAULT_MAX_UNREADABLE',
    'UnreadableImagesError', 'check_unreadable', 'check_images_exist',
    'build_labeling_dataset', 'save_pseudo_label_overlays',
    'OfflineLabelingJob', 'LabelingTeacherLike', 'LabelingSettings', 'AUTO',
    'DEFAULT_SCORE_THRS', 'pseudo_label_quality', 'unlabeled_set_cfg',
    'default_img_prefix', 'split_of'
]

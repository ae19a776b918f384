# Copyright (c) mmcast contributors. All rights reserved.
"""Offline pseudo-labels: filter, COCO writer, (distributed) labeler."""
from .coco_pseudo_labels import (HEADER_KEY, IDENTITY_KEYS, SKIPPED_IMAGE_KEY,
                                 checkpoint_sha256, file_sha256, identity,
                                 instances_to_coco_annotations, is_current,
                                 make_header, read_header, read_info,
                                 stale_reason, state_dict_sha256,
                                 write_pseudo_label_json)
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
from .visualization import save_pseudo_label_overlays

__all__ = [
    'PseudoLabelFilter', 'build_filter', 'check_filter_cfg',
    'DEFAULT_FILTER_CFG', 'masks_to_bboxes', 'DEFAULT_GUIDED_RULE_CFG',
    'check_guided_rule_cfg', 'guided_distillation_pseudo_labels', 'instances_to_coco_annotations',
    'write_pseudo_label_json', 'make_header', 'identity', 'is_current',
    'read_header', 'read_info', 'stale_reason', 'file_sha256',
    'checkpoint_sha256', 'state_dict_sha256', 'HEADER_KEY', 'IDENTITY_KEYS', 'SKIPPED_IMAGE_KEY',
    'label_unlabeled_set', 'merge_pseudo_label_shards', 'shard_path',
    'DEFAULT_MAX_UNREADABLE', 'UnreadableImagesError', 'check_unreadable',
    'check_images_exist',
    'build_labeling_dataset', 'save_pseudo_label_overlays'
]

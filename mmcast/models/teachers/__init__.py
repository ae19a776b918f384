# Copyright (c) mmcast contributors. All rights reserved.
from .box_prompted_teacher import BoxPromptedTeacher
from .flip_voting import FlipVotingTTA, mirror_instances
from .frozen_teacher import build_frozen_teacher, checkpoint_classes
from .sam2_builder import build_sam2_model
from .sam2_box_prompt_loss import SAM2BoxPromptLoss
from .sam3_teacher import ConceptPromptedTeacher
from .teacher_ensemble import TeacherEnsemble, fuse_instances

__all__ = [
    'BoxPromptedTeacher', 'ConceptPromptedTeacher', 'TeacherEnsemble',
    'SAM2BoxPromptLoss', 'build_sam2_model', 'build_frozen_teacher',
    'checkpoint_classes', 'fuse_instances', 'FlipVotingTTA',
    'mirror_instances'
]

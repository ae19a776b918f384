# Copyright (c) mmcast contributors. All rights reserved.
"""Build a frozen teacher from a config and a checkpoint (or several: an
ensemble of the same teacher at each, fused by :class:`TeacherEnsemble`)."""
import copy
import os.path as osp
from typing import Optional, Sequence, Union

from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner.checkpoint import _load_checkpoint_to_model
from mmengine.utils import import_modules_from_strings
from mmdet.registry import MODELS
from mmdet.utils import ConfigType
from torch import nn

from mmcast.utils.checkpoint_loading import (check_weights_fit,
                                             checkpoint_classes,
                                             load_checkpoint_file)
from mmcast.utils.work_dir_checkpoint import resolve_checkpoint
from .utils import load_model_cfg

# CASTDistiller checkpoints hold the teacher as the student; DDP's prefix.
REVISE_KEYS = [(r'^student\.', ''), (r'^module\.', '')]
# How the predictions of one teacher at several checkpoints are fused: the
# same class and mask IoU >= 0.5 make one instance with the score-weighted
# mask average; its score is the mean over the checkpoints of each one's
# best score for it ('vote': one that misses it counts 0). A cluster's plain
# mean would count a Mask2Former's low-scored duplicate queries: on the toy
# D_l (θ_T' + θ_T'', seeds 0 and 1) it kept recall 0.61 / 0.65 at 0.3,
# 'vote' 0.82 / 0.86 at precision 0.82 / 0.79.
CHECKPOINT_ENSEMBLE_FUSION = dict(type='weighted', iou_thr=0.5,
                                  score_agg='vote')


def build_frozen_teacher(config: Union[ConfigType, str],
                         checkpoint: Union[str, Sequence[str], None] = None,
                         cfg_options: Optional[dict] = None,
                         fusion: Optional[dict] = None) -> nn.Module:
    """Build a teacher detector, load its weights, freeze it.

    Args:
        config (dict | str): The teacher's model config, or the path of a
            config file whose ``model`` is the teacher. When that model is a
            ``CASTDistiller`` (stage 1b), its ``student`` is the teacher.
        checkpoint (str | Sequence[str], optional): Weights. A
            ``CASTDistiller`` checkpoint is read as its student's weights
            (``student.`` prefix removed). Several: the teacher at each
            checkpoint, predicting together as one :class:`TeacherEnsemble`
            (e.g. θ_T' and θ_T'' of stages 1a and 1b).
        cfg_options (dict, optional): Merged into the teacher's model config
            (after a ``CASTDistiller``'s student is taken), e.g. another
            ``panoptic_head.num_queries``.
        fusion (dict, optional): With several checkpoints, how their
            predictions are fused (:func:`fuse_instances` arguments;
            default :data:`CHECKPOINT_ENSEMBLE_FUSION`).

    Returns:
        nn.Module: The teacher in ``eval()`` mode without gradients; its
        ``teacher_classes`` attribute holds the checkpoint's class names
        (or None).

    Raises:
        FileNotFoundError: Naming a missing config or checkpoint file.
        CheckpointError: In one line naming the checkpoint, when it is
            truncated, not a checkpoint, or holds weights of another
            architecture (none of the teacher's, or some of other shapes).
    """
    if isinstance(checkpoint, (list, tuple)):
        if len(checkpoint) > 1:
            return _checkpoint_ensemble(config, checkpoint, cfg_options,
                                        fusion)
        checkpoint = checkpoint[0] if checkpoint else None
    checkpoint = resolve_checkpoint(checkpoint)
    if checkpoint is not None and '://' not in checkpoint \
            and not osp.isfile(checkpoint):
        raise FileNotFoundError(f'teacher checkpoint not found: {checkpoint}')
    scope = 'mmdet'
    if isinstance(config, str):
        if not osp.isfile(config):
            raise FileNotFoundError(f'teacher config not found: {config}')
        cfg = Config.fromfile(config)
        if cfg.get('custom_imports'):
            import_modules_from_strings(**cfg['custom_imports'])
        scope = cfg.get('default_scope', scope)
        config = cfg.model
    config = copy.deepcopy(config)
    if config.get('type') == 'CASTDistiller':
        config = config['student']
    if cfg_options:
        config = load_model_cfg(config, cfg_options)
    if DefaultScope.get_current_instance() is not None:
        scope = None
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(config)
    model.teacher_classes = None
    if checkpoint is not None:
        ckpt = load_checkpoint_file(checkpoint)
        # a CASTDistiller checkpoint also holds the wrapper's own state (its
        # strong views' draws), which is no part of the teacher
        state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else {}
        state.pop('_extra_state', None)
        check_weights_fit(checkpoint, model, ckpt, REVISE_KEYS)
        _load_checkpoint_to_model(model, ckpt, revise_keys=REVISE_KEYS)
        model.teacher_classes = checkpoint_classes(ckpt)
        # loaded: the runner's init_weights() must not re-initialise it
        # where it is part of the model tree (GuidedDistiller)
        model.is_init = True
    model.requires_grad_(False)
    return model.eval()


def _checkpoint_ensemble(config: Union[ConfigType, str],
                         checkpoints: Sequence[str],
                         cfg_options: Optional[dict],
                         fusion: Optional[dict]) -> nn.Module:
    """One frozen ``TeacherEnsemble`` of ``config`` at each checkpoint,
    predicting in the class order the checkpoints were trained on."""
    members = [
        build_frozen_teacher(config, ckpt, cfg_options) for ckpt in checkpoints
    ]
    classes = {m.teacher_classes for m in members}
    if len(classes) > 1:
        raise ValueError(
            f'the teacher checkpoints {list(checkpoints)} were trained on '
            f'different classes {sorted(map(str, classes))}: an ensemble of '
            'them would mix their labels')
    model = MODELS.build(
        dict(type='TeacherEnsemble', teachers=members,
             classes=members[0].teacher_classes,
             fusion=fusion or CHECKPOINT_ENSEMBLE_FUSION))
    model.teacher_classes = members[0].teacher_classes
    model.requires_grad_(False)
    return model.eval()

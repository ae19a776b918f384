# Copyright (c) mmcast contributors. All rights reserved.
"""The teacher–student wrapper of CAST stages 1b and 2."""
import copy
import warnings
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmdet.models.utils import rename_loss_dict, reweight_loss_dict
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from torch import Tensor

from mmcast.pseudo_labels import PseudoLabelFilter
from mmcast.structures import TensorMasks
from mmcast.utils.checkpoint_loading import (load_checkpoint_file,
                                             state_dict_of)
from ..layers import PhotometricStrongView
from ..teachers.frozen_teacher import build_frozen_teacher
from .teacher_student_detector import TeacherStudentDetector


@MODELS.register_module()
class CASTDistiller(TeacherStudentDetector):
    """Train a student on ``J(θ_S; D_l, D_u; λ_semi, λ_pxl)`` from a frozen teacher.

    ``J = L_sup(D_l) + λ_semi · L_semi(D_u) + λ_pxl · L_pxl(D_l ∪ D_u)``.
    Batches come from MMDet's ``MultiBranch`` pipelines: labeled images in
    the ``sup`` branch with ground truth, unlabeled images in the ``unsup``
    branch. With ``pseudo_label_mode='offline'`` (the paper's choice: the
    teacher is frozen, so label once) the unsup branch already carries the
    teacher's pseudo-labels as ``gt_instances``: they were read from the
    json written by ``PseudoLabelHook`` and went through the same geometric
    transforms as the image. With ``'online'`` the teacher labels the unsup
    batch inside the step (same view, so no projection is needed).

    ``L_pxl`` is computed by the student's own head once over both
    branches (its weight λ_pxl is the loss's ``loss_weight``); the unsup
    branch's set-prediction losses are scaled by ``λ_semi``. The teacher
    is held outside the module tree (``teacher_in_state_dict = False``, see
    :class:`TeacherStudentDetector`): no gradients, always ``eval()``, not
    in the optimizer, not in ``state_dict`` (checkpoints hold the
    ``student.*`` weights, and as ``_extra_state`` where the photometric
    strong views' draws stand, so that ``--resume`` continues them
    exactly), not wrapped by DDP; it follows the wrapper's device. An
    offline stage needs the teacher only to label: :meth:`release_teacher`
    (called by ``PseudoLabelHook``) frees it for the rest of the stage.
    ``predict`` uses the student, so ``mim test`` of a stage-2 checkpoint
    evaluates the student.

    Args:
        student (dict): Config of the student detector (any MMDet
            instance-segmentation model; ``CASTMask2Former`` by default).
        teacher (dict | str, optional): Config of the teacher detector, or
            the path of a config file whose ``model`` is the teacher.
        teacher_checkpoint (str | Sequence[str], optional): Its weights,
            loaded at build. Several (e.g. ``[θ_T', θ_T'']``, stages 1a
            and 1b): the teacher at each, predicting together as one
            ``TeacherEnsemble`` fused by ``teacher_fusion``.
        teacher_fusion (dict, optional): How several checkpoints'
            predictions are fused (``fuse_instances`` arguments; default
            ``CHECKPOINT_ENSEMBLE_FUSION``: same class and mask IoU >= 0.5
            make one instance, score-weighted mask average, score the mean
            over the checkpoints of each one's best score for it).
        teacher_cfg_options (dict, optional): Merged into the teacher's
            model config (nested dicts or dotted keys, as
            ``--cfg-options``), e.g. ``dict(panoptic_head=dict(
            num_queries=190))``: how a stage changes a teacher named by its
            config file (the pipeline's instance capacity).
        semi_train_cfg (dict): ``unsup_weight`` (λ_semi, 1.0),
            ``sup_weight`` (1.0), ``pseudo_label_mode`` ('offline' or
            'online'), ``pseudo_label_filter`` (``PseudoLabelFilter``
            arguments, online mode).
        data_preprocessor (dict): Usually ``MultiBranchDataPreprocessor``
            wrapping the student's preprocessor.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 student: ConfigType,
                 teacher: Optional[Union[ConfigType, str]] = None,
                 teacher_checkpoint: Union[str, Sequence[str], None] = None,
                 teacher_cfg_options: Optional[dict] = None,
                 teacher_fusion: Optional[dict] = None,
                 semi_train_cfg: ConfigType = dict(),
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.student = MODELS.build(student)
        self.semi_train_cfg = dict(
            sup_weight=1.0,
            unsup_weight=1.0,
            pseudo_label_mode='offline',
            pseudo_label_filter=dict())
        self.semi_train_cfg.update(semi_train_cfg)
        mode = self.semi_train_cfg['pseudo_label_mode']
        if mode not in ('offline', 'online'):
            raise ValueError('semi_train_cfg.pseudo_label_mode must be '
                             f'"offline" or "online", got {mode!r}')
        if mode == 'online' and teacher is None:
            raise ValueError('pseudo_label_mode="online" needs a teacher')
        self.teacher_classes: Optional[Tuple[str, ...]] = None
        if teacher is not None:
            model = build_frozen_teacher(teacher, teacher_checkpoint,
                                         teacher_cfg_options, teacher_fusion)
            self.teacher_classes = model.teacher_classes
            self._hold_teacher(model)

    def check_classes(self, classes: Sequence[str]) -> None:
        """Fail before training when teacher and student disagree on classes.

        Args:
            classes (Sequence[str]): The student's (training data's) classes.

        Raises:
            ValueError: If the teacher checkpoint's ``dataset_meta`` names
                other classes (or another order), or a head predicts another
                number of classes.
        """
        classes = tuple(classes)
        if self.teacher_classes is not None and self.teacher_classes != classes:
            raise ValueError(
                f'teacher classes {self.teacher_classes} (from its checkpoint) '
                f'differ from the student\'s dataset classes {classes}: '
                'pseudo-label ids would be wrong; map the teacher\'s classes '
                'or train it on the same class list')
        for name, model in (('teacher', self.teacher), ('student', self.student)):
            head = getattr(model, 'panoptic_head', None)
            num = getattr(head, 'num_classes', None)
            if num is not None and num != len(classes):
                raise ValueError(
                    f'the {name} predicts {num} classes but the dataset has '
                    f'{len(classes)}: {classes}')

    def release_teacher(self) -> int:
        """Drop the teacher of an offline stage once its labels are made.

        Offline pseudo-labels are read from a file, so the teacher would
        only idle (on every GPU) for the rest of the stage. An online
        wrapper labels in every step and keeps it. ``teacher_classes`` stays
        (class checks); checkpoints are unchanged (the teacher is not in
        ``state_dict``), and a resumed run builds it again for the hook.

        Returns:
            int: The number of teacher parameters released (0 when online
            or already released).
        """
        if self.semi_train_cfg['pseudo_label_mode'] != 'offline':
            return 0
        return self._drop_teacher()

    def _strong_views(self) -> List[PhotometricStrongView]:
        """The wrapper's strong views, in ``named_modules`` order."""
        return [
            m for m in self.modules() if isinstance(m, PhotometricStrongView)
        ]

    def get_extra_state(self) -> Tensor:
        """Where the draws of the wrapper's strong views stand, saved in
        ``state_dict`` so that ``--resume`` draws the same views as an
        uninterrupted run.

        Returns:
            Tensor: int64 ``[N, seed_1, calls_1, ..., seed_N, calls_N]`` for
            the N :class:`PhotometricStrongView` modules in
            ``named_modules`` order (one tensor: MMEngine broadcasts every
            ``state_dict`` entry as a tensor when a distributed run starts).
        """
        views = self._strong_views()
        return torch.cat([torch.tensor([len(views)])] +
                         [view.rng_state() for view in views])

    def set_extra_state(self, state) -> None:
        """Continue the strong views' draws of :meth:`get_extra_state`.

        A state of another version or model (another number of strong
        views) is left out with a warning: the draws start again.
        """
        views = self._strong_views()
        if not isinstance(state, Tensor) or state.dim() != 1 or \
                state.numel() != 1 + 2 * len(views) or \
                int(state[0]) != len(views):
            warnings.warn(
                f'{type(self).__name__}: the checkpoint holds no draws of '
                f'its {len(views)} strong view(s) (another version or '
                'model): they start their draws again')
            return
        for view, rng in zip(views, state[1:].view(-1, 2)):
            view.load_rng_state(rng)

    def loss(self, multi_batch_inputs: Dict[str, Tensor],
             multi_batch_data_samples: Dict[str, SampleList]) -> dict:
        """Losses of one mixed batch.

        A student whose head has ``loss_branches`` (``CASTMask2Former`` with
        ``CASTMask2FormerHead``), or a student without a head that has
        ``loss_branches`` itself (``EoMTStudent``), runs both branches in
        one forward pass: set-prediction losses per branch and one
        ``loss_pxl`` over D_l ∪ D_u. Any other MMDet student runs ``loss``
        once per branch.

        Args:
            multi_batch_inputs (dict[str, Tensor]): ``sup`` and/or ``unsup``
                images, each (B_branch, 3, H, W), normalised and padded.
            multi_batch_data_samples (dict[str, list[DetDataSample]]): The
                branches' samples; ``sup`` with ground truth, ``unsup`` with
                pseudo-labels (offline) or none yet (online).

        Returns:
            dict: ``sup_*`` and ``unsup_*`` losses (the latter × λ_semi) and
            ``loss_pxl`` with its statistics.
        """
        cfg = self.semi_train_cfg
        weights = dict(sup=cfg['sup_weight'], unsup=cfg['unsup_weight'])
        inputs = {k: v for k, v in multi_batch_inputs.items() if k in weights}
        samples = {k: multi_batch_data_samples[k] for k in inputs}
        if 'unsup' in inputs and cfg['pseudo_label_mode'] == 'online':
            samples['unsup'] = self.label_online(inputs['unsup'],
                                                 samples['unsup'])
            inputs['unsup'] = self.unsup_student_view(inputs['unsup'])
        if hasattr(getattr(self.student, 'panoptic_head', self.student),
                   'loss_branches'):
            branch_losses, losses = self.student.loss_branches(inputs, samples)
        else:
            branch_losses = {
                k: self.student.loss(inputs[k], samples[k]) for k in inputs
            }
            losses = dict()
        for name, branch in branch_losses.items():
            losses.update(
                rename_loss_dict(f'{name}_',
                                 reweight_loss_dict(branch, weights[name])))
        return losses

    def unsup_student_view(self, batch_inputs: Tensor) -> Tensor:
        """The view of the online-labeled (B, 3, H, W) batch that the
        student trains on: CAST's student sees the teacher's view."""
        return batch_inputs

    @torch.no_grad()
    def label_online(self, batch_inputs: Tensor,
                     batch_data_samples: SampleList) -> SampleList:
        """Pseudo-label a batch with the teacher inside the training step.

        The teacher sees the same (weak-view) padded batch (B, 3, H, W) as
        the student, so its masks need no geometric projection; they are
        filtered like offline labels, padded to the batch shape and stored
        as :class:`TensorMasks`, all on the inputs' device (no host round
        trip).
        """
        label_filter = PseudoLabelFilter(**self.semi_train_cfg['pseudo_label_filter'])
        results = self.teacher.predict(
            batch_inputs, copy.deepcopy(batch_data_samples), rescale=False)
        pad_h, pad_w = batch_inputs.shape[-2:]
        for sample, result in zip(batch_data_samples, results):
            pseudo = label_filter(result.pred_instances)
            masks = pseudo.masks.new_zeros((len(pseudo), pad_h, pad_w))
            h, w = pseudo.masks.shape[-2:]
            masks[:, :h, :w] = pseudo.masks
            pseudo.masks = TensorMasks(masks)
            sample.gt_instances = pseudo
        return batch_data_samples

    def predict(self,
                batch_inputs: Tensor,
                batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        """Predict with the student (B, 3, H, W) → samples with predictions."""
        return self.student.predict(
            batch_inputs, batch_data_samples, rescale=rescale)

    def _forward(self, batch_inputs: Tensor,
                 batch_data_samples: SampleList) -> Tuple:
        """The student's raw network outputs."""
        return self.student._forward(batch_inputs, batch_data_samples)

    def extract_feat(self, batch_inputs: Tensor) -> Tuple[Tensor]:
        """The student's features of (B, 3, H, W) images."""
        return self.student.extract_feat(batch_inputs)


def student_state_dict(checkpoint: Union[str, dict]) -> Dict[str, Tensor]:
    """The plain student weights of a ``CASTDistiller`` checkpoint.

    Args:
        checkpoint (str | dict): A checkpoint path (loaded weights-only, on
            the CPU) or loaded dict.

    Returns:
        dict: ``state_dict`` with the ``student.`` prefix removed, loadable
        into the student detector (stage 3's ``load_from``).

    Raises:
        FileNotFoundError: Naming a missing checkpoint file.
        CheckpointError: Naming a file that is damaged, not a checkpoint or
            holds objects that weights-only loading refuses.
        KeyError: If the checkpoint holds no ``student.*`` weights.
    """
    if isinstance(checkpoint, str):
        checkpoint = load_checkpoint_file(checkpoint)
    state = state_dict_of(checkpoint)
    student = {
        k[len('student.'):]: v
        for k, v in state.items() if k.startswith('student.')
    }
    if not student:
        raise KeyError('checkpoint has no "student.*" weights: '
                       'not a CASTDistiller checkpoint')
    return student

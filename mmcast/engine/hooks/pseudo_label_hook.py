# Copyright (c) mmcast contributors. All rights reserved.
"""Make the offline pseudo-labels at the start of training if needed."""
import copy
import gc
import os.path as osp
from typing import List, Optional, Sequence

import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmdet.registry import HOOKS

from mmcast.datasets.pseudo_label_reload import (
    find_pseudo_labeled_datasets, pseudo_label_file,
    reload_pseudo_labeled_datasets)
from mmcast.engine.hooks.random_state_hook import kept_random_states
from mmcast.engine.train_dataloader_restart import restart_train_dataloader
from mmcast.models.teachers.labeling_teacher import (LabelingTeacher,
                                                     model_device,
                                                     wrapper_teacher)
from mmcast.pseudo_labels import (DEFAULT_MAX_UNREADABLE, DEFAULT_SCORE_THRS,
                                  LabelingSettings, OfflineLabelingJob,
                                  build_labeling_dataset)
from mmcast.utils import unwrap_model
from mmcast.utils.checkpoint_loading import load_checkpoint_file


@HOOKS.register_module()
class PseudoLabelHook(Hook):
    """Offline pseudo-labels of the unlabeled set, made before training.

    In ``before_train`` (the first hook point after the train dataloader is
    built; MMEngine builds it, and ``IterBasedTrainLoop`` even starts
    iterating it, before ``before_run``) the hook finds the
    ``PseudoLabeledDataset`` s of the train dataloader and the file they
    read, and runs an :class:`~mmcast.pseudo_labels.OfflineLabelingJob`:
    if the file is not current (invalid json, another teacher, checkpoint,
    unlabeled set or filter: the log says which), the frozen teacher labels
    the unlabeled set (split across ranks, resumable). Then the teachers
    are freed, every ``PseudoLabeledDataset`` that read another version of
    the file is reloaded and the train loop gets a fresh dataloader of it.
    Each step is a method to override: :meth:`labeling_teacher`,
    :meth:`labeling_job`, :meth:`release_teachers` and
    :meth:`reload_datasets`.

    Args:
        unlabeled_dataset (dict): Dataset config for labeling: ``type``,
            ``data_root``, ``ann_file`` (the unlabeled json),
            ``data_prefix``, ``pipeline`` (a TEST pipeline: LoadImageFromFile,
            Resize, PackDetInputs with img_id, img_path, ori_shape,
            img_shape, scale_factor) and ``metainfo``.
        out_file (str, optional): The pseudo-label json. Defaults to the
            ``ann_file`` of the (single) ``PseudoLabeledDataset`` in the
            train dataloader; if given, it must be that file.
        teacher_config (str, optional): Teacher config file.
        teacher_checkpoint (str, optional): Teacher checkpoint (required
            with ``teacher_config``). Without both, ``runner.model.teacher``
            (the teacher–student wrapper's frozen teacher) labels.
        filter_cfg (dict, optional): :class:`PseudoLabelFilter` arguments
            (score_thr, max_per_image, mask_thr, non_overlapping, min_area).
            ``score_thr='auto'`` (needs ``quality_dataset``) takes the
            threshold of the best F1 on ``quality_dataset``'s ground truth
            (of ``quality_score_thrs``; the lowest on ties): the teacher
            labels D_l first, then D_u with that threshold, which the log,
            the pseudo-label header and ``score_thr`` (attribute) give.
        batch_size (int): Teacher batch size per rank. Defaults to 2.
        num_workers (int): Labeling DataLoader workers. Defaults to 0.
        mode (str): ``'offline'`` labels here; in ``'online'`` mode the
            wrapper labels on the fly and this hook does nothing.
        log_interval (int): Log the labeling progress every this many
            batches. Defaults to 50.
        max_unreadable (float, optional): The fraction of unlabeled images
            that may be missing or undecodable (skipped and counted); above
            it training stops with an error naming the image folder and the
            first such file, and no pseudo-label file is written. ``None``
            allows any number. Defaults to 0.05.
        quality_dataset (dict, optional): A dataset with ground truth
            (typically the labeled split D_l, with a TEST pipeline like
            ``unlabeled_dataset``'s). When given, the same teacher labels it
            with the same filter, its score threshold lowered to the
            smallest of ``quality_score_thrs``, and the precision, recall
            and pseudo-instances per image at each threshold (see
            :func:`~mmcast.pseudo_labels.quality.pseudo_label_quality`)
            are logged and written to ``<out_file stem>.quality.json``
            (with the labels, ``<out_file stem>.labeled_split.json``).
            Measured again whenever the teacher or filter changes. Note
            that a teacher trained on D_l labels it better than D_u.
        quality_score_thrs (Sequence[float]): The thresholds swept.
        test_time_flip (bool): The teacher labels every image and its mirror
            image, fused by mask voting (:class:`~mmcast.models.teachers.
            flip_voting.FlipVotingTTA`), for D_u and the quality set alike.
            Twice the labeling time. Defaults to False.
    """

    priority = 'VERY_HIGH'

    def __init__(self,
                 unlabeled_dataset: dict,
                 out_file: Optional[str] = None,
                 teacher_config: Optional[str] = None,
                 teacher_checkpoint: Optional[str] = None,
                 filter_cfg: Optional[dict] = None,
                 batch_size: int = 2,
                 num_workers: int = 0,
                 mode: str = 'offline',
                 log_interval: int = 50,
                 max_unreadable: Optional[float] = DEFAULT_MAX_UNREADABLE,
                 quality_dataset: Optional[dict] = None,
                 quality_score_thrs: Sequence[float] = DEFAULT_SCORE_THRS,
                 test_time_flip: bool = False) -> None:
        if mode not in ('offline', 'online'):
            raise ValueError(
                f"mode must be 'offline' or 'online', got {mode!r}")
        if not isinstance(unlabeled_dataset, dict) or \
                'ann_file' not in unlabeled_dataset:
            raise ValueError('unlabeled_dataset must be a dataset config '
                             'dict with an ann_file (the unlabeled json)')
        if teacher_config is not None and teacher_checkpoint is None:
            raise ValueError(
                f'teacher_config={teacher_config!r} needs a '
                'teacher_checkpoint (a randomly initialised teacher makes '
                'no pseudo-labels)')
        self.unlabeled_dataset = copy.deepcopy(dict(unlabeled_dataset))
        self.out_file = out_file
        self.teacher_config = teacher_config
        self.teacher_checkpoint = teacher_checkpoint
        self.settings = LabelingSettings(
            filter_cfg, quality_dataset, quality_score_thrs,
            batch_size=batch_size, num_workers=num_workers,
            log_interval=log_interval, max_unreadable=max_unreadable)
        self.mode = mode
        self.test_time_flip = bool(test_time_flip)
        # the threshold in use (chosen in before_train when 'auto')
        self.score_thr = None if self.settings.auto_score_thr else \
            self.settings.filter_cfg['score_thr']

    def _check_checkpoint(self) -> None:
        ckpt = self.teacher_checkpoint
        if self.mode == 'offline' and ckpt is not None and \
                '://' not in ckpt and not osp.isfile(ckpt):
            raise FileNotFoundError(
                f'PseudoLabelHook: teacher checkpoint not found: {ckpt}')

    def before_run(self, runner) -> None:
        """Fail early on a missing or unloadable teacher checkpoint, or
        mismatched classes."""
        self._check_checkpoint()
        if self.mode == 'offline' and self.teacher_checkpoint is not None:
            load_checkpoint_file(self.teacher_checkpoint, mmap=True)
        model = unwrap_model(runner.model)
        datasets = find_pseudo_labeled_datasets(
            runner.train_dataloader.dataset)
        if hasattr(model, 'check_classes') and datasets:
            model.check_classes(datasets[0].metainfo['classes'])

    def before_train(self, runner) -> None:
        """Label the unlabeled set if needed; reload the datasets. On the
        random states set back after (:func:`kept_random_states`): a stage
        that labels trains as one that finds its labels current."""
        if self.mode == 'online':
            return
        self._check_checkpoint()
        with kept_random_states():
            datasets = find_pseudo_labeled_datasets(
                runner.train_dataloader.dataset)
            job = self.labeling_job(runner, pseudo_label_file(
                datasets, self.out_file))
            job.run()
            self.score_thr = job.score_thr
            self.release_teachers(runner, job.teacher)
            self.reload_datasets(runner, datasets)

    def labeling_job(self, runner, out_file: str) -> OfflineLabelingJob:
        """The job that makes ``out_file`` current."""
        dataset = build_labeling_dataset(self.unlabeled_dataset)
        return OfflineLabelingJob(
            self.labeling_teacher(runner, dataset.metainfo), dataset,
            out_file, self.settings, name='PseudoLabelHook')

    def labeling_teacher(self, runner, dataset_meta: dict) -> LabelingTeacher:
        """The teacher that labels: without ``teacher_config`` the
        wrapper's, else the frozen teacher of ``teacher_config`` and
        ``teacher_checkpoint`` on the training model's device, built when
        first needed."""
        if self.teacher_config is None:
            return LabelingTeacher(
                wrapper_teacher(unwrap_model(runner.model)),
                test_time_flip=self.test_time_flip)
        return LabelingTeacher.of_files(
            self.teacher_config, self.teacher_checkpoint,
            model_device(runner.model), dataset_meta,
            test_time_flip=self.test_time_flip)

    def release_teachers(self, runner, teacher: LabelingTeacher) -> None:
        """The labels are on disk: free the teacher (built here, or the
        wrapper's) for the rest of the stage."""
        teacher.release()
        model = unwrap_model(runner.model)
        if hasattr(model, 'release_teacher') and model.release_teacher():
            print_log('PseudoLabelHook: the wrapper\'s teacher is freed for '
                      'the rest of the stage', logger='current')
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def reload_datasets(self, runner, datasets: List) -> None:
        """Reload the ``PseudoLabeledDataset`` s that did not load the file
        as it is now; then the train loop gets a fresh dataloader."""
        if reload_pseudo_labeled_datasets(
                runner.train_dataloader.dataset, datasets,
                self.unlabeled_dataset.get('ann_file')):
            restart_train_dataloader(runner)

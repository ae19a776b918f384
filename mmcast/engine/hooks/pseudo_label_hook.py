# Copyright (c) mmcast contributors. All rights reserved.
"""Make the offline pseudo-labels at the start of training if needed."""
import copy
import gc
import logging
import os.path as osp
from functools import partial
from typing import List, Optional, Sequence

import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmdet.registry import HOOKS

from mmcast.datasets.pseudo_label_reload import (
    find_pseudo_labeled_datasets, pseudo_label_file,
    reload_pseudo_labeled_datasets)
from mmcast.engine.train_dataloader_restart import restart_train_dataloader
from mmcast.models.teachers.flip_voting import FLIP_VOTING_MARK, FlipVotingTTA
from mmcast.models.teachers.labeling_teacher import (LabelingTeacher,
                                                     build_labeling_teacher,
                                                     wrapper_teacher)
from mmcast.pseudo_labels import (DEFAULT_MAX_UNREADABLE,
                                  build_labeling_dataset, check_filter_cfg,
                                  check_images_exist, label_unlabeled_set,
                                  stale_reason)
from mmcast.pseudo_labels.quality import DEFAULT_SCORE_THRS
from mmcast.pseudo_labels.score_threshold import (AUTO, best_f1_score_thr,
                                                  check_quality_args,
                                                  measure_quality,
                                                  split_auto_score_thr)
from mmcast.pseudo_labels.staleness import labeling_header, quality_is_stale
from mmcast.utils import unwrap_model
from mmcast.utils.checkpoint_loading import load_checkpoint_file
from mmcast.utils.rank0_broadcast import from_rank0


@HOOKS.register_module()
class PseudoLabelHook(Hook):
    """Offline pseudo-labels of the unlabeled set, made before training.

    In ``before_train`` (the first hook point after the train dataloader is
    built; MMEngine builds it, and ``IterBasedTrainLoop`` even starts
    iterating it, before ``before_run``): if ``out_file`` is not current
    (invalid json, another teacher, checkpoint, unlabeled set or filter:
    the log says which), the frozen
    teacher labels the unlabeled set (split across ranks, resumable,
    see :func:`~mmcast.pseudo_labels.label_unlabeled_set`), every
    ``PseudoLabeledDataset`` of the train dataloader is reloaded and the
    train loop gets a fresh dataloader of it. Each step is a method to
    override: :meth:`labeling_teacher`, :meth:`choose_score_thr`,
    :meth:`check_current`, :meth:`relabel`, :meth:`measure_quality`,
    :meth:`release_teachers` and :meth:`reload_datasets`.

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
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f'batch_size must be an int >= 1, got '
                             f'{batch_size!r}')
        self.unlabeled_dataset = copy.deepcopy(dict(unlabeled_dataset))
        self.out_file = out_file
        self.teacher_config = teacher_config
        self.teacher_checkpoint = teacher_checkpoint
        filter_cfg, self.auto_score_thr = split_auto_score_thr(
            filter_cfg, quality_dataset, quality_score_thrs)
        self.filter_cfg = check_filter_cfg(filter_cfg)
        # the threshold in use (chosen in before_train when 'auto')
        self.score_thr = None if self.auto_score_thr else \
            self.filter_cfg['score_thr']
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.mode = mode
        self.log_interval = log_interval
        self.max_unreadable = max_unreadable
        self.quality_dataset, self.quality_score_thrs = check_quality_args(
            quality_dataset, quality_score_thrs)
        self.test_time_flip = bool(test_time_flip)
        self.last_result = None  # label_unlabeled_set's summary, for tests

    @property
    def labeling_args(self) -> dict:
        """The batch size, workers, log interval and unreadable fraction
        of :func:`~mmcast.pseudo_labels.label_unlabeled_set`."""
        return dict(batch_size=self.batch_size, num_workers=self.num_workers,
                    log_interval=self.log_interval,
                    max_unreadable=self.max_unreadable)

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
        """Label the unlabeled set if needed; reload the datasets."""
        if self.mode == 'online':
            return
        self._check_checkpoint()
        root = runner.train_dataloader.dataset
        datasets = find_pseudo_labeled_datasets(root)
        out_file = pseudo_label_file(datasets, self.out_file)
        dataset = build_labeling_dataset(self.unlabeled_dataset)
        teacher = self.labeling_teacher(runner, dataset.metainfo)
        filter_cfg = self.filter_cfg
        if self.auto_score_thr:
            self.score_thr = self.choose_score_thr(teacher, dataset, out_file)
            filter_cfg = dict(filter_cfg, score_thr=self.score_thr)
        header, reason, quality_stale = from_rank0(partial(
            self.check_current, dataset, teacher.live, filter_cfg, out_file))
        if reason is None:
            print_log(f'PseudoLabelHook: {out_file} is current, not '
                      'relabeling', logger='current')
        else:
            self.relabel(teacher.get(), dataset, out_file, filter_cfg, header,
                         reason)
        if quality_stale:
            self.measure_quality(teacher.get(), out_file, header)
        self.release_teachers(runner, teacher)
        self.reload_datasets(runner, datasets)

    def labeling_teacher(self, runner, dataset_meta: dict) -> LabelingTeacher:
        """The teacher that labels: without ``teacher_config`` the
        wrapper's, else the frozen teacher of ``teacher_config`` and
        ``teacher_checkpoint``, built when first needed."""
        if self.teacher_config is None:
            return LabelingTeacher(self._augmented(
                wrapper_teacher(unwrap_model(runner.model))))
        build = partial(build_labeling_teacher, self.teacher_config,
                        self.teacher_checkpoint, runner.model, dataset_meta)
        return LabelingTeacher(build=lambda: self._augmented(build()))

    def _augmented(self, teacher: torch.nn.Module) -> torch.nn.Module:
        """``teacher``, with mirror voting when ``test_time_flip``."""
        return FlipVotingTTA(teacher) if self.test_time_flip else teacher

    def expected_header(self,
                        dataset,
                        live_teacher=None,
                        filter_cfg: Optional[dict] = None) -> dict:
        """The identity the pseudo-label file must have to be current.

        With ``teacher_config``/``teacher_checkpoint`` it equals what
        ``tools/pseudo_label.py`` writes for the same config path,
        checkpoint and filter (default: ``self.filter_cfg``), so a file made
        by the CLI is reused.
        """
        header = labeling_header(
            dataset.ann_file,
            self.filter_cfg if filter_cfg is None else filter_cfg,
            live_teacher=live_teacher, teacher_config=self.teacher_config,
            teacher_checkpoint=self.teacher_checkpoint)
        if self.test_time_flip:
            header['teacher'] += FLIP_VOTING_MARK
        return header

    def choose_score_thr(self, teacher: LabelingTeacher, dataset,
                         out_file: str) -> float:
        """``score_thr='auto'``: the best-F1 threshold on
        ``quality_dataset``, measured first if this teacher's is not.

        The measurement's identity is the teacher with the filter at the
        lowest threshold swept, the one the quality set is labeled with.
        """
        header = self.expected_header(
            dataset, teacher.live,
            dict(self.filter_cfg, score_thr=self.quality_score_thrs[0]))
        if from_rank0(partial(quality_is_stale, out_file, header,
                              self.quality_score_thrs)):
            self.measure_quality(teacher.get(), out_file, header)
        return from_rank0(partial(best_f1_score_thr, out_file))

    def check_current(self, dataset, live_teacher, filter_cfg: dict,
                      out_file: str) -> list:
        """``[header, reason, quality_stale]`` (on rank 0): the header
        ``out_file`` must have, why it has not (``None``: it is current)
        and whether the quality is to be measured (with ``'auto'``, the
        threshold choice has measured it)."""
        header = self.expected_header(dataset, live_teacher, filter_cfg)
        quality_stale = not self.auto_score_thr and \
            self.quality_dataset is not None and quality_is_stale(
                out_file, header, self.quality_score_thrs)
        return [header, stale_reason(out_file, header), quality_stale]

    def relabel(self, teacher: torch.nn.Module, dataset, out_file: str,
                filter_cfg: dict, header: dict, reason: str) -> None:
        """Label the unlabeled ``dataset`` into ``out_file``."""
        print_log(
            f'PseudoLabelHook: {reason}: pseudo-labeling '
            f'{len(dataset)} images into {out_file} with '
            f'{header["teacher"]}', logger='current')
        check_images_exist(dataset, self.max_unreadable)
        self.last_result = label_unlabeled_set(
            teacher, dataset, out_file, filter_cfg=filter_cfg, header=header,
            **self.labeling_args)
        written = self.last_result['header']
        if written is not None and written['num_instances'] == 0:
            print_log(
                f'PseudoLabelHook: the teacher kept no instance on any of '
                f'the {written["num_images"]} images of {out_file}: every '
                'unlabeled image will teach the student background. Lower '
                'the teacher\'s score threshold (filter_cfg.score_thr, or '
                'the teacher\'s own) or train the teacher longer.',
                logger='current', level=logging.WARNING)
        if written is not None and written.get('num_capped_images'):
            print_log(
                f'PseudoLabelHook: on {written["num_capped_images"]} of the '
                f'{written["num_images"]} images a cap of instances per '
                f'image left out {written["num_over_cap"]} instances above '
                f'the score threshold (filter_cfg.max_per_image='
                f'{filter_cfg["max_per_image"]}, the teacher\'s '
                'test_cfg.max_per_image): raise the capacity '
                '(tools/cast_pipeline.py --max-instances)',
                logger='current', level=logging.WARNING)

    def measure_quality(self, teacher: torch.nn.Module, out_file: str,
                        header: dict) -> None:
        """Label ``quality_dataset`` and compare with its ground truth."""
        measure_quality(
            teacher, self.quality_dataset, out_file, header,
            filter_cfg=dict(self.filter_cfg,
                            score_thr=self.quality_score_thrs[0]),
            score_thrs=self.quality_score_thrs,
            filter_score_thr=AUTO if self.auto_score_thr else
            self.filter_cfg['score_thr'],
            **self.labeling_args)

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

# Copyright (c) mmcast contributors. All rights reserved.
"""One offline pseudo-labelling job: make a stage's pseudo-label file
current.

:class:`OfflineLabelingJob` is what ``PseudoLabelHook`` runs before
training and what ``tools/pseudo_label.py`` runs from the command line:

1. with ``score_thr='auto'``, :meth:`~OfflineLabelingJob.choose_score_thr`
   measures the teacher on the quality set (if not measured yet) and takes
   the threshold of the best F1;
2. :meth:`~OfflineLabelingJob.status` (on rank 0, shared with every rank)
   gives the header the file must have and why it has not;
3. :meth:`~OfflineLabelingJob.relabel` labels the unlabeled set when the
   file is not current (sharded over the ranks, resumable, see
   :func:`~mmcast.pseudo_labels.label_unlabeled_set`) and warns when the
   teacher kept no instance or a cap left instances out;
4. :meth:`~OfflineLabelingJob.measure_quality` measures the labels against
   the quality set's ground truth when that measure is behind.

A command line stopped by Ctrl-C, SIGTERM or SIGHUP ends in one line
saying how many images a rerun keeps (:meth:`~OfflineLabelingJob.kept`,
:class:`~mmcast.pseudo_labels.labeling_interrupts.LabelingInterrupts`).

The teacher comes in as an object that knows its identity and applies its
own score floor (:class:`LabelingTeacherLike`, e.g.
``mmcast.models.teachers.labeling_teacher.LabelingTeacher``): this package
builds no model.
"""
import json
import logging
import os
import os.path as osp
from functools import partial
from typing import (ContextManager, Iterator, List, Optional, Protocol,
                    Tuple, Union)

from mmengine.dist import get_dist_info
from mmengine.logging import print_log
from torch import nn
from torch.utils.data import Dataset

from mmcast.utils.atomic_io import atomic_dump_json
from mmcast.utils.rank0_broadcast import from_rank0
from .coco_pseudo_labels import read_header
from .label_shards import json_image_id, read_all_shards
from .labeler import label_unlabeled_set
from .labeling_dataset import (build_labeling_dataset, check_images_exist,
                               image_table)
from .labeling_settings import LabelingSettings
from .quality import pseudo_label_quality
from .staleness import (identity, labeling_header, make_header,
                        quality_files, quality_is_stale, stale_reason)
from .visualization import save_pseudo_label_overlays


class LabelingTeacherLike(Protocol):
    """What the job needs of its teacher.

    Attributes:
        live (nn.Module | None): An in-memory teacher (identified by its
            class and state dict), or ``None``.
        config (str | None): The config file of a teacher built from files
            (names it in the header).
        checkpoint (str | None): Its checkpoint (hashed for the header).
        mark (str): Appended to the header's ``teacher`` (e.g. mirror
            voting), so that turning it on or off relabels.
        settings (str | None): The sha256 of its resolved settings (its
            model config, ``test_cfg`` included), so that other settings
            relabel.
    """

    live: Optional[nn.Module]
    config: Optional[str]
    checkpoint: Optional[str]
    mark: str
    settings: Optional[str]

    def labeling(self, score_thr: float) -> ContextManager[nn.Module]:
        """The teacher to label with, for a filter at ``score_thr``."""


class OfflineLabelingJob:
    """Makes the pseudo-label file ``out_file`` of the unlabeled set current.

    Each step is a method to override: :meth:`choose_score_thr`,
    :meth:`status`, :meth:`relabel` and :meth:`measure_quality`;
    :meth:`run` calls them in that order.

    Args:
        teacher (LabelingTeacherLike): The teacher that labels.
        dataset (dict | Dataset): The unlabeled set with a TEST pipeline,
            as a config or built (it is built here).
        out_file (str): The pseudo-label json.
        settings (LabelingSettings): Filter, quality set and labeller
            arguments.
        force (bool): Relabel even when the file is current.
        name (str): Who runs the job, the prefix of its log lines.

    Attributes:
        score_thr (float | None): The filter's threshold in use (chosen by
            :meth:`run` with ``'auto'``).
        result (dict | None): :func:`label_unlabeled_set`'s summary of the
            last relabelling.
        header (dict | None): The header ``out_file`` must have (set by
            :meth:`run` once known).
    """

    def __init__(self,
                 teacher: LabelingTeacherLike,
                 dataset: Union[dict, Dataset],
                 out_file: str,
                 settings: LabelingSettings,
                 force: bool = False,
                 name: str = 'OfflineLabelingJob') -> None:
        self.teacher = teacher
        self.dataset = build_labeling_dataset(dataset)
        self.out_file = out_file
        self.settings = settings
        self.force = force
        self.name = name
        self.score_thr = None if settings.auto_score_thr else \
            settings.filter_cfg['score_thr']
        self.result: Optional[dict] = None
        self.header: Optional[dict] = None

    def log(self, message: str, level: int = logging.INFO) -> None:
        """``message`` in the current logger, after the job's name."""
        print_log(f'{self.name}: {message}', logger='current', level=level)

    def run(self) -> dict:
        """Make ``out_file`` current.

        Returns:
            dict: ``relabeled`` (whether this run wrote it), ``reason`` (why
            it was not current; ``None`` if it was) and ``header`` (the one
            it must have).
        """
        filter_cfg = self.settings.filter_cfg
        if self.settings.auto_score_thr:
            self.score_thr = self.choose_score_thr()
            filter_cfg = dict(filter_cfg, score_thr=self.score_thr)
        header, reason, quality_stale = from_rank0(
            partial(self.status, filter_cfg))
        self.header = header
        relabel = reason is not None or self.force
        if relabel:
            self.relabel(filter_cfg, header, reason or 'relabeling by request')
        else:
            self.log(f'{self.out_file} is current (same teacher, checkpoint, '
                     'unlabeled set and filter), not relabeling')
        if quality_stale:
            self.measure_quality(header)
        return dict(relabeled=relabel, reason=reason, header=header)

    def expected_header(self, filter_cfg: Optional[dict] = None) -> dict:
        """The identity ``out_file`` must have, with ``filter_cfg``
        (default: the settings' filter).

        For a teacher built from files it equals what the command line
        writes for the same config path, checkpoint and filter, so a file
        made by one is reused by the other.
        """
        header = labeling_header(
            self.dataset.ann_file,
            self.settings.filter_cfg if filter_cfg is None else filter_cfg,
            live_teacher=self.teacher.live,
            teacher_config=self.teacher.config,
            teacher_checkpoint=self.teacher.checkpoint,
            teacher_settings=self.teacher.settings)
        header['teacher'] += self.teacher.mark
        return header

    def status(self, filter_cfg: dict) -> list:
        """``[header, reason, quality_stale]`` (run on rank 0): the header
        ``out_file`` must have, why it has not (``None``: it is current)
        and whether the quality is to be measured (with ``'auto'``,
        :meth:`choose_score_thr` has measured it)."""
        header = self.expected_header(filter_cfg)
        quality_stale = not self.settings.auto_score_thr and \
            self.settings.quality_dataset is not None and quality_is_stale(
                self.out_file, header, self.settings.quality_score_thrs)
        return [header, stale_reason(self.out_file, header), quality_stale]

    def choose_score_thr(self) -> float:
        """``score_thr='auto'``: the best-F1 threshold on the quality set,
        measured first if this teacher's is not.

        The measurement's identity is the teacher with the filter at the
        lowest threshold swept, the one the quality set is labeled with.
        """
        header = self.expected_header(self.settings.quality_filter_cfg)
        if from_rank0(partial(quality_is_stale, self.out_file, header,
                              self.settings.quality_score_thrs)):
            self.measure_quality(header)
        return from_rank0(self.best_f1_score_thr)

    def relabel(self, filter_cfg: dict, header: dict, reason: str) -> None:
        """Label the unlabeled set into ``out_file`` with ``filter_cfg``."""
        self.log(f'{reason}: pseudo-labeling {len(self.dataset)} images into '
                 f'{self.out_file} with {header["teacher"]}')
        check_images_exist(self.dataset, self.settings.max_unreadable)
        with self.teacher.labeling(filter_cfg['score_thr']) as teacher:
            if self.force and get_dist_info()[0] == 0 and \
                    osp.exists(self.out_file):
                os.remove(self.out_file)
            self.result = label_unlabeled_set(
                teacher, self.dataset, self.out_file, filter_cfg=filter_cfg,
                header=header, **self.settings.labeling_args)
        written = self.result['header']
        if written is None:
            return
        if written['num_instances'] == 0:
            self.log(
                f'the teacher kept no instance on any of the '
                f'{written["num_images"]} images of {self.out_file}: every '
                'unlabeled image will teach the student background. Lower '
                'the teacher\'s score threshold (filter_cfg.score_thr, or '
                'the teacher\'s own) or train the teacher longer.',
                logging.WARNING)
        if written.get('num_capped_images'):
            self.log(
                f'on {written["num_capped_images"]} of the '
                f'{written["num_images"]} images a cap of instances per '
                f'image left out {written["num_over_cap"]} instances above '
                f'the score threshold (filter_cfg.max_per_image='
                f'{filter_cfg["max_per_image"]}, the teacher\'s '
                'test_cfg.max_per_image): raise the capacity '
                '(tools/cast_pipeline.py --max-instances)', logging.WARNING)

    def measure_quality(self, header: dict) -> None:
        """Label the quality set and compare with its ground truth.

        The labels go to ``<out_file stem>.labeled_split.json`` and, on
        rank 0, the precision, recall, F1 and pseudo-instances per image at
        each threshold swept (with ``header``'s identity, to know when to
        measure again) to ``<out_file stem>.quality.json``; the sweep is
        logged.
        """
        settings = self.settings
        labeled_file, quality_file = quality_files(self.out_file)
        dataset = build_labeling_dataset(settings.quality_dataset)
        filter_cfg = settings.quality_filter_cfg
        self.log(f'measuring pseudo-label quality on the {len(dataset)} '
                 f'images of {dataset.ann_file}')
        with self.teacher.labeling(filter_cfg['score_thr']) as teacher:
            label_unlabeled_set(
                teacher, dataset, labeled_file, filter_cfg=filter_cfg,
                header=make_header(
                    teacher=header['teacher'],
                    checkpoint=header['checkpoint'],
                    unlabeled_ann_file=dataset.ann_file,
                    filter_cfg=filter_cfg,
                    checkpoint_hash=header['checkpoint_sha256'],
                    teacher_settings=header.get('teacher_settings')),
                **settings.labeling_args)
        if get_dist_info()[0] != 0:
            return
        quality = pseudo_label_quality(labeled_file, dataset.ann_file,
                                       settings.quality_score_thrs)
        quality.update(identity=identity(header), gt_file=dataset.ann_file,
                       filter_score_thr=settings.score_thr_in_use)
        atomic_dump_json(quality, quality_file, indent=1)
        lines: List[str] = [
            f'{r["score_thr"]:.2f}: precision {r["precision"]:.3f} '
            f'recall {r["recall"]:.3f} F1 {r["f1"]:.3f} '
            f'{r["per_image"]:.2f}/image' for r in quality['sweep']]
        self.log(
            'pseudo-label quality against the ground truth of '
            f'{dataset.ann_file} ({quality["gt_per_image"]:.2f} '
            'instances/image; score_thr in use '
            f'{quality["filter_score_thr"]}, best F1 at '
            f'{quality["best_f1_thr"]}):\n  ' + '\n  '.join(lines))

    def best_f1_score_thr(self) -> float:
        """The best-F1 threshold of the quality measured beside
        ``out_file`` (the lowest on ties), logged with its precision and
        recall."""
        with open(quality_files(self.out_file)[1], encoding='utf-8') as f:
            quality = json.load(f)
        chosen = float(quality['best_f1_thr'])
        best = next(r for r in quality['sweep'] if r['score_thr'] == chosen)
        self.log(f"score_thr 'auto' -> {chosen} (best F1 {best['f1']:.3f}: "
                 f'precision {best["precision"]:.3f}, recall '
                 f'{best["recall"]:.3f} on {quality["gt_file"]})')
        return chosen

    def kept(self) -> Tuple[int, int]:
        """``(N, M)``: of the ``M`` images of the unlabeled set, the ``N``
        whose pseudo-labels a rerun of this job keeps, e.g. after an
        interrupted :meth:`run`: all of them when ``out_file`` is current
        (and not ``force``), else those in the shards of its identity (the
        labeller flushes them per batch, and writes the batches it has
        queued when interrupted; a batch the teacher was on is lost)."""
        total = len(self.dataset)
        header = self.header
        if header is None:  # stopped before status(): the one it computes
            if self.score_thr is None:  # 'auto', not chosen yet
                return 0, total
            header = self.expected_header(
                dict(self.settings.filter_cfg, score_thr=self.score_thr))
        if not self.force and stale_reason(self.out_file, header) is None:
            return total, total
        done = read_all_shards(self.out_file, identity(header))
        img_ids = image_table(self.dataset)[0]
        return sum(json_image_id(i) in done for i in img_ids), total

    def summary(self) -> List[str]:
        """The lines a command line prints on rank 0 after a :meth:`run`
        that relabeled: the file, its images, instances and skipped images,
        and this rank's speed."""
        final = self.result['header'] or read_header(self.out_file)
        return [
            f'pseudo-labels: {self.out_file}',
            f'  images {final["num_images"]}, instances '
            f'{final["num_instances"]}, skipped {final["num_skipped"]}, '
            f'{self.result["images_per_s"]:.2f} img/s on rank 0'
        ]

    def report(self, outcome: dict, num_overlays: int) -> Iterator[str]:
        """The lines a command line prints after :meth:`run` returned
        ``outcome``, on rank 0 (none on the others): that the file was
        current, or :meth:`summary` and then, once drawn, where the
        overlays of the first ``num_overlays`` images are
        (:meth:`save_overlays`)."""
        if get_dist_info()[0] != 0:
            return
        if not outcome['relabeled']:
            yield 'use --force to relabel it all the same'
            return
        yield from self.summary()
        written = self.save_overlays(num_overlays)
        if written:
            yield (f'  overlays: {osp.dirname(written[0])}/ '
                   f'({len(written)} images)')

    def save_overlays(self, num_images: int) -> List[str]:
        """Draw the pseudo-labels of the first ``num_images`` images with
        the unlabeled set's classes and palette, into
        ``pseudo_label_vis/`` beside ``out_file``.

        Returns:
            list[str]: The files written (none for ``num_images <= 0``).
        """
        meta = self.dataset.metainfo
        return save_pseudo_label_overlays(
            self.out_file, self.dataset.data_prefix.get('img', ''),
            osp.join(osp.dirname(self.out_file), 'pseudo_label_vis'),
            num_images=num_images,
            classes=list(meta.get('classes', [])) or None,
            palette=meta.get('palette'))

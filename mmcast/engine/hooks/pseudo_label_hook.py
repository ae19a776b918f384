# Copyright (c) mmcast contributors. All rights reserved.
"""Make the offline pseudo-labels at the start of training if needed."""
import copy
import gc
import json
import logging
import os.path as osp
from typing import List, Optional, Sequence

import torch
from mmengine.dist import broadcast_object_list, get_dist_info, is_distributed
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from mmdet.registry import HOOKS

from mmcast.models.teachers.frozen_teacher import build_frozen_teacher

from mmcast.pseudo_labels import (DEFAULT_MAX_UNREADABLE,
                                  build_labeling_dataset, check_filter_cfg,
                                  check_images_exist, checkpoint_sha256,
                                  identity, label_unlabeled_set, make_header,
                                  read_header, stale_reason,
                                  state_dict_sha256)
from mmcast.pseudo_labels.quality import (DEFAULT_SCORE_THRS,
                                          pseudo_label_quality)
from mmcast.utils.atomic_io import atomic_dump_json
from mmcast.utils.checkpoint_loading import load_checkpoint_file


# filter_cfg.score_thr that is chosen from the quality dataset
AUTO = 'auto'


def find_pseudo_labeled_datasets(dataset) -> list:
    """Every ``PseudoLabeledDataset`` inside ``dataset``.

    Walks dataset wrappers: ``.datasets`` (ConcatDataset) and ``.dataset``
    (RepeatDataset, ClassBalancedDataset, torch ``Subset``).
    """
    from mmcast.datasets.pseudo_labeled_dataset import PseudoLabeledDataset
    found, seen, stack = [], set(), [dataset]
    while stack:
        ds = stack.pop()
        if ds is None or id(ds) in seen:
            continue
        seen.add(id(ds))
        if isinstance(ds, PseudoLabeledDataset):
            found.append(ds)
            continue
        children = getattr(ds, 'datasets', None)
        if isinstance(children, (list, tuple)):
            stack.extend(reversed(children))
        child = getattr(ds, 'dataset', None)
        if child is not None and not isinstance(child, (str, dict)):
            stack.append(child)
    return found


def _wrappers_of(root, target) -> list:
    """The chain of wrappers from ``root`` down to ``target``."""
    def walk(ds, chain):
        if ds is target:
            return chain
        kids = list(getattr(ds, 'datasets', None) or [])
        child = getattr(ds, 'dataset', None)
        if child is not None and not isinstance(child, (str, dict)):
            kids.append(child)
        for kid in kids:
            got = walk(kid, chain + [ds])
            if got is not None:
                return got
        return None

    return walk(root, []) or []


def reset_train_dataloader_iterator(runner) -> None:
    """Make the train loop fetch from the reloaded dataset.

    ``IterBasedTrainLoop`` calls ``iter(dataloader)`` in its constructor,
    before any hook: its worker processes (if any) hold copies of the
    dataset made before the pseudo-labels were loaded. They are shut down
    and a fresh iterator is made (the sampler restarts from its seed, and
    the loop still skips the iterations of a resumed run after
    ``before_train``).
    """
    loop = runner.train_loop
    dataloader = loop.dataloader
    old = getattr(loop, 'dataloader_iterator', None)
    for it in (getattr(old, '_iterator', None),
               getattr(dataloader, '_iterator', None)):
        if it is not None and hasattr(it, '_shutdown_workers'):
            it._shutdown_workers()
    if getattr(dataloader, '_iterator', None) is not None:
        dataloader._iterator = None  # persistent_workers
    if old is not None:
        loop.dataloader_iterator = type(old)(dataloader)


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
    train loop's dataloader iterator is restarted.

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
                 quality_score_thrs: Sequence[float] = DEFAULT_SCORE_THRS
                 ) -> None:
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
        filter_cfg = dict(filter_cfg or {})
        self.auto_score_thr = filter_cfg.get('score_thr') == AUTO
        if self.auto_score_thr:
            if quality_dataset is None:
                raise ValueError(
                    "filter_cfg.score_thr='auto' chooses the threshold on "
                    'the ground truth of quality_dataset: give one (e.g. the '
                    'labeled split D_l)')
            # a placeholder until the threshold is chosen in before_train
            filter_cfg['score_thr'] = min(quality_score_thrs or (0, ))
        self.filter_cfg = check_filter_cfg(filter_cfg)
        # the threshold in use (chosen in before_train when 'auto')
        self.score_thr = None if self.auto_score_thr else \
            self.filter_cfg['score_thr']
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.mode = mode
        self.log_interval = log_interval
        self.max_unreadable = max_unreadable
        if quality_dataset is not None and (
                not isinstance(quality_dataset, dict)
                or 'ann_file' not in quality_dataset):
            raise ValueError('quality_dataset must be a dataset config dict '
                             'with an ann_file (a json with ground truth)')
        if not quality_score_thrs or not all(
                0 <= t < 1 for t in quality_score_thrs):
            raise ValueError('quality_score_thrs must be scores in [0, 1), '
                             f'got {quality_score_thrs!r}')
        self.quality_dataset = copy.deepcopy(quality_dataset)
        self.quality_score_thrs = sorted(float(t) for t in quality_score_thrs)
        self.last_result = None  # label_unlabeled_set's summary, for tests

    # ------------------------------------------------------------------
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
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        datasets = find_pseudo_labeled_datasets(runner.train_dataloader.dataset)
        if hasattr(model, 'check_classes') and datasets:
            model.check_classes(datasets[0].metainfo['classes'])

    def _resolve_out_file(self, datasets: list) -> str:
        paths = sorted({osp.abspath(ds.ann_file) for ds in datasets})
        if self.out_file is None:
            if len(paths) != 1:
                raise ValueError(
                    'PseudoLabelHook: out_file is not set and the train '
                    f'dataloader has {len(paths)} PseudoLabeledDataset '
                    f'files {paths}: set out_file')
            return paths[0]
        out = osp.abspath(self.out_file)
        wrong = [p for p in paths if p != out]
        if wrong:
            raise ValueError(
                f'PseudoLabelHook writes {out} but a PseudoLabeledDataset '
                f'of the train dataloader reads {wrong[0]}: make its '
                'ann_file (joined with data_root) the same file')
        return out

    def _live_teacher(self, runner) -> torch.nn.Module:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        teacher = getattr(model, 'teacher', None)
        if teacher is None:
            raise ValueError(
                'PseudoLabelHook: give teacher_config and teacher_checkpoint, '
                f'or train a model with a .teacher ({type(model).__name__} '
                'has none)')
        return teacher

    def _build_teacher(self, runner, dataset_meta) -> torch.nn.Module:
        teacher = build_frozen_teacher(self.teacher_config,
                                       self.teacher_checkpoint)
        try:
            device = next(runner.model.parameters()).device
        except StopIteration:
            device = torch.device('cpu')
        teacher.to(device)
        if getattr(teacher, 'dataset_meta', None) is None:
            teacher.dataset_meta = dataset_meta
        return teacher

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
        filter_cfg = self.filter_cfg if filter_cfg is None else filter_cfg
        if live_teacher is not None:
            return make_header(
                teacher='runner.model.teacher '
                f'({type(live_teacher).__name__})',
                checkpoint=None,
                unlabeled_ann_file=dataset.ann_file,
                filter_cfg=filter_cfg,
                checkpoint_hash='state_dict:' +
                state_dict_sha256(live_teacher))
        return make_header(
            teacher=self.teacher_config,
            checkpoint=self.teacher_checkpoint,
            unlabeled_ann_file=dataset.ann_file,
            filter_cfg=filter_cfg,
            checkpoint_hash=checkpoint_sha256(self.teacher_checkpoint))

    def _choose_score_thr(self, teacher_of, dataset, live,
                          out_file: str) -> float:
        """``score_thr='auto'``: the best-F1 threshold on
        ``quality_dataset``, measured first if this teacher's is not.

        ``teacher_of()`` builds (or returns) the teacher when needed. The
        measurement's identity is the teacher with the filter at the lowest
        threshold swept, the one the quality set is labeled with.
        """
        rank, world_size = get_dist_info()
        header = self.expected_header(
            dataset, live,
            dict(self.filter_cfg, score_thr=self.quality_score_thrs[0]))
        stale = [self._quality_stale(out_file, header) if rank == 0 else None]
        if is_distributed() and world_size > 1:
            broadcast_object_list(stale, src=0)
        if stale[0]:
            self._measure_quality(teacher_of(), out_file, header)
        chosen = [None]
        if rank == 0:
            with open(self.quality_files(out_file)[1], encoding='utf-8') as f:
                quality = json.load(f)
            chosen = [float(quality['best_f1_thr'])]
            best = next(r for r in quality['sweep']
                        if r['score_thr'] == chosen[0])
            print_log(
                f"PseudoLabelHook: score_thr 'auto' -> {chosen[0]} (best F1 "
                f'{best["f1"]:.3f}: precision {best["precision"]:.3f}, '
                f'recall {best["recall"]:.3f} on {quality["gt_file"]})',
                logger='current')
        if is_distributed() and world_size > 1:
            broadcast_object_list(chosen, src=0)
        return chosen[0]

    def before_train(self, runner) -> None:
        """Label the unlabeled set if needed; reload the datasets."""
        if self.mode == 'online':
            return
        self._check_checkpoint()
        root = runner.train_dataloader.dataset
        datasets = find_pseudo_labeled_datasets(root)
        if datasets:
            out_file = self._resolve_out_file(datasets)
        elif self.out_file is not None:
            out_file = osp.abspath(self.out_file)
            print_log(
                'PseudoLabelHook: no PseudoLabeledDataset in the train '
                f'dataloader; {out_file} is written but read by nothing',
                logger='current', level=logging.WARNING)
        else:
            raise ValueError('PseudoLabelHook: no PseudoLabeledDataset in '
                             'the train dataloader and no out_file')

        dataset = build_labeling_dataset(self.unlabeled_dataset)
        rank, world_size = get_dist_info()
        live = None
        if self.teacher_config is None:
            live = self._live_teacher(runner)
        built = []

        def teacher_of() -> torch.nn.Module:
            if live is not None:
                return live
            if not built:
                built.append(self._build_teacher(runner, dataset.metainfo))
            return built[0]

        filter_cfg = self.filter_cfg
        if self.auto_score_thr:
            self.score_thr = self._choose_score_thr(teacher_of, dataset, live,
                                                    out_file)
            filter_cfg = dict(filter_cfg, score_thr=self.score_thr)
        state = [None, None, False]
        if rank == 0:
            header = self.expected_header(dataset, live, filter_cfg)
            state = [
                header,
                stale_reason(out_file, header),
                # 'auto' has measured it for the threshold already
                not self.auto_score_thr and self._quality_stale(
                    out_file, header)
            ]
        if is_distributed() and world_size > 1:
            broadcast_object_list(state, src=0)
        header, reason, measure_quality = state

        if reason is None:
            print_log(f'PseudoLabelHook: {out_file} is current, not '
                      'relabeling', logger='current')
        if reason is not None or measure_quality:
            teacher = teacher_of()
        if reason is not None:
            print_log(
                f'PseudoLabelHook: {reason}: pseudo-labeling '
                f'{len(dataset)} images into {out_file} with '
                f'{header["teacher"]}', logger='current')
            check_images_exist(dataset, self.max_unreadable)
            self.last_result = label_unlabeled_set(
                teacher, dataset, out_file,
                filter_cfg=filter_cfg,
                header=header,
                batch_size=self.batch_size,
                num_workers=self.num_workers,
                log_interval=self.log_interval,
                max_unreadable=self.max_unreadable)
        if measure_quality:
            self._measure_quality(teacher, out_file, header)
        # the labels are on disk: free the teacher (built here, or the
        # wrapper's) for the rest of the stage
        teacher = live = None
        built.clear()
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        if hasattr(model, 'release_teacher') and model.release_teacher():
            print_log('PseudoLabelHook: the wrapper\'s teacher is freed for '
                      'the rest of the stage', logger='current')
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

        reloaded = self._reload(root, datasets)
        if reloaded:
            reset_train_dataloader_iterator(runner)

    @staticmethod
    def quality_files(out_file: str) -> tuple:
        """``(<stem>.labeled_split.json, <stem>.quality.json)`` of
        ``out_file``."""
        stem = out_file[:-5] if out_file.endswith('.json') else out_file
        return stem + '.labeled_split.json', stem + '.quality.json'

    def _quality_stale(self, out_file: str, header: dict) -> bool:
        """Whether the quality of this teacher and filter is unmeasured at
        ``quality_score_thrs``."""
        if self.quality_dataset is None:
            return False
        try:
            with open(self.quality_files(out_file)[1], encoding='utf-8') as f:
                quality = json.load(f)
            return quality.get('identity') != identity(header) or [
                r['score_thr'] for r in quality['sweep']
            ] != self.quality_score_thrs
        except (OSError, ValueError, KeyError, TypeError):
            return True

    def _measure_quality(self, teacher, out_file: str, header: dict) -> None:
        """Label ``quality_dataset`` and compare with its ground truth."""
        labeled_file, quality_file = self.quality_files(out_file)
        dataset = build_labeling_dataset(self.quality_dataset)
        filter_cfg = dict(self.filter_cfg,
                          score_thr=self.quality_score_thrs[0])
        print_log(
            f'PseudoLabelHook: measuring pseudo-label quality on the '
            f'{len(dataset)} images of {dataset.ann_file}', logger='current')
        label_unlabeled_set(
            teacher, dataset, labeled_file, filter_cfg=filter_cfg,
            header=make_header(
                teacher=header['teacher'], checkpoint=header['checkpoint'],
                unlabeled_ann_file=dataset.ann_file, filter_cfg=filter_cfg,
                checkpoint_hash=header['checkpoint_sha256']),
            batch_size=self.batch_size, num_workers=self.num_workers,
            log_interval=self.log_interval,
            max_unreadable=self.max_unreadable)
        if get_dist_info()[0] != 0:
            return
        quality = pseudo_label_quality(labeled_file, dataset.ann_file,
                                       self.quality_score_thrs)
        quality.update(
            identity=identity(header), gt_file=dataset.ann_file,
            filter_score_thr=AUTO if self.auto_score_thr else
            self.filter_cfg['score_thr'])
        atomic_dump_json(quality, quality_file, indent=1)
        lines = [f'{r["score_thr"]:.2f}: precision {r["precision"]:.3f} '
                 f'recall {r["recall"]:.3f} F1 {r["f1"]:.3f} '
                 f'{r["per_image"]:.2f}/image' for r in quality['sweep']]
        print_log(
            'PseudoLabelHook: pseudo-label quality against the ground truth '
            f'of {dataset.ann_file} ({quality["gt_per_image"]:.2f} '
            'instances/image; score_thr in use '
            f'{quality["filter_score_thr"]}, best F1 at '
            f'{quality["best_f1_thr"]}):\n  ' + '\n  '.join(lines),
            logger='current')

    def _reload(self, root, datasets: List) -> bool:
        reloaded = False
        for ds in datasets:
            if ds.pseudo_labels_loaded and _same_file_header(ds):
                continue  # built from the current file already
            before = len(ds)
            if not ds.reload():
                raise RuntimeError(
                    f'PseudoLabelHook: {ds.ann_file} was written but the '
                    'PseudoLabeledDataset does not accept it: its '
                    f'unlabeled_ann_file ({ds.unlabeled_ann_file}) is not '
                    'the unlabeled set that was labeled '
                    f'({self.unlabeled_dataset.get("ann_file")})')
            if len(ds) != before:  # cannot happen: reload keeps the order
                raise RuntimeError(
                    f'{ds.ann_file}: dataset length changed on reload '
                    f'({before} -> {len(ds)})')
            reloaded = True
            for wrapper in _wrappers_of(root, ds):
                if type(wrapper).__name__ == 'ClassBalancedDataset':
                    print_log(
                        'PseudoLabelHook: a ClassBalancedDataset wraps '
                        f'{ds.ann_file}; its repeat factors were computed '
                        'before the pseudo-labels existed: restart the run '
                        'to use them', logger='current',
                        level=logging.WARNING)
        return reloaded


def _same_file_header(ds) -> bool:
    """Whether the header ``ds`` loaded is the one in its file now."""
    try:
        return read_header(ds.ann_file) == ds.pseudo_label_header
    except (OSError, ValueError):
        return False

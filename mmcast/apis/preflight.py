# Copyright (c) mmcast contributors. All rights reserved.
"""Check what a run of stage configs will read, before the first one starts.

:class:`Preflight` walks each stage's config (loaded as the stage will load
it) for the files it reads: the annotation files and image folders of its
datasets (``train_dataloader``, ``val_dataloader`` or ``test_dataloader``,
``PseudoLabelHook.unlabeled_dataset``), its evaluators' annotation files
and ground-truth folders, its checkpoints (``load_from``,
``model.teacher_checkpoint``, ``init_cfg`` checkpoints, the hook's
``teacher_checkpoint``) and teacher configs. Each annotation file is opened
and its content checked (:mod:`~mmcast.utils.coco_file_checks`), its images
are looked up and a sample is decoded; each checkpoint is
loaded (memory-mapped), matched against the model it is loaded into and,
for a frozen teacher, against the dataset's classes. Files that an earlier
stage (or the pipeline itself) makes are skipped while they do not exist.
Every problem becomes one line naming the file and what to do.
"""
import copy
import json
import os
import os.path as osp
import shutil
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from torch import nn

from mmcast.utils import coco_file_checks as coco_checks
from mmcast.utils.checkpoint_loading import (CheckpointError,
                                             check_weights_fit,
                                             checkpoint_classes,
                                             load_checkpoint_file)
from mmcast.utils.work_dir_checkpoint import resolve_checkpoint

# Keys whose string value is a checkpoint the model (or a part) loads.
CHECKPOINT_KEYS = ('checkpoint', 'teacher_checkpoint', 'detector_checkpoint')
# Weights fine-tuned by the stage: a classifier for other classes is
# re-initialised (MMEngine skips it), so other shapes are only a note.
FINE_TUNED = 'fine-tuned'
FROZEN = 'frozen teacher'


def _join(root: Optional[str], path: str) -> str:
    """``path`` joined with ``root`` as MMEngine's datasets join them."""
    if not root or osp.isabs(path) or '://' in path:
        return path
    return osp.join(root, path)


def dataset_inputs(node) -> Iterator[Tuple[str, Optional[str]]]:
    """``(annotation file, image folder)`` of every dataset config in
    ``node`` (dataset wrappers and lists included).

    A ``PseudoLabeledDataset`` reads its ``unlabeled_ann_file``; its
    ``ann_file`` is the hook's output.
    """
    if isinstance(node, dict):
        ann_key = 'unlabeled_ann_file' if node.get('type') == \
            'PseudoLabeledDataset' else 'ann_file'
        if isinstance(node.get(ann_key), str):
            root = node.get('data_root')
            prefix = (node.get('data_prefix') or {}).get('img')
            yield (_join(root, node[ann_key]),
                   _join(root, prefix) if prefix is not None else None)
        for value in node.values():
            yield from dataset_inputs(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from dataset_inputs(value)


def evaluator_inputs(node) -> Iterator[Tuple[str, str]]:
    """``('annotation file' | 'folder', path)`` that evaluators read."""
    for evaluator in node if isinstance(node, (list, tuple)) else [node]:
        if not isinstance(evaluator, dict):
            continue
        if isinstance(evaluator.get('ann_file'), str):
            yield 'annotation file', evaluator['ann_file']
        if isinstance(evaluator.get('seg_prefix'), str):
            yield 'folder', evaluator['seg_prefix']


def checkpoint_inputs(node, path: str = '') -> Iterator[Tuple[str, str]]:
    """``(config key, checkpoint path)`` of every :data:`CHECKPOINT_KEYS`
    value in a (model or hook) config."""
    if isinstance(node, dict):
        for key, value in node.items():
            where = f'{path}.{key}' if path else key
            if key in CHECKPOINT_KEYS and isinstance(value, str):
                yield where, value
            else:
                yield from checkpoint_inputs(value, where)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from checkpoint_inputs(value, f'{path}.{i}')


def dataset_classes(cfg) -> Optional[Tuple[str, ...]]:
    """The class names of a config's training data, if it names them."""
    from mmdet.registry import DATASETS

    stack = [cfg.get('train_dataloader')]
    while stack:
        node = stack.pop(0)
        if isinstance(node, dict):
            classes = (node.get('metainfo') or {}).get('classes')
            if classes:
                return tuple(classes)
            dataset_cls = DATASETS.get(node['type']) if isinstance(
                node.get('type'), str) and 'ann_file' in node else None
            if dataset_cls is not None and \
                    getattr(dataset_cls, 'METAINFO', {}).get('classes'):
                return tuple(dataset_cls.METAINFO['classes'])
            stack.extend(node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend(node)
    return None


def build_shape_model(model_cfg: dict) -> nn.Module:
    """The model of ``model_cfg`` for its shapes only, without weights.

    Built on the ``meta`` device where the model allows it; a
    ``CASTDistiller`` without its teacher (which would load weights).
    """
    from mmdet.registry import MODELS
    from mmengine.registry import DefaultScope

    cfg = copy.deepcopy(model_cfg)
    if cfg.get('type') == 'CASTDistiller':
        cfg['teacher'] = cfg['teacher_checkpoint'] = None
    scope = None if DefaultScope.get_current_instance() else 'mmdet'
    with DefaultScope.overwrite_default_scope(scope):
        try:
            with torch.device('meta'):
                return MODELS.build(cfg)
        except Exception:  # noqa: BLE001 - some modules need real tensors
            return MODELS.build(cfg)


def model_config_of(config_file: str,
                    cfg_options: Optional[dict] = None) -> dict:
    """The teacher model of a config file (a ``CASTDistiller``'s student),
    with ``cfg_options`` merged as the wrapper merges its
    ``teacher_cfg_options``."""
    from mmengine.config import Config

    from mmcast.models.teachers.utils import load_model_cfg

    model = Config.fromfile(config_file).model
    if model.get('type') == 'CASTDistiller':
        model = model['student']
    return load_model_cfg(model, cfg_options) if cfg_options else model


class Preflight:
    """Collects the problems of the files a list of stages will read.

    Args:
        made_here (Sequence[str]): Folders whose files the stages (or the
            caller) create: a missing file under them is not a problem.
        num_images (int): Images sampled per annotation file (first, last
            and evenly spaced ones). Defaults to 5.
        set_aside (Sequence[str]): Files under ``made_here`` that the caller
            moves away before the stages run (damaged checkpoints of its
            own): checked as if they were missing.
    """

    def __init__(self, made_here: Sequence[str] = (),
                 num_images: int = 5,
                 set_aside: Sequence[str] = ()) -> None:
        self.made_here = [osp.abspath(p).rstrip(os.sep) + os.sep
                          for p in made_here]
        self.set_aside = {osp.abspath(p) for p in set_aside}
        # images of each annotation file read (absolute path)
        self.image_counts: Dict[str, int] = {}
        self.num_images = num_images
        self.problems: List[str] = []
        self.notes: List[str] = []
        # ground-truth files of evaluators (pycocotools reads them)
        self.evaluated: set = set()
        self._seen: set = set()
        self._shape_models: Dict[str, nn.Module] = {}

    # -- helpers ---------------------------------------------------------
    def _first_time(self, *key) -> bool:
        if key in self._seen:
            return False
        self._seen.add(key)
        return True

    def made_later(self, path: str) -> bool:
        """Whether a missing ``path`` is made by a stage or the caller."""
        missing = not osp.exists(path) or osp.abspath(path) in self.set_aside
        return missing and any(
            osp.abspath(path).startswith(root) for root in self.made_here)

    def _problem(self, message: str) -> None:
        if message not in self.problems:
            self.problems.append(message)

    # -- data ----------------------------------------------------------------
    def check_annotation(self, ann_file: str, img_dir: Optional[str],
                         who: str) -> None:
        """An annotation file: exists, is COCO json, its content is sound
        (:mod:`~mmcast.utils.coco_file_checks`), every listed image exists
        and sampled images decode as the json says.

        A labeled / unlabeled split that a stage makes later is checked
        through the file it is split from.
        """
        if not self._first_time('ann', ann_file, img_dir):
            return
        source = coco_checks.split_source(ann_file)
        if self.made_later(ann_file):
            if source is not None:
                self.check_annotation(source, img_dir, f'{who}, split')
            return
        if not osp.isfile(ann_file):
            if not self._first_time('missing', ann_file):
                return
            from mmcast.datasets.semi_split import split_command
            command = split_command(ann_file, source)
            hint = f'write it with: {command}' if command else (
                'write it with tools/split_semi.py (README "Semi-'
                'supervised splits")') if '@' in osp.basename(ann_file) \
                else 'put the dataset there or point data_root at it'
            self._problem(f'missing annotation file {ann_file} (read by '
                          f'{who}): {hint}')
            return
        try:
            with open(ann_file, encoding='utf-8') as f:
                coco = json.load(f)
        except (OSError, ValueError) as e:
            self._problem(f'{ann_file}: not valid json ({e}; read by {who}): '
                          'write it again')
            return
        images = coco.get('images') if isinstance(coco, dict) else None
        if not isinstance(images, list):
            self._problem(f'{ann_file}: not a COCO annotation file (no '
                          f'"images"; read by {who})')
            return
        self.image_counts[osp.abspath(ann_file)] = len(images)
        # a split's problems come from the file it was split from
        name, fix = ann_file, ''
        if source is not None:
            name = f'{ann_file} (split of {source})'
            fix = coco_checks.split_fix(ann_file, source)
        if self._first_time('content', ann_file):
            self._add(coco_checks.check_content(
                coco, name, osp.abspath(ann_file) in self.evaluated), fix)
        if img_dir is None or not images:
            return
        if not osp.isdir(img_dir):
            if not self.made_later(img_dir):
                self._problem(f'missing image folder {img_dir} (the images '
                              f'of {ann_file}, read by {who}): put the images '
                              'there or fix data_root / data_prefix')
            return
        self._add(coco_checks.check_image_files(
            coco, name, img_dir, self.num_images, who), fix)

    def _add(self, findings: coco_checks.Findings, fix: str = '') -> None:
        for line in findings.problems:
            self._problem(line + fix)
        for line in findings.notes:
            if line not in self.notes:
                self.notes.append(line)

    def check_folder(self, path: str, what: str, who: str) -> None:
        """A folder a stage reads."""
        if self._first_time('dir', path) and not osp.isdir(path) and \
                not self.made_later(path):
            self._problem(f'missing {what} {path} (read by {who}): put it '
                          'there or fix the config')

    def check_file(self, path: str, what: str, who: str) -> None:
        """A file a stage reads."""
        if self._first_time('file', path) and not osp.isfile(path) and \
                not self.made_later(path):
            self._problem(f'missing {what} {path} (read by {who})')

    # -- checkpoints ---------------------------------------------------------
    def check_checkpoint(self,
                         path: str,
                         who: str,
                         model_cfg: Optional[dict] = None,
                         role: str = FINE_TUNED,
                         classes: Optional[Sequence[str]] = None,
                         revise_keys: Sequence[Tuple[str, str]] = ()) -> None:
        """A checkpoint: loadable, of ``model_cfg``'s architecture and, for
        a frozen teacher, trained on ``classes``.

        Args:
            path (str): The checkpoint.
            who (str): The stage and config key, for the message.
            model_cfg (dict, optional): The model it is loaded into.
            role (str): :data:`FINE_TUNED` (other class counts are a note)
                or :data:`FROZEN` (they are a problem).
            classes (Sequence[str], optional): The dataset's classes.
            revise_keys (Sequence[tuple]): Key rewrites before matching.
        """
        if not self._first_time('ckpt', path, role) or \
                self.made_later(path):
            return
        try:
            path = resolve_checkpoint(path)
        except FileNotFoundError as e:
            self._problem(f'{e} ({who})')
            return
        if '://' in path and not osp.exists(path):
            self.notes.append(f'{path} ({who}) is downloaded by MMEngine '
                              'when the stage starts (not checked)')
            return
        try:
            ckpt = load_checkpoint_file(path, mmap=True)
        except FileNotFoundError:
            self._problem(f'missing checkpoint {path} ({who})')
            return
        except CheckpointError as e:
            self._problem(f'{e} ({who})')
            return
        frozen = role == FROZEN
        trained_on = checkpoint_classes(ckpt)
        if classes is not None and trained_on is not None and \
                tuple(trained_on) != tuple(classes):
            message = (f'{path}: trained on {len(trained_on)} classes '
                       f'{list(trained_on)[:4]}..., the stage\'s data has '
                       f'{len(classes)} {list(classes)[:4]}... ({who})')
            if frozen:
                self._problem(message + ': give a teacher trained on these '
                              'classes')
                return
            self.notes.append(message + ': its classifier is re-initialised')
        if model_cfg is None:
            return
        try:
            model = self._shape_model(model_cfg)
        except Exception as e:  # noqa: BLE001 - reported, not raised
            self.notes.append(f'cannot build the model of {who} to check '
                              f'{path} against it: {e}')
            return
        try:
            mismatched = check_weights_fit(path, model, ckpt, revise_keys,
                                           allow_mismatch=not frozen)
        except CheckpointError as e:
            self._problem(f'{e} ({who})')
            return
        if mismatched:
            self.notes.append(
                f'{path}: {len(mismatched)} weights have other shapes than '
                f'in {type(model).__name__} (e.g. {mismatched[0][0]}) and '
                f'are re-initialised ({who})')

    def _shape_model(self, model_cfg: dict) -> nn.Module:
        key = json.dumps(model_cfg, sort_keys=True, default=str)
        if key not in self._shape_models:
            self._shape_models[key] = build_shape_model(model_cfg)
        return self._shape_models[key]

    def num_weights(self, model_cfg: dict) -> int:
        """The number of weights of ``model_cfg``'s model (its state dict)."""
        return sum(v.numel() for v in self._shape_model(
            model_cfg).state_dict().values())

    # -- one stage -----------------------------------------------------------
    def check_stage(self, cfg, who: str, test_checkpoint: Optional[str] = None
                    ) -> None:
        """Every file the stage of ``cfg`` reads.

        Args:
            cfg (Config): The stage's config, options merged.
            who (str): The stage's name, for the messages.
            test_checkpoint (str, optional): For a test stage, the
                checkpoint evaluated (``None``: a training stage).
        """
        testing = test_checkpoint is not None
        loaders = ['test_dataloader'] if testing else [
            'train_dataloader', 'val_dataloader'
        ]
        evaluator = 'test_evaluator' if testing else 'val_evaluator'
        self.evaluated.update(
            osp.abspath(path) for kind, path in evaluator_inputs(
                cfg.get(evaluator)) if kind == 'annotation file')
        for key in loaders:
            for ann_file, img_dir in dataset_inputs(cfg.get(key)):
                self.check_annotation(ann_file, img_dir, f'{who}, {key}')
        for kind, path in evaluator_inputs(cfg.get(evaluator)):
            if kind == 'folder':
                self.check_folder(path, 'ground-truth folder',
                                  f'{who}, {evaluator}')
            else:
                self.check_annotation(path, None, f'{who}, {evaluator}')
        classes = dataset_classes(cfg)
        model = cfg.model
        if testing:  # mmdet's test.py loads the checkpoint as load_from
            self.check_checkpoint(test_checkpoint, f'{who}, tested', model,
                                  FINE_TUNED, classes)
            return
        if cfg.get('load_from'):
            self.check_checkpoint(cfg.load_from, f'{who}, load_from', model,
                                  FINE_TUNED, classes)
        for hook in cfg.get('custom_hooks') or []:
            for ann_file, img_dir in dataset_inputs(
                    hook.get('unlabeled_dataset')):
                self.check_annotation(ann_file, img_dir,
                                      f'{who}, {hook.get("type")}')
        teacher = model.get('teacher')
        teacher_model = None
        if isinstance(teacher, str):
            self.check_file(teacher, 'teacher config', f'{who}, model.teacher')
            if osp.isfile(teacher):
                teacher_model = model_config_of(
                    teacher, model.get('teacher_cfg_options'))
        elif isinstance(teacher, dict):
            teacher_model = teacher
        for where, path in checkpoint_inputs(model, 'model'):
            if where == 'model.teacher_checkpoint':
                self.check_checkpoint(path, f'{who}, {where}', teacher_model,
                                      FROZEN, classes,
                                      [(r'^student\.', ''),
                                       (r'^module\.', '')])
            else:
                self.check_checkpoint(path, f'{who}, {where}')
        if teacher_model is not None:
            for where, path in checkpoint_inputs(teacher_model,
                                                 'teacher model'):
                self.check_checkpoint(path, f'{who}, {where}')

    # -- the work dir ----------------------------------------------------------
    def check_work_dir(self, work_dir: str, need_bytes: int) -> None:
        """The work dir is writable and has ``need_bytes`` free."""
        folder = work_dir
        while not osp.isdir(folder) and osp.dirname(folder) != folder:
            folder = osp.dirname(folder)
        if not os.access(folder, os.W_OK | os.X_OK):
            self._problem(f'work dir {work_dir} is not writable: choose '
                          'another --work-dir or fix its permissions')
            return
        free = shutil.disk_usage(folder).free
        if free < need_bytes:
            self._problem(
                f'work dir {work_dir}: {free / 2**30:.1f} GiB free, the '
                f'stages keep about {need_bytes / 2**30:.1f} GiB of '
                'checkpoints: free space or choose another --work-dir')

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
loaded (memory-mapped), matched against the model it is loaded into (which
it must not leave mostly random) and, for a frozen teacher, against the
dataset's classes. Files that an earlier stage (or the pipeline itself)
makes are skipped while they do not exist.
Every problem becomes one line naming the file and what to do.
"""
import json
import os
import os.path as osp
import shutil
import warnings
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

from torch import nn

from mmcast.utils import checkpoint_coverage as coverage
from mmcast.utils import coco_file_checks as coco_checks
from mmcast.utils.checkpoint_loading import (CheckpointError,
                                             check_weights_fit,
                                             checkpoint_classes,
                                             load_checkpoint_file)
from mmcast.utils.stage_state import FINISHED, stage_status
from mmcast.utils.work_dir_checkpoint import resolve_checkpoint
from .batch_plan import batch_problems
from .config_inputs import (build_shape_model, checkpoint_inputs,
                            dataset_classes, dataset_inputs,
                            evaluator_inputs, model_config_of)
from .config_loader import ConfigLoader
from .cpu_share import run_contention_note
from .planning import Plan
from .run_spec import RunSpec
from .settings import CHECKPOINT_BYTES_PER_WEIGHT

# Weights fine-tuned by the stage: a classifier for other classes is
# re-initialised (MMEngine skips it), so other shapes are only a note.
FINE_TUNED = 'fine-tuned'
FROZEN = 'frozen teacher'


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
        root (str, optional): The folder relative paths are in (where the
            stages run); default: the working directory.
        read (callable, optional): Loads a teacher config file named by a
            stage (default: MMEngine's ``Config.fromfile``).
        allow_partial_init (bool): Note, not refuse, a partial checkpoint.
    """

    def __init__(self, made_here: Sequence[str] = (),
                 num_images: int = 5,
                 set_aside: Sequence[str] = (),
                 root: Optional[str] = None,
                 read: Optional[Callable] = None,
                 allow_partial_init: bool = False) -> None:
        self.root, self.read = root, read
        self.allow_partial_init = allow_partial_init
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

    def at(self, path: str) -> str:
        """``path`` as the stages read it: a relative one in :attr:`root`."""
        if self.root is None or osp.isabs(path) or '://' in path:
            return path
        return osp.join(self.root, path)

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
        ann_file = self.at(ann_file)
        img_dir = None if img_dir is None else self.at(img_dir)
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
        path = self.at(path)
        if self._first_time('dir', path) and not osp.isdir(path) and \
                not self.made_later(path):
            self._problem(f'missing {what} {path} (read by {who}): put it '
                          'there or fix the config')

    def check_file(self, path: str, what: str, who: str) -> None:
        """A file a stage reads."""
        path = self.at(path)
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
                         target: Optional[coverage.InitTarget] = None
                         ) -> None:
        """A checkpoint: loadable, covering ``model_cfg``'s model and, for a
        frozen teacher, trained on ``classes``.

        Args:
            path (str): The checkpoint.
            who (str): The stage and config key, for the message.
            model_cfg (dict, optional): The model it is loaded into.
            role (str): :data:`FINE_TUNED` (other class counts are a note)
                or :data:`FROZEN` (they are a problem).
            classes (Sequence[str], optional): The dataset's classes.
            target (InitTarget, optional): Where and how it is loaded.
        """
        path = self.at(path)
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
        frozen, target = role == FROZEN, target or coverage.InitTarget()
        classes = classes if target.whole else None
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
        weights = target.weights(ckpt)
        try:
            check_weights_fit(path, model, dict(state_dict=weights),
                              allow_mismatch=not frozen)
        except CheckpointError as e:
            self._problem(f'{e} ({who})')
            return
        self._add(coverage.checkpoint_coverage(
            model.state_dict(), weights, target.module, type(model).__name__
        ).findings(path, who, self.allow_partial_init))

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
            osp.abspath(self.at(path)) for kind, path in evaluator_inputs(
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
            if osp.isfile(self.at(teacher)):
                teacher_model = model_config_of(
                    self.at(teacher), model.get('teacher_cfg_options'),
                    self.read)
        elif isinstance(teacher, dict):
            teacher_model = teacher
        for where, path in checkpoint_inputs(model, 'model'):
            # the teacher's, an init_cfg's (others: no model to match)
            target, frozen = coverage.init_target(model, where), \
                where == 'model.teacher_checkpoint'
            self.check_checkpoint(
                path, f'{who}, {where}', teacher_model if frozen else
                target and model, FROZEN if frozen else FINE_TUNED,
                target and classes, target)
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


@dataclass
class PreflightReport:
    """What the preflight found.

    Args:
        problems (list[str]): One line each; none: the stages may start.
        checkpoint_bytes (dict): ``{stage work dir: bytes}``: the
            checkpoints each stage to train keeps (checked again before the
            stage starts: another program may fill the disk meanwhile).
        image_counts (dict): ``{annotation file (absolute): images}``.
    """
    problems: List[str] = field(default_factory=list)
    checkpoint_bytes: Dict[str, int] = field(default_factory=dict)
    image_counts: Dict[str, int] = field(default_factory=dict)


def run_preflight(spec: RunSpec, loader: ConfigLoader, plan: Plan,
                  made_here: Sequence[str] = (),
                  set_aside: Sequence[str] = ()) -> PreflightReport:
    """Check every file the stages read, the batch of each stage and the
    room for their checkpoints; print the notes.

    Reads relative paths in the repository root and loads configs with the
    stages' environment, as the stages do (:class:`ConfigLoader`). Missing
    files under the work dir, ``made_here`` (and, on toy,
    the data the pipeline generates) are made by earlier stages or the
    pipeline; ``set_aside`` (damaged checkpoints of the work dir the run
    moves away) count as missing.
    """
    from mmdet.utils import register_all_modules

    import mmcast  # noqa: F401  (registers mmcast modules)

    warnings.filterwarnings('ignore', 'pkg_resources is deprecated')
    register_all_modules(init_default_scope=False)
    made_here = [spec.work_dir] + list(made_here)
    if spec.dataset == 'toy':
        made_here += [spec.toy.root, spec.toy.source_root]
    check = Preflight(made_here, set_aside=set_aside, root=loader.root,
                      read=loader.read,
                      allow_partial_init=spec.allow_partial_init)
    report = PreflightReport()
    to_train = []
    for stage in plan.stages:
        try:
            cfg = loader.load(stage)
        except Exception as e:  # noqa: BLE001 - reported as a line
            check.problems.append(
                f'{stage.config}: cannot be loaded with the pipeline\'s '
                f'options ({type(e).__name__}: {e})')
            continue
        check.check_stage(cfg, f'{stage.name} ({stage.config})',
                          stage.checkpoint)
        if stage.max_iters is not None and stage_status(
                stage.work_dir, stage.max_iters) != FINISHED:
            to_train.append((stage, cfg))
    # the estimate builds every model: only worth it when the rest is in
    # order
    if not check.problems:
        for stage, cfg in to_train:
            report.checkpoint_bytes[stage.work_dir] = \
                _checkpoint_bytes(check, cfg)
    check.check_work_dir(spec.work_dir, sum(report.checkpoint_bytes.values()))
    report.image_counts = dict(check.image_counts)
    contention = run_contention_note(spec)
    for note in check.notes + ([contention] if contention else []):
        print(f'note: {note}', flush=True)
    report.problems = check.problems + batch_problems(plan.stages)
    return report


def _checkpoint_bytes(check, cfg) -> int:
    """The bytes of the checkpoints a training stage keeps (``0``: no
    estimate)."""
    hook = cfg.get('default_hooks', {}).get('checkpoint') or {}
    kept = hook.get('max_keep_ckpts', -1)
    kept = 4 if kept is None or kept < 0 else min(kept, 4)
    kept += bool(hook.get('save_last', True))
    try:
        weights = check.num_weights(cfg.model)
    except Exception:  # noqa: BLE001 - no estimate for this stage
        return 0
    return kept * weights * CHECKPOINT_BYTES_PER_WEIGHT

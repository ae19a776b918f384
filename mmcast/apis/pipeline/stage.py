# Copyright (c) mmcast contributors. All rights reserved.
"""One step of the plan (its batch and lr included), and the metrics its run
logged."""
import os.path as osp
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from mmcast.engine.batch_scaling import LR_RULE
from mmcast.utils.stage_state import logged_metrics
from .overrides import Overrides

# The results table's mask AP / AP50, by the evaluator they come from: the
# keys of a stage's MMEngine log (×1, the table shows ×100). Which one a
# dataset's table reads first is settings.PRIMARY_METRIC.
METRICS = {
    'coco': {'segm_AP': 'coco/segm_mAP', 'segm_AP50': 'coco/segm_mAP_50'},
    'cityscapes': {'segm_AP': 'cityscapes/mAP',
                   'segm_AP50': 'cityscapes/AP@50'},
}
# the COCO-style columns of a table whose first metric is another one
SECOND_COLUMNS = {'segm_AP': 'coco_segm_AP', 'segm_AP50': 'coco_segm_AP50'}


@dataclass(frozen=True)
class StageBatch:
    """The batch and lr a training stage runs with.

    Args:
        gpus (int): Processes of the stage (all nodes).
        per_gpu (int): Training images per GPU.
        slots (list[int]): Images per GPU of each source (one source for a
            labels-only stage; labeled, then unlabeled for a
            ``MultiSourceSampler``).
        lr (float): The lr it trains with.
        recipe_lr (float): The lr of its config.
        recipe_batch (int): The global batch ``recipe_lr`` is for.
        lr_given (bool): An option of the command line sets the lr: kept
            as given.
        source_files (list[str]): The annotation file of each source.
        problem (str, optional): Why the stage cannot train with this batch.
    """
    gpus: int
    per_gpu: int
    slots: List[int]
    lr: float
    recipe_lr: float
    recipe_batch: int
    lr_given: bool = False
    source_files: List[str] = field(default_factory=list)
    problem: Optional[str] = None

    @property
    def batch(self) -> int:
        """The global batch."""
        return self.gpus * self.per_gpu

    def describe(self, max_iters: int, counts: Dict[str, int]) -> str:
        """``global batch 16 (8 GPU(s) x 2: 8 labeled + 8 unlabeled), lr
        7.07e-05 (5e-05 at batch 8, square-root rule), 90000 iterations =
        2432.4 epochs of the labeled images (296), ...``; ``counts``: the
        images of each annotation file (absolute path) where known."""
        split = ''
        if len(self.slots) > 1:
            split = ': ' + ' + '.join(
                f'{n * self.gpus} {what}' for n, what in
                zip(self.slots, ('labeled', 'unlabeled', 'other')))
        if self.lr_given:
            why = 'as given'
        elif self.batch == self.recipe_batch:
            why = 'the recipe\'s, at its batch'
        else:
            why = (f'{self.recipe_lr:.3g} at batch {self.recipe_batch}, '
                   f'{LR_RULE} rule')
        lr = f'lr {self.lr:.3g} ({why})'
        epochs = []
        for n, path, name in zip(self.slots, self.source_files,
                                 ('labeled', 'unlabeled', 'other')):
            images = counts.get(osp.abspath(path)) if path else None
            if images:
                epochs.append(f'{max_iters * n * self.gpus / images:.1f} '
                              f'epochs of the {name} images ({images})')
            else:
                epochs.append(f'epochs of the {name} images: not counted '
                              f'({osp.basename(path) or "no file"} not '
                              'read)')
        return (f'global batch {self.batch} ({self.gpus} GPU(s) x '
                f'{self.per_gpu}{split}), {lr}, {max_iters} iterations = ' +
                ', '.join(epochs))


@dataclass(frozen=True)
class Stage:
    """One step of the plan: train a config, or test a checkpoint. Made
    whole by the :class:`~mmcast.apis.pipeline.planning.Planner` and never
    changed after.

    Args:
        key (str): Its results key (and folder name in the seed's dir).
        name (str): Its name in the log, e.g. ``'stage 1a'``.
        config (str): The config, relative to the repository.
        work_dir (str): Its work dir.
        overrides (Overrides): Every override of its config, in order.
        max_iters (int, optional): Iterations of a training stage.
        checkpoint (str, optional): The checkpoint a test stage evaluates.
        seed (int, optional): The seed of a seed's stage.
        pseudo_label_file (str, optional): The file its ``PseudoLabelHook``
            writes (stages 1b and 2).
        batch (StageBatch, optional): A training stage's global batch and
            lr (:mod:`~mmcast.apis.pipeline.batch_plan`).
        upstream (tuple[str]): The work dirs of the stages it is made from
            (:mod:`~mmcast.apis.pipeline.stage_graph`), whether or
            not the run has them.
    """
    key: str
    name: str
    config: str
    work_dir: str
    overrides: Overrides = Overrides()
    max_iters: Optional[int] = None
    checkpoint: Optional[str] = None
    seed: Optional[int] = None
    pseudo_label_file: Optional[str] = None
    batch: Optional[StageBatch] = None
    upstream: Tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """Its name on the console, e.g. ``[seed 0] [stage 2]``."""
        seed = '' if self.seed is None else f'[seed {self.seed}] '
        return f'{seed}[{self.name}]'

    @property
    def final(self) -> Optional[str]:
        """The last checkpoint of a training stage."""
        if self.max_iters is None:
            return None
        return osp.join(self.work_dir, f'iter_{self.max_iters}.pth')

    def describe(self) -> str:
        """One line of the plan."""
        if self.max_iters is None:
            return (f'[{self.name}] test {self.config} on {self.checkpoint}'
                    f' -> {self.work_dir}')
        return (f'[{self.name}] train {self.config} for {self.max_iters} '
                f'iterations -> {self.final}')


def pseudo_label_summary(stage: Stage) -> List[str]:
    """Console lines on the pseudo-labels a finished stage trained on: their
    count, the images where a cap of instances per image left some out and,
    when the teacher kept no instance at all, a warning (every unlabeled
    image then teaches the student that it is background)."""
    from mmcast.pseudo_labels.coco_pseudo_labels import read_header
    path = stage.pseudo_label_file
    header = read_header(path) if path and osp.isfile(path) else None
    if header is None:
        return []
    count, images = header['num_instances'], header['num_images']
    lines = [f'{stage.label} pseudo-labels: {count} instances on {images} '
             f'unlabeled images ({path})']
    if header.get('num_capped_images'):
        lines.append(
            f'{stage.label} WARNING: on {header["num_capped_images"]} of '
            f'these images a cap of instances per image (the teacher\'s '
            'test_cfg.max_per_image or the filter\'s max_per_image, '
            f'{header["filter"]["max_per_image"]}) left out '
            f'{header["num_over_cap"]} instances above the score threshold: '
            'raise the capacity with --max-instances')
    if count == 0 and images:
        lines.append(
            f'{stage.label} WARNING: the teacher kept no instance above its '
            'score threshold, so every unlabeled image taught the student '
            'background; lower the teacher\'s score threshold (the '
            'PseudoLabelHook\'s filter_cfg.score_thr, or the teacher\'s own '
            'score_thr) or train the teacher longer')
    return lines


def read_metrics(work_dir: str, metric: str = 'coco') -> Dict:
    """The last mask AP / AP50 logged in ``work_dir`` (×100) by the
    evaluator ``metric`` (:data:`METRICS`), with ``metric`` named in the
    row; for another metric than ``'coco'`` the COCO-style ones too
    (:data:`SECOND_COLUMNS`).

    A run whose model predicted nothing at all (a box-prompted teacher with
    no detection above its score threshold) gets no COCO metric from mmdet's
    ``CocoMetric``, which logs that instead: its AP is 0.

    Raises:
        RuntimeError: Nothing logged, or a record without ``metric``'s keys
            (the config has no such evaluator).
    """
    keys = dict(METRICS[metric])
    if metric != 'coco':
        keys.update({SECOND_COLUMNS[k]: v
                     for k, v in METRICS['coco'].items()})
    record = logged_metrics(work_dir)
    if record is None:
        raise RuntimeError(
            f'no {METRICS["coco"]["segm_AP"]} logged under {work_dir}')
    if not record:
        print(f'no predictions at all in {work_dir}: mask AP 0', flush=True)
        return dict({k: 0.0 for k in keys}, metric=metric)
    missing = [v for v in keys.values() if v not in record]
    if missing:
        raise RuntimeError(f'{work_dir}: its log has no {", ".join(missing)}'
                           f' (the {metric} metric of this dataset\'s '
                           'results table): is that evaluator in its config?')
    return dict({k: round(100 * record[v], 1) for k, v in keys.items()},
                metric=metric)

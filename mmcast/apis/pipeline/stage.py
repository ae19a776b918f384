# Copyright (c) mmcast contributors. All rights reserved.
"""One step of the plan, and the metrics its run logged."""
import os.path as osp
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from mmcast.utils.stage_state import logged_metrics

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


@dataclass
class Stage:
    """One step of the plan: train a config, or test a checkpoint.

    Args:
        key (str): Its results key (and folder name in the seed's dir).
        name (str): Its name in the log, e.g. ``'stage 1a'``.
        config (str): The config, relative to the repository.
        work_dir (str): Its work dir.
        options (list[str]): Its complete ``--cfg-options``.
        max_iters (int, optional): Iterations of a training stage.
        checkpoint (str, optional): The checkpoint a test stage evaluates.
        seed (int, optional): The seed of a seed's stage.
        number (int, optional): Its place in the run's schedule (1-based).
        count (int, optional): The stages of the run's schedule.
        pseudo_label_file (str, optional): The file its ``PseudoLabelHook``
            writes (stages 1b and 2).
        batch (StageBatch, optional): A training stage's global batch and
            lr (:mod:`~mmcast.apis.pipeline.batch_plan`).
    """
    key: str
    name: str
    config: str
    work_dir: str
    options: List[str] = field(default_factory=list)
    max_iters: Optional[int] = None
    checkpoint: Optional[str] = None
    seed: Optional[int] = None
    number: Optional[int] = None
    count: Optional[int] = None
    pseudo_label_file: Optional[str] = None
    batch: Optional[object] = None

    @property
    def label(self) -> str:
        """Its name on the console, e.g. ``[seed 0] [stage 2]``."""
        seed = '' if self.seed is None else f'[seed {self.seed}] '
        return f'{seed}[{self.name}]'

    @property
    def of_plan(self) -> str:
        """`` (stage 3 of 14)`` once scheduled, else ``''``."""
        if self.number is None:
            return ''
        return f' (stage {self.number} of {self.count})'

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

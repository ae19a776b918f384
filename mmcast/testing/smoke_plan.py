# Copyright (c) mmcast contributors. All rights reserved.
"""The runs of the real-size smoke (``tools/smoke_real_configs.py``), read
from the stage table and the stage graph.

A dataset's stage runs are its rows of ``configs/mmcast/stages.json`` with
the recipe's teacher (or none) and no student variant, in the order of the
stage graph (``configs/mmcast/stage_graph.json``), each followed by the rows
of the student variants the smoke runs (:data:`STUDENT_VARIANTS`). Each run
reads, for every hand-off of its stage in the graph, the run of the source
stage of the same student variant, else the recipe's (the DINOv3-S
student's stage 2 reads the recipe's stage-1b teacher, its stage 3 its own
stage 2). Then the configs of ``configs/mmcast/teachers`` that read the
dataset (:data:`TEACHER_RUNS`).

The quick plan (:func:`quick_plan`, ``--quick``) keeps, of
:data:`QUICK_DATASET`, every stage run of the recipe's student, the variant
runs whose stage reads a stage of the recipe's chain only (the place where
a variant student meets the hand-off; its later stages repeat the recipe's
hand-offs) and the teachers' adaptations (stage 1a, ``train``), without the
test-only teacher configs: a stage added to the table for that dataset is
in it.
"""
import os.path as osp
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from mmcast.apis.pipeline import stage_rows
from mmcast.apis.pipeline.stage_graph import TEACHER0, stage_graph

# the teacher of the recipe's stage rows (stages.json's ``teacher``)
RECIPE_TEACHER = 'mask2former'
# the student variants the smoke runs besides the recipe's, per dataset
STUDENT_VARIANTS = {'cityscapes': ('dinov3-s', 'eomt-dinov3-s')}
# (config under configs/mmcast/teachers, dataset, how it runs)
TEACHER_RUNS = (('adapt_grounding_dino_cityscapes', 'cityscapes', 'train'),
                ('grounding_dino_sam2_cityscapes', 'cityscapes', 'test'),
                ('teacher_ensemble_cityscapes', 'cityscapes', 'test'),
                ('adapt_sam3_cityscapes', 'cityscapes', 'train'),
                ('sam3_cityscapes', 'cityscapes', 'test'),
                ('grounding_dino_sam2_ade20k', 'ade20k', 'test'))
QUICK_DATASET = 'cityscapes'


@dataclass(frozen=True)
class SmokeStep:
    """One run of the smoke.

    Args:
        name (str): The config under ``configs/mmcast`` without ``.py``
            (a stage's short name where it has one).
        dataset (str): The dataset it reads.
        stage (str, optional): Its stage key (None for a teacher config).
        label (str): Its label (the stage graph's: ``1a`` ... ``GD``;
            ``adapt`` / ``test`` for a teacher config).
        how (str): ``train`` or ``test``.
        variant (str, optional): The student variant of a stage row.
        reads (tuple[tuple[str, str]]): ``(source stage, step name)`` for
            each hand-off of the stage that is no θ_T^0: the step whose
            checkpoint it gets.
    """
    name: str
    dataset: str
    stage: Optional[str]
    label: str
    how: str = 'train'
    variant: Optional[str] = None
    reads: Tuple[Tuple[str, str], ...] = ()

    @property
    def config(self) -> str:
        """The config's path relative to the repository."""
        return osp.join('configs', 'mmcast', f'{self.name}.py')


def stage_steps(dataset: str, quick: bool = False) -> List[SmokeStep]:
    """The stage runs of ``dataset`` (see the module docstring).

    Raises:
        ValueError: A row's stage reads a stage the dataset has no row of.
    """
    rows = [row for row in stage_rows() if row['dataset'] == dataset
            and row['teacher'] in (None, RECIPE_TEACHER)
            and row['variant'] in (None, ) + STUDENT_VARIANTS.get(
                dataset, ())]
    has_row = {(row['stage'], row['variant']) for row in rows}
    graph = stage_graph()
    steps: List[SmokeStep] = []
    names: Dict[Tuple[str, Optional[str]], str] = {}
    for stage in graph:
        # the recipe's row first, then the variants'
        for row in sorted((r for r in rows if r['stage'] == stage),
                          key=lambda r: r['variant'] is not None):
            variant = row['variant']
            sources = [src for _, src in graph[stage].handoffs
                       if src != TEACHER0]
            missing = [src for src in sources if (src, None) not in names]
            if missing:
                raise ValueError(
                    f'configs/mmcast/stages.json: {row["config"]} '
                    f'({stage}) reads {missing}, which {dataset} has no '
                    'row of')
            if quick and variant is not None and (not sources or any(
                    (src, variant) in has_row for src in sources)):
                continue
            name = row['short'] or row['config']
            names[(stage, variant)] = name
            steps.append(SmokeStep(
                name, dataset, stage, graph[stage].label,
                variant=variant, reads=tuple(
                    (src, names.get((src, variant), names[(src, None)]))
                    for src in sources)))
    return steps


def teacher_steps(dataset: str, quick: bool = False) -> List[SmokeStep]:
    """The runs of :data:`TEACHER_RUNS` that read ``dataset`` (``quick``:
    the adaptations only)."""
    return [SmokeStep(f'teachers/{name}', dataset, None,
                      'adapt' if how == 'train' else 'test', how)
            for name, ds, how in TEACHER_RUNS
            if ds == dataset and not (quick and how != 'train')]


def smoke_plan(dataset: str, quick: bool = False) -> List[SmokeStep]:
    """Every run of the smoke for ``dataset``, in order: the stages, then
    the teacher configs."""
    return stage_steps(dataset, quick) + teacher_steps(dataset, quick)


def quick_plan() -> List[SmokeStep]:
    """The runs of ``--quick``, in order (see the module docstring)."""
    return smoke_plan(QUICK_DATASET, quick=True)

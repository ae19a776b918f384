# Copyright (c) mmcast contributors. All rights reserved.
"""What a work dir already holds: the teacher it was made with, the
``--reuse-from`` work dir, and the finished stages an ablation links from
there instead of training them again."""
import glob
import json
import os
import os.path as osp
from typing import Set

from mmcast.utils.stage_state import FINISHED, stage_status
from .config_loader import ConfigLoader
from .errors import PipelineError
from .planning import Plan, predictions_file
from .run_spec import RunSpec
from .settings import DEFAULT_TEACHER, TEACHER_MARKER
from .stage import Stage


def check_work_dir_teacher(spec: RunSpec) -> None:
    """Refuse a work dir made with another teacher.

    The stage folders have the same names for every teacher, so a finished
    stage of another teacher would be taken as done. A work dir without the
    record but with stages predates ``--teacher``: it holds the default
    teacher's.
    """
    marker = osp.join(spec.work_dir, TEACHER_MARKER)
    if osp.isfile(marker):
        with open(marker, encoding='utf-8') as f:
            previous = json.load(f).get('teacher')
    elif glob.glob(osp.join(spec.work_dir, 'seed*')):
        previous = DEFAULT_TEACHER
    else:
        previous = None
    if previous is not None and previous != spec.teacher:
        raise PipelineError(
            f'{spec.work_dir} holds the stages of --teacher {previous}; use '
            f'another --work-dir for --teacher {spec.teacher}')


def check_reuse_base(spec: RunSpec) -> None:
    """The ``--reuse-from`` work dir: another pipeline work dir.

    One of another teacher is taken too: only the stages that do not use
    the teacher can be alike there (the labels-only student, the students'
    backbone pre-training, Guided Distillation), since every teacher stage
    has its own config and every later CAST stage is trained from one.
    """
    base = spec.reuse_from
    if base is None:
        return
    if osp.realpath(base) == osp.realpath(spec.work_dir):
        raise PipelineError('--reuse-from names the --work-dir itself')
    marker = osp.join(base, TEACHER_MARKER)
    if not osp.isfile(marker):
        raise PipelineError(f'--reuse-from {base}: no pipeline work dir (no '
                            f'{TEACHER_MARKER})')
    with open(marker, encoding='utf-8') as f:
        teacher = json.load(f).get('teacher')
    if teacher != spec.teacher:
        print(f'--reuse-from {base} holds the stages of --teacher {teacher}: '
              f'only those that do not use the teacher can be linked for '
              f'--teacher {spec.teacher}', flush=True)


class StageReuse:
    """Links the finished stages of ``--reuse-from`` that a run would train
    (or test) alike, and refuses stages of the work dir that this run would
    train otherwise.

    Args:
        spec (RunSpec): The run.
        loader (ConfigLoader): Its configs (and their comparison).
    """

    def __init__(self, spec: RunSpec, loader: ConfigLoader) -> None:
        self.spec = spec
        self.loader = loader

    def link_reused(self, plan: Plan, dry: bool) -> None:
        """Link every finished stage of ``--reuse-from`` that this run
        would train (or test) alike (:meth:`reusable`; ``--nproc`` is not
        compared). A stage trained here stays; a link left by an earlier run
        (with or without ``--reuse-from`` now) stays when it is still alike,
        and is refused when this run changes its stage. A stage finished
        here with another config than this run's is made again by the
        runner (:mod:`~mmcast.apis.pipeline.stage_changes`). A dry run only
        prints the links.

        Raises:
            PipelineError: A link this run would train otherwise.
        """
        base, work_dir = self.spec.reuse_from, self.spec.work_dir
        planned = {osp.relpath(st.work_dir, work_dir) for st in plan.stages}
        linked: Set[str] = set()
        for stage in plan.stages:
            rel = osp.relpath(stage.work_dir, work_dir)
            if osp.islink(stage.work_dir):
                if not self.reusable(stage, stage.work_dir, linked, planned):
                    raise PipelineError(
                        f'{stage.work_dir} links to '
                        f'{os.readlink(stage.work_dir)}, but this run trains '
                        f'{stage.name} differently: remove the link (or use '
                        'another --work-dir)')
                linked.add(rel)
                continue
            source = osp.join(base, rel) if base else ''
            if not base or osp.lexists(stage.work_dir) or \
                    not self.reusable(stage, source, linked, planned):
                continue  # trained here
            linked.add(rel)
            print(f'[{stage.name}] reused from {source}', flush=True)
            if not dry:
                _link(stage, source, rel)

    def reusable(self, stage: Stage, source: str, linked: Set[str],
                 planned: Set[str]) -> bool:
        """Whether ``source`` holds ``stage`` finished and trained alike
        (:meth:`~ConfigLoader.same_config`), and every stage it is trained
        from (``stage.upstream``) is linked too."""
        upstream = {osp.relpath(u, self.spec.work_dir)
                    for u in stage.upstream}
        return all(u in linked or u not in planned for u in upstream) and \
            finished_in(stage, osp.realpath(source)) and \
            self.loader.same_config(stage, source)


def _link(stage: Stage, source: str, rel: str) -> None:
    """Link ``stage``'s work dir (and, for a seed's stage, its val
    predictions) to ``source``."""
    links = [(source, stage.work_dir)]
    if osp.dirname(rel):
        links.append((predictions_file(osp.dirname(source), stage.key),
                      predictions_file(osp.dirname(stage.work_dir),
                                       stage.key)))
    for target, link in links:
        if osp.exists(target) and not osp.lexists(link):
            os.makedirs(osp.dirname(link), exist_ok=True)
            os.symlink(target, link)


def finished_in(stage: Stage, work_dir: str) -> bool:
    """Whether ``work_dir`` holds ``stage`` finished
    (:func:`~mmcast.utils.stage_state.stage_status`), or (a test stage) its
    row in the seed's results."""
    if stage.max_iters is not None:
        return stage_status(work_dir, stage.max_iters) == FINISHED
    results = osp.join(osp.dirname(work_dir), 'results.json')
    if not osp.isfile(results):
        return False
    with open(results, encoding='utf-8') as f:
        return stage.key in json.load(f)

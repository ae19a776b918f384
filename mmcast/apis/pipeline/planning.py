# Copyright (c) mmcast contributors. All rights reserved.
"""The stage graph as data: :class:`Planner` turns a :class:`RunSpec` into a
:class:`Plan` (θ_T^0 or its stand-in, the students' backbone, then per seed
θ_T^0 tested, 1a, 1b, 2, 3, the baseline and Guided Distillation), each a
frozen :class:`Stage` with its config, typed overrides, iterations,
checkpoints, pseudo-label file, batch and lr, and the work dirs of the
stages it is made from."""
import os.path as osp
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

from mmcast.utils.annealing_windows import scaled_windows

from .batch_plan import stage_batch
from .config_handoffs import (config_value, evaluator_options, find_item,
                              hook_option, pseudo_label_options)
from .config_loader import ConfigLoader
from .instance_capacity import choose_capacity, run_capacity_options
from .labeled_split import labeled_split_options
from .overrides import Overrides
from .run_spec import RunSpec
from .settings import (PROGRESS_RECORDS, SHARED_STAGES_SEED, STANDIN_TEACHER,
                       STUDENT_FOUNDATION)
from .stage import Stage
from .stage_graph import (TEACHER0, cast_chain, shared_stages, stage_graph,
                          stage_keys)


def given_max_iters(overrides: Overrides) -> Optional[int]:
    """The ``train_cfg.max_iters`` that ``overrides`` end with, or
    ``None``."""
    value = overrides.get('train_cfg.max_iters')
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def predictions_file(seed_dir: str, key: str) -> str:
    """The COCO results json of stage ``key`` on val."""
    return osp.join(seed_dir, 'predictions', f'{key}.segm.json')


@dataclass
class Plan:
    """The stages of a run.

    Args:
        first (list[Stage]): The stages before the seeds (θ_T^0's
            pre-training or stand-in, the students' backbone).
        per_seed (dict[int, list[Stage]]): Each seed's stages, in order.
        teacher0 (str, optional): θ_T^0, the checkpoint stage 1a starts
            from (CAST only).
        student_backbone (str, optional): The checkpoint the students'
            backbone starts from (``--student-init source-pretrained``).
        capacity (int, optional): The instances per image of every stage
            (``None``: the configs' own).
        notes (list[str]): What planning found to say, in order.
    """
    first: List[Stage]
    per_seed: Dict[int, List[Stage]]
    teacher0: Optional[str] = None
    student_backbone: Optional[str] = None
    capacity: Optional[int] = None
    notes: List[str] = field(default_factory=list)

    @property
    def stages(self) -> List[Stage]:
        """Every stage, in order."""
        return self.first + [st for stages in self.per_seed.values()
                             for st in stages]

    def seed_stage(self, seed: int, key: str) -> Optional[Stage]:
        """The stage ``key`` of ``seed``, if the run has it."""
        return next((st for st in self.per_seed.get(seed, [])
                     if st.key == key), None)


class Planner:
    """Plans a run: a pure function of its spec and its configs (and of the
    instance capacity chosen from its data); it keeps no state of a plan.

    Args:
        spec (RunSpec): The run.
        loader (ConfigLoader): Its configs.
    """

    def __init__(self, spec: RunSpec, loader: ConfigLoader) -> None:
        self.spec = spec
        self.loader = loader

    def plan(self) -> Plan:
        """The :class:`Plan` of the run."""
        spec = self.spec
        capacity, notes = choose_capacity(spec, self.loader)
        plan = Plan([], {}, capacity=capacity, notes=notes)
        if spec.cast and spec.dataset == 'toy':
            config = self.loader.stage_config('toy_foundation')
            plan.first.append(self.toy_pretrain_stage(
                'toy_foundation', config,
                spec.teacher_settings['toy_foundation'], capacity))
            plan.teacher0 = plan.first[0].final
            if spec.pretrained_teacher:
                plan.notes.append(
                    f'--pretrained-teacher {spec.pretrained_teacher} is not '
                    'used: the toy pre-trains its own θ_T^0 on its source '
                    f'corpus ({plan.teacher0})')
        elif spec.cast and spec.pretrained_teacher:
            plan.teacher0 = spec.pretrained_teacher
        elif spec.cast:  # custom-cpu (RunSpec refuses any other dataset)
            plan.first.append(self.standin_teacher_stage(capacity))
            plan.teacher0 = plan.first[0].final
            plan.notes.append(self.standin_note(plan.first[0]))
        if spec.student_init == 'source-pretrained':
            plan.first.append(self.toy_pretrain_stage(
                STUDENT_FOUNDATION,
                self.loader.stage_config(STUDENT_FOUNDATION),
                STUDENT_FOUNDATION, capacity))
            plan.student_backbone = plan.first[-1].final
        iters = {key: self._iters(key, self.loader.stage_config(key))
                 for key in cast_chain()}
        for seed in spec.seeds:
            plan.per_seed[seed] = self.seed_stages(seed, plan, iters)
        return plan

    # ------------------------------------------------------------ stages
    def upstream(self, key: str, work_dir: str) -> tuple:
        """The work dirs of the stages ``key`` (in ``work_dir``) is made
        from (:mod:`~mmcast.apis.pipeline.stage_graph`): the shared ones in
        the run's work dir (θ_T^0's pre-training in its teacher's folder),
        a seed's beside it."""
        folders = {
            'toy_foundation': self.spec.teacher_settings['toy_foundation']}
        return tuple(
            osp.join(self.spec.work_dir, folders.get(u, u))
            if u in shared_stages() else osp.join(osp.dirname(work_dir), u)
            for u in stage_graph()[key].upstream)

    def train_stage(self, key: str, config: str, work_dir: str,
                    max_iters: int, overrides: Overrides,
                    capacity: Optional[int], seed: Optional[int] = None,
                    pseudo_label_file: Optional[str] = None) -> Stage:
        """A training stage of ``max_iters`` (named as in the stage graph)
        with its complete overrides: the schedule, ``--labeled-split``,
        ``overrides``, the run's instance ``capacity``, the command line's
        options, then the batch and lr of the run's GPU count
        (:func:`~mmcast.apis.pipeline.batch_plan.stage_batch`); its json log
        gets a record at least every ``max_iters /``
        :data:`PROGRESS_RECORDS` iterations (the progress lines).

        A ``train_cfg.max_iters`` of the command line's options
        (``--cfg-options``, ``--stage-cfg-options``) is the stage's length,
        so that its final checkpoint, which the next stage loads, is the one
        it writes.
        """
        interval = self.loader.read(config).default_hooks.logger.interval
        given = self.spec.options_of(key)
        max_iters = given_max_iters(given) or max_iters
        schedule = Overrides.of([
            ('train_cfg.max_iters', max_iters),
            ('train_cfg.val_interval', max_iters),
            ('param_scheduler.end', max_iters),
            ('default_hooks.checkpoint.interval', max(max_iters // 4, 1)),
            ('default_hooks.logger.interval',
             max(1, min(interval, max_iters // PROGRESS_RECORDS))),
        ]) + self.annealing_options(config, max_iters)
        overrides = schedule + self.split_options(config) + overrides + \
            self.capacity_options(config, capacity) + given
        batch, batch_overrides = stage_batch(self.spec, self.loader, config,
                                             overrides)
        return Stage(key, stage_graph()[key].name, config, work_dir,
                     overrides + batch_overrides,
                     max_iters=max_iters, seed=seed,
                     pseudo_label_file=pseudo_label_file, batch=batch,
                     upstream=self.upstream(key, work_dir))

    def annealing_options(self, config: str, max_iters: int) -> Overrides:
        """The windows of ``config``'s ``MaskAnnealingHook`` (EoMT's masked
        attention), if it has one, scaled from the config's length to a
        stage of ``max_iters``, so that a shortened or lengthened stage
        (``--iters``) still ends, as its predict runs, without the masked
        attention; each window keeps at least one iteration."""
        cfg = self.loader.read(config)
        hook = find_item(cfg, 'custom_hooks', 'MaskAnnealingHook',
                         required=False)
        own = self.loader.config_iters(config)
        if hook is None or max_iters == own:
            return Overrides()
        value = config_value(cfg, hook)
        starts, ends = scaled_windows(value['start_iters'],
                                      value['end_iters'], own, max_iters)
        return Overrides.of([(f'{hook}.start_iters', starts),
                             (f'{hook}.end_iters', ends)])

    def test_stage(self, key: str, config: str, checkpoint: str,
                   work_dir: str, overrides: Overrides,
                   capacity: Optional[int], seed: int) -> Stage:
        """A stage that evaluates ``checkpoint`` with ``config``."""
        return Stage(key, stage_graph()[key].name, config, work_dir,
                     overrides + self.capacity_options(config, capacity) +
                     self.spec.options_of(key), checkpoint=checkpoint,
                     seed=seed, upstream=self.upstream(key, work_dir))

    def split_options(self, config: str) -> Overrides:
        """The overrides that make ``config`` read ``--labeled-split``
        (:mod:`~mmcast.apis.pipeline.labeled_split`); none without it."""
        if self.spec.labeled_split is None:
            return Overrides()
        return labeled_split_options(self.loader.read(config),
                                     self.spec.labeled_split)

    def capacity_options(self, config: str,
                         capacity: Optional[int]) -> Overrides:
        """The overrides that give ``config`` the run's ``capacity`` (none
        while it keeps the configs' own)."""
        if capacity is None:
            return Overrides()
        return run_capacity_options(self.loader, config, capacity)

    def eval_options(self, seed_dir: str, key: str,
                     config: str) -> Overrides:
        """Evaluator overrides that write a stage's files under ``seed_dir``.

        ``CocoMetric`` writes the predictions on val to
        :func:`predictions_file` (for the split-half noise of the results
        table). A ``CityScapesMetric`` (toy and Cityscapes configs) writes
        (and first deletes) a folder: each stage gets its own,
        ``<seed dir>/cityscapes_metric/<key>`` (a run by hand gets
        ``<work_dir>/cityscapes_metric/`` from ``MetricOutputHook``). The
        metrics are found in ``config`` by type.
        """
        coco = predictions_file(seed_dir, key)[:-len('.segm.json')]
        return evaluator_options(
            self.loader.read(config), coco,
            osp.join(seed_dir, 'cityscapes_metric', key))

    def toy_pretrain_stage(self, key: str, config: str, folder: str,
                           capacity: Optional[int]) -> Stage:
        """A model pre-trained on the toy source corpus (θ_T^0, or the
        students' backbone), cached in ``<work-dir>/<folder>``."""
        pairs = [('randomness.seed', SHARED_STAGES_SEED)]
        if self.spec.data_root:
            source = self.spec.toy.source_root + '/'
            val_ann = (source +
                       'annotations/instancesonly_filtered_gtFine_val.json')
            pairs += [
                ('train_dataloader.dataset.data_root', source),
                ('val_dataloader.dataset.data_root', source),
                ('test_dataloader.dataset.data_root', source),
                ('val_evaluator.ann_file', val_ann),
                ('test_evaluator.ann_file', val_ann),
            ]
        return self.train_stage(
            key, config, osp.join(self.spec.work_dir, folder),
            self._iters('pretrain', config), Overrides.of(pairs), capacity)

    def standin_teacher_stage(self, capacity: Optional[int]) -> Stage:
        """custom-cpu without ``--pretrained-teacher``: θ_T^0 is the stage-1a
        config trained from scratch on D_l (no foundation model: the
        teacher stages then start from weights that saw only D_l)."""
        config = self.loader.stage_config('adapt_teacher')
        return self.train_stage(
            STANDIN_TEACHER, config,
            osp.join(self.spec.work_dir, STANDIN_TEACHER),
            self._iters('pretrain', config),
            Overrides.of([('load_from', None),
                          ('randomness.seed', SHARED_STAGES_SEED)]),
            capacity)

    @staticmethod
    def standin_note(stage: Stage) -> str:
        return (f'θ_T^0: no --pretrained-teacher, so a stand-in is trained '
                f'from scratch on the labeled split D_l ({stage.config}, '
                f'{stage.max_iters} iterations) -> {stage.final}; with no '
                'foundation model behind it, expect little from the teacher '
                'stages')

    @staticmethod
    def student_init_options(plan: Plan, model: str) -> Overrides:
        """``--student-init source-pretrained``: the overrides that load the
        pre-trained backbone into the student at ``model`` (e.g.
        ``'model.student'``); none by default."""
        if plan.student_backbone is None:
            return Overrides()
        key = f'{model}.backbone.init_cfg'
        return Overrides.of([(f'{key}._delete_', True),
                             (f'{key}.type', 'Pretrained'),
                             (f'{key}.checkpoint', plan.student_backbone),
                             (f'{key}.prefix', 'backbone.')])

    def seed_stages(self, seed: int, plan: Plan,
                    iters: Dict[str, int]) -> List[Stage]:
        """The stages of one seed, in the stage graph's order: θ_T^0 tested,
        1a, 1b, 2, 3 (CAST), the labels-only baseline and Guided
        Distillation (``--methods gd``); ``iters``: the iterations of each
        stage of CAST's chain."""
        wd = osp.join(self.spec.work_dir, f'seed{seed}')
        teacher0 = plan.teacher0

        def opts(name: str, config: str) -> Overrides:
            return Overrides.of([('randomness.seed', seed)]) + \
                self.eval_options(wd, name, config)

        def train(key: str, max_iters: int, overrides: Overrides,
                  pseudo_labels: Optional[str] = None) -> Stage:
            config = self.loader.stage_config(key)
            out_file = None
            if pseudo_labels is not None:
                out_file = osp.join(wd, 'pseudo_labels',
                                    f'{pseudo_labels}.json')
                overrides = pseudo_label_options(
                    self.loader.read(config), out_file) + overrides
            return self.train_stage(key, config, osp.join(wd, key),
                                    max_iters, opts(key, config) + overrides,
                                    plan.capacity, seed,
                                    pseudo_label_file=out_file)

        adapt_cfg = self.loader.stage_config('adapt_teacher')
        graph = stage_graph()
        finals = {TEACHER0: teacher0}
        # the baseline trains as long as the student's CAST stages
        lengths = dict(iters, supervised_student=iters['distill'] +
                       iters['finetune'])
        extras = {
            'distill': self.student_init_options(plan, 'model.student'),
            'supervised_student': self.student_init_options(plan, 'model')
        }
        stages = {}
        for key in cast_chain() + ('supervised_student', ):
            node = graph[key]
            stages[key] = train(
                key, lengths[key],
                node.handoff_overrides(
                    finals, node.chosen(self.spec.distill_teacher)) +
                extras.get(key, Overrides()), node.pseudo_labels)
            finals[key] = stages[key].final
        if self.spec.cast:
            stages['teacher_pretrained'] = self.test_stage(
                'teacher_pretrained', adapt_cfg, teacher0,
                osp.join(wd, 'teacher_pretrained'),
                opts('teacher_pretrained', adapt_cfg), plan.capacity, seed)
        else:
            for key in cast_chain():
                del stages[key]
        if 'gd' in self.spec.methods:
            stages['guided_distillation'] = self.gd_stage(
                wd, stages['supervised_student'], finals, plan, opts)
        return [stages[key] for key in stage_keys() if key in stages]

    def gd_stage(self, wd: str, baseline: Stage, finals: Dict[str, str],
                 plan: Plan, opts: Callable[[str, str], Overrides]) -> Stage:
        """Guided Distillation from the seed's ``baseline`` (its supervised
        teacher), for its config's iterations and burn-in (Cityscapes:
        the paper's 90k / 50k); a baseline shortened or lengthened
        (``--iters``) scales both alike, a length of its own
        (``train_cfg.max_iters`` in the options) scales the burn-in;
        ``finals``: the final checkpoint of each stage of the seed."""
        key = 'guided_distillation'
        config = self.loader.stage_config(key)
        cfg = self.loader.read(config)
        hook = find_item(cfg, 'custom_hooks', 'GuidedTeacherHook')
        own = cfg.train_cfg.max_iters
        scale = baseline.max_iters / self.loader.config_iters(
            self.loader.stage_config('supervised_student'))
        max_iters = given_max_iters(self.spec.options_of(key)) or max(
            1, round(own * scale))
        # the switch stays inside the run
        burn_in = round(config_value(cfg, hook)['burn_in_iters'] *
                        max_iters / own)
        burn_in = max(1, min(burn_in, max_iters - 1))
        return self.train_stage(
            key, config, osp.join(wd, key), max_iters, opts(key, config) +
            stage_graph()[key].handoff_overrides(finals) +
            hook_option(cfg, 'GuidedTeacherHook', 'burn_in_iters', burn_in) +
            self.student_init_options(plan, 'model.student'),
            plan.capacity, baseline.seed)

    def _iters(self, name: str, config: str) -> int:
        """Iterations of stage ``name``: ``--iters`` or its config's."""
        return self.spec.iters.get(name) or self.loader.config_iters(config)

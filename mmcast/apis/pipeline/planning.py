# Copyright (c) mmcast contributors. All rights reserved.
"""The stage graph as data: :class:`Planner` turns a :class:`RunSpec` into a
:class:`Plan` (θ_T^0 or its stand-in, the students' backbone, then per seed
θ_T^0 tested, 1a, 1b, 2, 3, the baseline and Guided Distillation), each
stage with its config, options, iterations, checkpoints, pseudo-label file,
batch and lr."""
import os.path as osp
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

from ..config_handoffs import (config_value, evaluator_options, find_item,
                               hook_option, pseudo_label_options)
from .batch_plan import stage_batch
from .capacity import capacity_options, choose_capacity
from .config_loader import ConfigLoader
from .labeled_split import labeled_split_options
from .run_spec import RunSpec
from .settings import (ITERS_STAGES, PROGRESS_RECORDS, SHARED_STAGES_SEED,
                       STANDIN_TEACHER, STUDENT_FOUNDATION)
from .stage import Stage


def given_max_iters(options: List[str]) -> Optional[int]:
    """The last ``train_cfg.max_iters=N`` of ``options``, or ``None``."""
    found = None
    for option in options:
        key, _, value = option.partition('=')
        if key.strip() == 'train_cfg.max_iters' and value.strip().isdigit():
            found = int(value)
    return found


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
    """Plans a run: a pure function of its spec and its configs.

    Args:
        spec (RunSpec): The run.
        loader (ConfigLoader): Its configs.
    """

    def __init__(self, spec: RunSpec, loader: ConfigLoader) -> None:
        self.spec = spec
        self.loader = loader
        self.capacity: Optional[int] = None

    def plan(self) -> Plan:
        """The :class:`Plan` of the run."""
        spec = self.spec
        self.capacity, notes = choose_capacity(spec, self.loader)
        plan = Plan([], {}, capacity=self.capacity, notes=notes)
        if spec.cast and spec.dataset == 'toy':
            config = self.loader.stage_config('toy_foundation')
            plan.first.append(self.toy_pretrain_stage(
                'toy_foundation', 'teacher pre-training (source corpus)',
                config, spec.teacher_settings['toy_foundation']))
            plan.teacher0 = plan.first[0].final
        elif spec.cast and spec.pretrained_teacher:
            plan.teacher0 = spec.pretrained_teacher
        elif spec.cast:  # custom-cpu (RunSpec refuses any other dataset)
            plan.first.append(self.standin_teacher_stage())
            plan.teacher0 = plan.first[0].final
            plan.notes.append(self.standin_note(plan.first[0]))
        if spec.student_init == 'source-pretrained':
            plan.first.append(self.toy_pretrain_stage(
                STUDENT_FOUNDATION, 'student backbone pre-training '
                '(source corpus)', self.loader.stage_config(
                    STUDENT_FOUNDATION), STUDENT_FOUNDATION))
            plan.student_backbone = plan.first[-1].final
        iters = [self._iters(name, self.loader.stage_config(name))
                 for name in ITERS_STAGES[1:]]
        for seed in spec.seeds:
            plan.per_seed[seed] = self.seed_stages(seed, plan, iters)
        return plan

    # ------------------------------------------------------------ stages
    def train_stage(self, key: str, name: str, config: str, work_dir: str,
                    max_iters: int, options: List[str],
                    pseudo_label_file: Optional[str] = None) -> Stage:
        """A training stage of ``max_iters`` with its complete options: the
        schedule, ``--labeled-split``, ``options``, the run's instance
        capacity, then the command line's options; its json log gets a
        record at least every ``max_iters /`` :data:`PROGRESS_RECORDS`
        iterations (the progress lines), and it gets the batch and lr of
        the run's GPU count (:func:`~mmcast.apis.pipeline.batch_plan.
        stage_batch`).

        A ``train_cfg.max_iters`` of the command line's options
        (``--cfg-options``, ``--stage-cfg-options``) is the stage's length,
        so that its final checkpoint, which the next stage loads, is the one
        it writes.
        """
        interval = self.loader.config_file(config).default_hooks.logger.interval
        given = self.spec.options_of(key)
        max_iters = given_max_iters(given) or max_iters
        opts = [
            f'train_cfg.max_iters={max_iters}',
            f'train_cfg.val_interval={max_iters}',
            f'param_scheduler.end={max_iters}',
            f'default_hooks.checkpoint.interval={max(max_iters // 4, 1)}',
            'default_hooks.logger.interval='
            f'{max(1, min(interval, max_iters // PROGRESS_RECORDS))}',
        ] + self.split_options(config) + options + \
            self.capacity_options(config) + given
        stage = Stage(key, name, config, work_dir, opts, max_iters=max_iters,
                      pseudo_label_file=pseudo_label_file)
        stage.batch, batch_options = stage_batch(self.spec, self.loader,
                                                 stage)
        stage.options += batch_options
        return stage

    def test_stage(self, key: str, config: str, checkpoint: str,
                   work_dir: str, options: List[str]) -> Stage:
        """A stage that evaluates ``checkpoint`` with ``config``."""
        return Stage(key, key, config, work_dir,
                     options + self.capacity_options(config) +
                     self.spec.options_of(key), checkpoint=checkpoint)

    def split_options(self, config: str) -> List[str]:
        """The options that make ``config`` read ``--labeled-split``
        (:mod:`~mmcast.apis.pipeline.labeled_split`); none without it."""
        if self.spec.labeled_split is None:
            return []
        return labeled_split_options(self.loader.config_file(config),
                                     self.spec.labeled_split)

    def capacity_options(self, config: str) -> List[str]:
        """The options that give ``config`` the run's capacity (none while
        it keeps the configs' own)."""
        if self.capacity is None:
            return []
        return capacity_options(self.loader, config, self.capacity)

    def eval_options(self, seed_dir: str, key: str,
                     config: str) -> List[str]:
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
            self.loader.config_file(config), coco,
            osp.join(seed_dir, 'cityscapes_metric', key))

    def toy_pretrain_stage(self, key: str, name: str, config: str,
                           folder: str) -> Stage:
        """A model pre-trained on the toy source corpus (θ_T^0, or the
        students' backbone), cached in ``<work-dir>/<folder>``."""
        options = [f'randomness.seed={SHARED_STAGES_SEED}']
        if self.spec.data_root:
            source = self.spec.toy.source_root + '/'
            val_ann = (source +
                       'annotations/instancesonly_filtered_gtFine_val.json')
            options += [
                f'train_dataloader.dataset.data_root={source}',
                f'val_dataloader.dataset.data_root={source}',
                f'test_dataloader.dataset.data_root={source}',
                f'val_evaluator.ann_file={val_ann}',
                f'test_evaluator.ann_file={val_ann}',
            ]
        return self.train_stage(
            key, name, config, osp.join(self.spec.work_dir, folder),
            self._iters('pretrain', config), options)

    def standin_teacher_stage(self) -> Stage:
        """custom-cpu without ``--pretrained-teacher``: θ_T^0 is the stage-1a
        config trained from scratch on D_l (no foundation model: the
        teacher stages then start from weights that saw only D_l)."""
        config = self.loader.stage_config('adapt_teacher')
        return self.train_stage(
            STANDIN_TEACHER, 'stand-in θ_T^0 (trained on D_l)', config,
            osp.join(self.spec.work_dir, STANDIN_TEACHER),
            self._iters('pretrain', config),
            ['load_from=None', f'randomness.seed={SHARED_STAGES_SEED}'])

    @staticmethod
    def standin_note(stage: Stage) -> str:
        return (f'θ_T^0: no --pretrained-teacher, so a stand-in is trained '
                f'from scratch on the labeled split D_l ({stage.config}, '
                f'{stage.max_iters} iterations) -> {stage.final}; with no '
                'foundation model behind it, expect little from the teacher '
                'stages')

    @staticmethod
    def student_init_options(plan: Plan, model: str) -> List[str]:
        """``--student-init source-pretrained``: the options that load the
        pre-trained backbone into the student at ``model`` (e.g.
        ``'model.student'``); none by default."""
        if plan.student_backbone is None:
            return []
        key = f'{model}.backbone.init_cfg'
        return [f'{key}._delete_=True', f'{key}.type=Pretrained',
                f'{key}.checkpoint={plan.student_backbone}',
                f'{key}.prefix=backbone.']

    def seed_stages(self, seed: int, plan: Plan,
                    iters: List[int]) -> List[Stage]:
        """The stages of one seed, in order: θ_T^0 tested, 1a, 1b, 2, 3, the
        labels-only baseline and Guided Distillation."""
        wd = osp.join(self.spec.work_dir, f'seed{seed}')
        it_1a, it_1b, it_2, it_3 = iters
        teacher0 = plan.teacher0

        def opts(name: str, config: str) -> List[str]:
            return [f'randomness.seed={seed}'] + self.eval_options(
                wd, name, config)

        def train(key: str, name: str, max_iters: int, options: List[str],
                  pseudo_labels: Optional[str] = None) -> Stage:
            config = self.loader.stage_config(key)
            out_file = None
            if pseudo_labels is not None:
                out_file = osp.join(wd, 'pseudo_labels',
                                    f'{pseudo_labels}.json')
                options = pseudo_label_options(
                    self.loader.config_file(config), out_file) + options
            return self.train_stage(key, name, config, osp.join(wd, key),
                                    max_iters, opts(key, config) + options,
                                    pseudo_label_file=out_file)

        adapt_cfg = self.loader.stage_config('adapt_teacher')
        stage_1a = train('adapt_teacher', 'stage 1a', it_1a,
                         [f'load_from={teacher0}'])
        stage_1b = train('adapt_teacher_selftrain', 'stage 1b', it_1b, [
            f'model.student.init_cfg.checkpoint={teacher0}',
            f'model.teacher_checkpoint={stage_1a.final}'
        ], pseudo_labels='stage1b')
        distill_teacher = dict(
            selftrained=stage_1b.final, adapted=stage_1a.final,
            ensemble=f'[{stage_1a.final},{stage_1b.final}]')
        stage_2 = train('distill', 'stage 2', it_2, [
            'model.teacher_checkpoint='
            f'{distill_teacher[self.spec.distill_teacher]}'
        ] + self.student_init_options(plan, 'model.student'),
                        pseudo_labels='stage2')
        stage_3 = train('finetune', 'stage 3', it_3,
                        [f'model.init_cfg.checkpoint={stage_2.final}'])
        baseline = train('supervised_student', 'baseline', it_2 + it_3,
                         self.student_init_options(plan, 'model'))
        stages = []
        if self.spec.cast:
            stages = [
                self.test_stage('teacher_pretrained', adapt_cfg, teacher0,
                                osp.join(wd, 'teacher_pretrained'),
                                opts('teacher_pretrained', adapt_cfg)),
                stage_1a, stage_1b, stage_2, stage_3
            ]
        stages.append(baseline)
        if 'gd' in self.spec.methods:
            stages.append(self.gd_stage(wd, baseline, plan, opts))
        for stage in stages:
            stage.seed = seed
        return stages

    def gd_stage(self, wd: str, baseline: Stage, plan: Plan,
                 opts: Callable[[str, str], List[str]]) -> Stage:
        """Guided Distillation from the seed's baseline (its supervised
        teacher), for its config's iterations and burn-in (Cityscapes:
        the paper's 90k / 50k); a baseline shortened or lengthened
        (``--iters``) scales both alike, a length of its own
        (``train_cfg.max_iters`` in the options) scales the burn-in."""
        key = 'guided_distillation'
        config = self.loader.stage_config(key)
        cfg = self.loader.config_file(config)
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
            key, 'Guided Distillation', config, osp.join(wd, key),
            max_iters, opts(key, config) + [
                f'model.teacher_checkpoint={baseline.final}',
                hook_option(cfg, 'GuidedTeacherHook', 'burn_in_iters',
                            burn_in)
            ] + self.student_init_options(plan, 'model.student'))

    def _iters(self, name: str, config: str) -> int:
        """Iterations of stage ``name``: ``--iters`` or its config's."""
        return self.spec.iters.get(name) or self.loader.config_iters(config)

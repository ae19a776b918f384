# Copyright (c) mmcast contributors. All rights reserved.
"""The stage graph as data: the stages of the run (θ_T^0 or its stand-in,
the students' backbone, then per seed 1a, 1b, 2, 3, the baseline and
Guided Distillation), each with its config, options and iterations."""
import os.path as osp
from typing import Dict, List, Optional, Tuple

from ..config_handoffs import (config_value, evaluator_options, find_item,
                               hook_option, pseudo_label_options)
from .labeled_split import check_split_name, labeled_split_options
from .settings import (CUSTOM_CONFIG_DIR, GD_CONFIGS, ITERS_ALIASES,
                       ITERS_STAGES, PROGRESS_RECORDS, SHARED_STAGES_SEED,
                       SPLIT_DATASETS, STANDIN_TEACHER, STUDENT_FOUNDATION,
                       STUDENT_PRETRAIN_CONFIG, TEACHER_STAGES, config_path)
from .stage import Stage


def given_max_iters(options: List[str]) -> Optional[int]:
    """The last ``train_cfg.max_iters=N`` of ``options``, or ``None``."""
    found = None
    for option in options:
        key, _, value = option.partition('=')
        if key.strip() == 'train_cfg.max_iters' and value.strip().isdigit():
            found = int(value)
    return found


class StagePlanning:
    """The stage graph as data: the stages of the run (θ_T^0 or its stand-in,
    the students' backbone, then per seed 1a, 1b, 2, 3, the baseline and
    Guided Distillation), each with its config, options and iterations.

    A part of :class:`~mmcast.apis.pipeline.CASTPipeline`; it uses the
    attributes that class sets.
    """

    def stage_config(self, stage: str) -> str:
        """The config of ``stage`` for this dataset and teacher."""
        suffix = self.teacher_cfg['suffix'] if stage in TEACHER_STAGES else ''
        folder = f'{CUSTOM_CONFIG_DIR}/' if self.custom else ''
        return config_path(f'{folder}{stage}_{self.ds}{suffix}')

    def train_stage(self, key: str, name: str, config: str, work_dir: str,
                    max_iters: int, options: List[str]) -> Stage:
        """A training stage of ``max_iters`` with its complete options (the
        run's instance capacity before ``--cfg-options``); its json log gets
        a record at least every ``max_iters /`` :data:`PROGRESS_RECORDS`
        iterations (the progress lines).

        A ``train_cfg.max_iters`` of the command line's options
        (``--cfg-options``, ``--stage-cfg-options``) is the stage's length,
        so that its final checkpoint, which the next stage loads, is the one
        it writes. The stage reads ``--labeled-split`` and gets the batch
        and lr of the run's GPU count
        (:meth:`~mmcast.apis.pipeline.batch_plan.BatchPlanning.apply_batch`).
        """
        interval = self.config_file(config).default_hooks.logger.interval
        given = self.args.cfg_options + self.stage_options.get(key, [])
        max_iters = given_max_iters(given) or max_iters
        opts = [
            f'train_cfg.max_iters={max_iters}',
            f'train_cfg.val_interval={max_iters}',
            f'param_scheduler.end={max_iters}',
            f'default_hooks.checkpoint.interval={max(max_iters // 4, 1)}',
            'default_hooks.logger.interval='
            f'{max(1, min(interval, max_iters // PROGRESS_RECORDS))}',
        ] + self.split_options(config) + options + \
            self.stage_capacity_options(config) + given
        stage = Stage(key, name, config, work_dir, opts, max_iters=max_iters)
        self.apply_batch(stage)
        return stage

    def split_options(self, config: str) -> List[str]:
        """The options that make ``config`` read ``--labeled-split``
        (:mod:`~mmcast.apis.pipeline.labeled_split`); none without it."""
        split = self.args.labeled_split
        if split is None:
            return []
        if self.ds not in SPLIT_DATASETS:
            raise SystemExit(
                f'--labeled-split is for {", ".join(SPLIT_DATASETS)}, not '
                f'{self.ds}' + (' (your own dataset: --percent and '
                                '--split-seed)' if self.custom else ''))
        check_split_name(split)
        return labeled_split_options(self.config_file(config), split)

    def test_stage(self, key: str, config: str, checkpoint: str,
                   work_dir: str, options: List[str]) -> Stage:
        """A stage that evaluates ``checkpoint`` with ``config``."""
        return Stage(key, key, config, work_dir,
                     options + self.stage_capacity_options(config) +
                     self.args.cfg_options + self.stage_options.get(key, []),
                     checkpoint=checkpoint)

    def eval_options(self, seed_dir: str, key: str,
                     config: str) -> List[str]:
        """Evaluator overrides that write a stage's files under ``seed_dir``.

        ``CocoMetric`` writes the predictions on val to
        :meth:`predictions_file` (for the split-half noise of the results
        table). A ``CityScapesMetric`` (toy and Cityscapes configs) writes
        (and first deletes) a folder: each stage gets its own,
        ``<seed dir>/cityscapes_metric/<key>`` (a run by hand gets
        ``<work_dir>/cityscapes_metric/`` from ``MetricOutputHook``). The
        metrics are found in ``config`` by type.
        """
        coco = self.predictions_file(seed_dir, key)[:-len('.segm.json')]
        return evaluator_options(
            self.config_file(config), coco,
            osp.join(seed_dir, 'cityscapes_metric', key))

    @staticmethod
    def predictions_file(seed_dir: str, key: str) -> str:
        """The COCO results json of stage ``key`` on val."""
        return osp.join(seed_dir, 'predictions', f'{key}.segm.json')

    def toy_pretrain_stage(self, key: str, name: str, config: str,
                           folder: str, pretrain_iters: int) -> Stage:
        """A model pre-trained on the toy source corpus (θ_T^0, or the
        students' backbone), cached in ``<work-dir>/<folder>``."""
        options = [f'randomness.seed={SHARED_STAGES_SEED}']
        if self.args.data_root:
            source = self.toy_source_root + '/'
            val_ann = (source +
                       'annotations/instancesonly_filtered_gtFine_val.json')
            options += [
                f'train_dataloader.dataset.data_root={source}',
                f'val_dataloader.dataset.data_root={source}',
                f'test_dataloader.dataset.data_root={source}',
                f'val_evaluator.ann_file={val_ann}',
                f'test_evaluator.ann_file={val_ann}',
            ]
        return self.train_stage(key, name, config,
                                osp.join(self.work_dir, folder),
                                pretrain_iters, options)

    def student_init_options(self, model: str) -> List[str]:
        """``--student-init source-pretrained``: the options that load the
        pre-trained backbone into the student at ``model`` (e.g.
        ``'model.student'``); none by default."""
        if self.student_backbone is None:
            return []
        key = f'{model}.backbone.init_cfg'
        return [f'{key}._delete_=True', f'{key}.type=Pretrained',
                f'{key}.checkpoint={self.student_backbone}',
                f'{key}.prefix=backbone.']

    def seed_stages(self, seed: int, teacher0: str,
                    iters: List[int]) -> List[Stage]:
        """The stages of one seed, in order: θ_T^0 tested, 1a, 1b, 2, 3 and
        the labels-only baseline."""
        wd = osp.join(self.work_dir, f'seed{seed}')
        it_1a, it_1b, it_2, it_3 = iters
        pseudo = osp.join(wd, 'pseudo_labels')

        def pseudo_opts(name: str, key: str) -> List[str]:
            return pseudo_label_options(
                self.config_file(self.stage_config(key)),
                osp.join(pseudo, f'{name}.json'))

        def opts(name: str, config: str) -> List[str]:
            return [f'randomness.seed={seed}'] + self.eval_options(
                wd, name, config)

        def train(key: str, name: str, max_iters: int,
                  options: List[str]) -> Stage:
            config = self.stage_config(key)
            return self.train_stage(key, name, config, osp.join(wd, key),
                                    max_iters, opts(key, config) + options)

        adapt_cfg = self.stage_config('adapt_teacher')
        stage_1a = train('adapt_teacher', 'stage 1a', it_1a,
                         [f'load_from={teacher0}'])
        stage_1b = train(
            'adapt_teacher_selftrain', 'stage 1b', it_1b,
            pseudo_opts('stage1b', 'adapt_teacher_selftrain') + [
                f'model.student.init_cfg.checkpoint={teacher0}',
                f'model.teacher_checkpoint={stage_1a.final}'
            ])
        stage_2 = train('distill', 'stage 2', it_2,
                        pseudo_opts('stage2', 'distill') +
                        [f'model.teacher_checkpoint={stage_1b.final}'] +
                        self.student_init_options('model.student'))
        stage_3 = train('finetune', 'stage 3', it_3,
                        [f'model.init_cfg.checkpoint={stage_2.final}'])
        baseline = train('supervised_student', 'baseline', it_2 + it_3,
                         self.student_init_options('model'))
        stages = []
        if 'cast' in self.args.methods:
            stages = [
                self.test_stage('teacher_pretrained', adapt_cfg, teacher0,
                                osp.join(wd, 'teacher_pretrained'),
                                opts('teacher_pretrained', adapt_cfg)),
                stage_1a, stage_1b, stage_2, stage_3
            ]
        stages.append(baseline)
        if 'gd' in self.args.methods:
            stages.append(self.gd_stage(wd, baseline, opts))
        for stage in stages:
            stage.seed = seed
        return stages

    def gd_stage(self, wd: str, baseline: Stage, opts) -> Stage:
        """Guided Distillation from the seed's baseline (its supervised
        teacher), for its config's iterations and burn-in (Cityscapes:
        the paper's 90k / 50k); a baseline shortened or lengthened
        (``--iters``) scales both alike, a length of its own
        (``train_cfg.max_iters`` in the options) scales the burn-in."""
        if self.ds not in GD_CONFIGS:
            raise SystemExit(f'no Guided Distillation config for {self.ds!r} '
                             f'(have: {", ".join(sorted(GD_CONFIGS))})')
        key = 'guided_distillation'
        config = config_path(GD_CONFIGS[self.ds])
        cfg = self.config_file(config)
        hook = find_item(cfg, 'custom_hooks', 'GuidedTeacherHook')
        own = cfg.train_cfg.max_iters
        scale = baseline.max_iters / self._config_iters(
            self.stage_config('supervised_student'))
        max_iters = given_max_iters(
            self.args.cfg_options + self.stage_options.get(key, [])) or max(
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
            ] + self.student_init_options('model.student'))

    def plan(self) -> Tuple[List[Stage], Dict[int, List[Stage]]]:
        """The stages before the seeds (θ_T^0 or its stand-in, the students'
        backbone) and those of each seed."""
        first: List[Stage] = []
        teacher0 = None  # θ_T^0: CAST only
        cast = 'cast' in self.args.methods
        if cast and self.ds == 'toy':
            pretrain_config = self.teacher_cfg['toy_pretrain_config']
            first.append(self.toy_pretrain_stage(
                'toy_foundation', 'teacher pre-training (source corpus)',
                pretrain_config, self.teacher_cfg['toy_foundation'],
                self._iters('pretrain', pretrain_config)))
            teacher0 = first[0].final
        elif cast and self.args.pretrained_teacher:
            teacher0 = osp.abspath(self.args.pretrained_teacher)
        elif cast and self.ds == 'custom-cpu':
            first.append(self.standin_teacher_stage())
            teacher0 = first[0].final
        elif cast:
            raise SystemExit('--pretrained-teacher is required for '
                             f'{self.ds!r}: the θ_T^0 checkpoint')
        if self.args.student_init == 'source-pretrained':
            first.append(self.toy_pretrain_stage(
                STUDENT_FOUNDATION, 'student backbone pre-training '
                '(source corpus)', STUDENT_PRETRAIN_CONFIG, STUDENT_FOUNDATION,
                self._iters('pretrain', STUDENT_PRETRAIN_CONFIG)))
            self.student_backbone = first[-1].final
        stage_iters = [self._iters(name, self.stage_config(name)) for name in
                       ITERS_STAGES[1:]]
        return first, {s: self.seed_stages(s, teacher0, stage_iters)
                       for s in self.args.seeds}

    def standin_teacher_stage(self) -> Stage:
        """custom-cpu without ``--pretrained-teacher``: θ_T^0 is the stage-1a
        config trained from scratch on D_l (no foundation model: the
        teacher stages then start from weights that saw only D_l)."""
        config = self.stage_config('adapt_teacher')
        stage = self.train_stage(
            STANDIN_TEACHER, 'stand-in θ_T^0 (trained on D_l)', config,
            osp.join(self.work_dir, STANDIN_TEACHER),
            self._iters('pretrain', config),
            ['load_from=None', f'randomness.seed={SHARED_STAGES_SEED}'])
        print(f'θ_T^0: no --pretrained-teacher, so a stand-in is trained from '
              f'scratch on the labeled split D_l ({config}, '
              f'{stage.max_iters} iterations) -> {stage.final}; with no '
              'foundation model behind it, expect little from the teacher '
              'stages', flush=True)
        return stage

    def parse_iters(self) -> Dict[str, int]:
        """``--iters`` as ``{stage: iterations}`` (:data:`ITERS_STAGES`).

        ``STAGE=N`` items name their stage (or an alias of
        :data:`ITERS_ALIASES`); five plain numbers are the former positional
        form, where 0 stands for a stage the run does not have. A stage the
        run does not have is an error, not ignored.
        """
        items = self.args.iters or []
        if items and all(i.lstrip('-').isdigit() for i in items):
            if len(items) != len(ITERS_STAGES):
                raise SystemExit(
                    f'--iters {" ".join(items)}: give STAGE=N items (e.g. '
                    '--iters distill=1600 finetune=400) or the five values '
                    'of ' + ', '.join(ITERS_STAGES))
            named = {k: int(v) for k, v in zip(ITERS_STAGES, items)
                     if int(v) != 0 or k in self.planned_iters()}
        else:
            named = {}
            for item in items:
                name, sep, value = item.partition('=')
                name = ITERS_ALIASES.get(name, name)
                if not sep or name not in ITERS_STAGES or \
                        not value.isdigit():
                    raise SystemExit(
                        f'--iters {item!r}: expected STAGE=N with STAGE one '
                        f'of {", ".join(ITERS_STAGES)} (or '
                        f'{", ".join(ITERS_ALIASES)}) and N a whole number')
                named[name] = int(value)
        for name, value in named.items():
            if name not in self.planned_iters():
                raise SystemExit(
                    f'--iters: this run has no {name} stage ({self.ds}, '
                    f'--methods {" ".join(self.args.methods)}' +
                    (', --pretrained-teacher' if self.args.pretrained_teacher
                     else '') + '): leave it out' +
                    (' (or give 0 in the positional form)'
                     if name == 'pretrain' else ''))
            if value < 1:
                raise SystemExit(f'--iters {name}={value}: at least 1')
        return named

    def planned_iters(self) -> Tuple[str, ...]:
        """The :data:`ITERS_STAGES` this run trains."""
        cast = 'cast' in self.args.methods
        pretrain = self.args.student_init != 'random' or cast and (
            self.ds == 'toy' or self.ds == 'custom-cpu' and
            not self.args.pretrained_teacher)
        return (('pretrain', ) if pretrain else ()) + (
            ITERS_STAGES[1:] if cast else ('distill', 'finetune'))

    def _iters(self, name: str, config: str) -> int:
        """Iterations of stage ``name``: ``--iters`` or its config's."""
        return self.iters.get(name) or self._config_iters(config)

    def _config_iters(self, path: str) -> int:
        return self.config_file(path).train_cfg.max_iters

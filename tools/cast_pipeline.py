# Copyright (c) mmcast contributors. All rights reserved.
"""Run the three CAST stages end to end for a dataset, resumably.

Stage 1a (adapt the teacher on D_l) → pseudo-labels → stage 1b (re-initialise
the teacher, self-train on D_l ∪ pseudo(D_u)) → pseudo-labels → stage 2
(distil into the student) → stage 3 (fine-tune the student on D_l), plus the
labels-only student baseline with as many iterations as stages 2 + 3. Each
stage is ``mim train mmdet configs/mmcast/<stage>_<dataset>.py`` (or
``torchrun ... --launcher pytorch`` with ``--nproc``); the pseudo-labels are
made by each stage's ``PseudoLabelHook``. Finished stages are skipped, a
stage that was killed is resumed with ``--resume``. The results table
(markdown + json) has the mask AP / AP50 of the teacher before and after
adaptation, the student after stages 2 and 3 and the baseline.

Examples::

    # the toy data (generated here; the "foundation model" stand-in is
    # pre-trained on a domain-shifted toy corpus and cached)
    python tools/cast_pipeline.py toy --work-dir work_dirs/cast_toy --seeds 0 1
    # Cityscapes, 10 % labels, from a pre-trained teacher checkpoint
    python tools/cast_pipeline.py cityscapes --work-dir work_dirs/cast_cs \\
        --pretrained-teacher checkpoints/mask2former_swin-l_coco.pth
"""
import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys
from typing import Dict, List, Optional

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOY_PRETRAIN_CONFIG = 'configs/mmcast/toy/mask2former_r34_source-pretrain_toy.py'
METRICS = {'segm_AP': 'coco/segm_mAP', 'segm_AP50': 'coco/segm_mAP_50'}
ROWS = [
    ('supervised_student', 'student, labels only (baseline)'),
    ('teacher_pretrained', 'teacher before adaptation (θ_T^0)'),
    ('adapt_teacher', 'teacher after stage 1a (θ_T\')'),
    ('adapt_teacher_selftrain', 'teacher after stage 1b (θ_T\'\')'),
    ('distill', 'CAST student after stage 2'),
    ('finetune', 'CAST student after stage 3'),
]


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('dataset', help='toy, cityscapes, ade20k or coco: '
                        'uses configs/mmcast/<stage>_<dataset>.py')
    parser.add_argument('--work-dir', required=True)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0])
    parser.add_argument(
        '--pretrained-teacher',
        help='θ_T^0 checkpoint (toy: made here from the source corpus)')
    parser.add_argument(
        '--iters', type=int, nargs=5, metavar='N',
        help='override max_iters of: teacher pre-training (toy), 1a, 1b, '
        '2, 3 (the baseline gets 2 + 3)')
    parser.add_argument('--nproc', type=int, default=1,
                        help='processes per stage (torchrun, launcher pytorch)')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='extra key=value overrides for every stage')
    parser.add_argument('--toy-sizes', type=int, nargs=3, default=[200, 50, 300],
                        metavar=('TRAIN', 'VAL', 'SOURCE'),
                        help='toy target train/val and source-corpus images')
    return parser.parse_args(argv)


def config_path(name: str) -> str:
    """``configs/mmcast/<name>.py``, with an error naming a missing file."""
    path = osp.join('configs', 'mmcast', f'{name}.py')
    if not osp.isfile(osp.join(REPO_ROOT, path)):
        raise FileNotFoundError(f'no config {path} for this dataset')
    return path


def last_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint MMEngine's ``last_checkpoint`` file points to."""
    marker = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(marker):
        return None
    with open(marker, encoding='utf-8') as f:
        path = f.read().strip()
    return path if osp.isfile(path) else None


def read_metrics(work_dir: str) -> Dict[str, float]:
    """The last COCO mask metrics logged in ``work_dir`` (×100)."""
    for path in sorted(glob.glob(osp.join(work_dir, '*', '**', '*.json'),
                                 recursive=True), key=osp.getmtime, reverse=True):
        with open(path, encoding='utf-8') as f:
            records = [json.loads(ln) for ln in f if ln.strip().startswith('{')]
        for rec in reversed(records):
            if METRICS['segm_AP'] in rec:
                return {k: round(100 * rec[v], 1) for k, v in METRICS.items()}
    raise RuntimeError(f'no {METRICS["segm_AP"]} logged under {work_dir}')


class Pipeline:
    """The stages of one dataset, run through stock MMDet entry points."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.ds = args.dataset
        self.work_dir = osp.abspath(args.work_dir)
        os.makedirs(self.work_dir, exist_ok=True)

    # -- launching --------------------------------------------------------
    def _command(self, mode: str, config: str, work_dir: str,
                 extra: List[str]) -> List[str]:
        if self.args.nproc > 1:
            import mmdet
            script = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools',
                              f'{mode}.py')
            return [sys.executable, '-m', 'torch.distributed.run',
                    f'--nproc_per_node={self.args.nproc}', script, config,
                    '--launcher', 'pytorch', '--work-dir', work_dir] + extra
        mim = osp.join(osp.dirname(sys.executable), 'mim')
        return [mim, mode, 'mmdet', config, '--work-dir', work_dir] + extra

    def _run(self, cmd: List[str], log_file: str) -> None:
        print('$ ' + ' '.join(cmd), flush=True)
        with open(log_file, 'a', encoding='utf-8') as log:
            proc = subprocess.run(cmd, cwd=REPO_ROOT, stdout=log,
                                  stderr=subprocess.STDOUT)
        if proc.returncode != 0:
            raise RuntimeError(f'stage failed (exit {proc.returncode}); '
                               f'see {log_file}')

    def train(self, name: str, config: str, work_dir: str, max_iters: int,
              options: List[str]) -> str:
        """Train one stage (skip if done, resume if killed) → checkpoint."""
        final = osp.join(work_dir, f'iter_{max_iters}.pth')
        # MMEngine writes last_checkpoint only after a checkpoint is saved
        # whole, so a run killed while saving its last one is not "done".
        if last_checkpoint(work_dir) == final:
            print(f'[{name}] done: {final}', flush=True)
            return final
        os.makedirs(work_dir, exist_ok=True)
        extra = ['--resume'] if last_checkpoint(work_dir) else []
        opts = [
            f'train_cfg.max_iters={max_iters}',
            f'train_cfg.val_interval={max_iters}',
            f'param_scheduler.end={max_iters}',
            f'default_hooks.checkpoint.interval={max(max_iters // 4, 1)}',
        ] + options + self.args.cfg_options
        print(f'[{name}] training {config} for {max_iters} iterations'
              + (' (resumed)' if extra else ''), flush=True)
        self._run(
            self._command('train', config, work_dir,
                          extra + ['--cfg-options'] + opts),
            osp.join(work_dir, 'pipeline.log'))
        return final

    def test(self, name: str, config: str, checkpoint: str, work_dir: str,
             options: List[str]) -> None:
        """Evaluate ``checkpoint`` with ``mim test`` into ``work_dir``."""
        os.makedirs(work_dir, exist_ok=True)
        self._run(
            self._command('test', config, work_dir,
                          ['--checkpoint', checkpoint, '--cfg-options'] +
                          options + self.args.cfg_options),
            osp.join(work_dir, 'pipeline.log'))

    # -- data and the toy foundation model --------------------------------
    def prepare_toy(self, pretrain_iters: int) -> str:
        """Toy target data, its 10 % split and the cached θ_T^0."""
        from mmcast.datasets.semi_split import write_split
        from mmcast.datasets.toy_scenes import make_toy_dataset

        n_train, n_val, n_source = self.args.toy_sizes
        for root, style, train, val in (('data/toy', 'target', n_train, n_val),
                                        ('data/toy_source', 'source',
                                         n_source, n_val)):
            meta = osp.join(REPO_ROOT, root, 'toy_meta.json')
            if not (osp.isfile(meta) and json.load(open(meta)).get('complete')
                    and json.load(open(meta)).get('num_train') == train):
                print(f'generating {root} ({style} style)', flush=True)
                make_toy_dataset(osp.join(REPO_ROOT, root), num_train=train,
                                 num_val=val, seed=0, style=style)
        ann_dir = osp.join(REPO_ROOT, 'data/toy/annotations')
        write_split(osp.join(ann_dir, 'instancesonly_filtered_gtFine_train.json'),
                    osp.join(ann_dir, 'semi'), seed=1, percent=10)
        return self.train(
            'teacher pre-training (source corpus)',
            TOY_PRETRAIN_CONFIG, osp.join(self.work_dir, 'toy_foundation'),
            pretrain_iters, [])

    # -- one seed -----------------------------------------------------------
    def run_seed(self, seed: int, teacher0: str, iters: List[int]) -> Dict:
        wd = osp.join(self.work_dir, f'seed{seed}')
        seed_opt = [f'randomness.seed={seed}']
        it_1a, it_1b, it_2, it_3 = iters
        pseudo = osp.join(wd, 'pseudo_labels')
        results_file = osp.join(wd, 'results.json')
        results = json.load(open(results_file)) if osp.isfile(results_file) else {}

        def record(key: str, work_dir: str) -> None:
            if key not in results:
                results[key] = read_metrics(work_dir)
                with open(results_file + '.tmp', 'w', encoding='utf-8') as f:
                    json.dump(results, f, indent=2, sort_keys=True)
                os.replace(results_file + '.tmp', results_file)
            print(f'[{key}] mask AP {results[key]["segm_AP"]}', flush=True)

        def pseudo_opts(name: str) -> List[str]:
            out = osp.join(pseudo, f'{name}.json')
            return [f'train_dataloader.dataset.datasets.1.ann_file={out}',
                    f'custom_hooks.0.out_file={out}']

        adapt_cfg = config_path(f'adapt_teacher_{self.ds}')
        if 'teacher_pretrained' not in results:
            self.test('teacher_pretrained', adapt_cfg, teacher0,
                      osp.join(wd, 'teacher_pretrained'), seed_opt)
        record('teacher_pretrained', osp.join(wd, 'teacher_pretrained'))

        ckpt_1a = self.train('stage 1a', adapt_cfg, osp.join(wd, 'adapt_teacher'),
                             it_1a, seed_opt + [f'load_from={teacher0}'])
        record('adapt_teacher', osp.join(wd, 'adapt_teacher'))
        ckpt_1b = self.train(
            'stage 1b', config_path(f'adapt_teacher_selftrain_{self.ds}'),
            osp.join(wd, 'adapt_teacher_selftrain'), it_1b,
            seed_opt + pseudo_opts('stage1b') + [
                f'model.student.init_cfg.checkpoint={teacher0}',
                f'model.teacher_checkpoint={ckpt_1a}'
            ])
        record('adapt_teacher_selftrain', osp.join(wd, 'adapt_teacher_selftrain'))
        ckpt_2 = self.train(
            'stage 2', config_path(f'distill_{self.ds}'), osp.join(wd, 'distill'),
            it_2, seed_opt + pseudo_opts('stage2') +
            [f'model.teacher_checkpoint={ckpt_1b}'])
        record('distill', osp.join(wd, 'distill'))
        self.train('stage 3', config_path(f'finetune_{self.ds}'),
                   osp.join(wd, 'finetune'), it_3,
                   seed_opt + [f'model.init_cfg.checkpoint={ckpt_2}'])
        record('finetune', osp.join(wd, 'finetune'))
        self.train('baseline', config_path(f'supervised_student_{self.ds}'),
                   osp.join(wd, 'supervised_student'), it_2 + it_3, seed_opt)
        record('supervised_student', osp.join(wd, 'supervised_student'))
        return results

    def run(self) -> Dict:
        iters = self.args.iters
        if self.ds == 'toy':
            teacher0 = self.prepare_toy(
                iters[0] if iters else self._config_iters(TOY_PRETRAIN_CONFIG))
        elif self.args.pretrained_teacher:
            teacher0 = self.args.pretrained_teacher
        else:
            raise SystemExit('--pretrained-teacher is required for '
                             f'{self.ds!r}: the θ_T^0 checkpoint')
        if not osp.isfile(teacher0):
            raise FileNotFoundError(f'pretrained teacher not found: {teacher0}')
        stage_iters = list(iters[1:]) if iters else [
            self._config_iters(config_path(f'{name}_{self.ds}')) for name in
            ('adapt_teacher', 'adapt_teacher_selftrain', 'distill', 'finetune')
        ]
        per_seed = {s: self.run_seed(s, teacher0, stage_iters)
                    for s in self.args.seeds}
        self.write_table(per_seed)
        return per_seed

    @staticmethod
    def _config_iters(path: str) -> int:
        from mmengine.config import Config
        return Config.fromfile(osp.join(REPO_ROOT, path)).train_cfg.max_iters

    def write_table(self, per_seed: Dict[int, Dict]) -> None:
        """Write ``results.md`` / ``results.json`` and print the table."""
        seeds = sorted(per_seed)
        lines = [
            f'# CAST on {self.ds}: mask AP / AP50 (COCO-style, ×100)', '',
            '| model | ' + ' | '.join(f'seed {s}' for s in seeds) + ' | mean AP |',
            '|---|' + '---|' * (len(seeds) + 1)
        ]
        summary = {}
        for key, label in ROWS:
            cells = [per_seed[s][key] for s in seeds]
            mean = round(sum(c['segm_AP'] for c in cells) / len(cells), 2)
            summary[key] = dict(mean_segm_AP=mean, per_seed=dict(zip(seeds, cells)))
            lines.append(f'| {label} | ' + ' | '.join(
                f'{c["segm_AP"]} / {c["segm_AP50"]}' for c in cells) + f' | {mean} |')
        gain = round(summary['finetune']['mean_segm_AP'] -
                     summary['supervised_student']['mean_segm_AP'], 2)
        lines += ['', f'CAST student (stage 3) − labels-only student: {gain:+} mask AP']
        table = '\n'.join(lines) + '\n'
        with open(osp.join(self.work_dir, 'results.md'), 'w', encoding='utf-8') as f:
            f.write(table)
        with open(osp.join(self.work_dir, 'results.json'), 'w', encoding='utf-8') as f:
            json.dump(dict(dataset=self.ds, seeds=seeds, rows=summary,
                           stage3_minus_baseline=gain), f, indent=2)
        print(table, flush=True)


def main(argv: Optional[List[str]] = None) -> None:
    Pipeline(parse_args(argv)).run()


if __name__ == '__main__':
    main()

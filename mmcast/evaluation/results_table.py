# Copyright (c) mmcast contributors. All rights reserved.
"""The results table of a CAST run: mask AP / AP50 per seed, mean ± sd, the
split-half evaluation noise and the paired differences it claims."""
import collections
import os.path as osp
from typing import Dict, List, Optional

from mmcast.utils.atomic_io import atomic_dump_json, atomic_open
from .split_half import split_half_noise

ROWS = [
    ('supervised_student', 'student, labels only (baseline)'),
    ('teacher_pretrained', 'teacher before adaptation (θ_T^0)'),
    ('adapt_teacher', 'teacher after stage 1a (θ_T\')'),
    ('adapt_teacher_selftrain', 'teacher after stage 1b (θ_T\'\')'),
    ('distill', 'CAST student after stage 2'),
    ('finetune', 'CAST student after stage 3'),
    ('guided_distillation', 'Guided Distillation student'),
]
ROW_NAMES = {
    'supervised_student': 'labels-only student',
    'adapt_teacher_selftrain': 'adapted teacher θ_T\'\'',
    'finetune': 'CAST student (stage 3)',
    'guided_distillation': 'Guided Distillation student',
}
# The differences the table claims, (row, reference row), paired per seed.
CLAIMS = [
    ('finetune', 'supervised_student'),
    ('guided_distillation', 'supervised_student'),
    ('finetune', 'adapt_teacher_selftrain'),  # the paper's headline
]
NOISE_SPLITS = 50  # random val halves of the split-half standard errors
# A seed's CAST chain, whose processor seconds the table's footer sums: the
# teacher's adaptation (with its pseudo-labelling), distillation (with its
# pseudo-labelling), fine-tuning and the labels-only baseline beside them.
CHAIN_ROWS = ('adapt_teacher', 'adapt_teacher_selftrain', 'distill',
              'finetune', 'supervised_student')
# What each metric of the table is, in its title (stage.METRICS)
METRIC_NAMES = {'coco': 'COCO-style', 'cityscapes': 'cityscapesscripts'}
# Where a resumed stage trained, in the table's line naming it
_RESUMED_ON = dict(cpu=' on a CPU', cuda=' on a GPU')


def claims_noise(prediction_files: Dict[str, str], gt_file: str,
                 seed: int) -> Dict:
    """Split-half standard errors of one seed's rows and of the
    differences the table claims (:data:`CLAIMS`), from the rows' COCO
    results files on val (see :func:`split_half_noise`); ``{}`` without
    files or ground truth."""
    files = {k: f for k, f in prediction_files.items() if osp.isfile(f)}
    pairs = [p for p in CLAIMS if p[0] in files and p[1] in files]
    if not files or not osp.isfile(gt_file):
        return {}
    return split_half_noise(gt_file, files, pairs, NOISE_SPLITS, seed)


def write_results_table(per_seed: Dict[int, Dict], out_dir: str,
                        dataset: str, methods: str, teacher: str = '',
                        noise: Optional[Dict[int, Dict]] = None,
                        metric: str = 'coco',
                        distill_teacher: str = '',
                        ablation: Optional[Dict] = None,
                        student: str = '',
                        pretraining_cost: Optional[Dict[str, Dict]] = None
                        ) -> Dict:
    """Write ``results.md`` / ``results.json`` into ``out_dir``, print the
    table and return the json's content.

    Args:
        per_seed (dict): ``{seed: {row key: dict(segm_AP, segm_AP50)}}``
            (rows: :data:`ROWS`).
        out_dir (str): The run's work dir.
        dataset (str): Its name, in the title and the json.
        methods (str): e.g. ``'CAST and Guided Distillation'``.
        teacher (str): A teacher other than the default (title and json).
        noise (dict, optional): ``{seed: split_half_noise(...)}`` of the
            rows and :data:`CLAIMS` (see :func:`claims_noise`).
        metric (str): The metric of ``segm_AP`` / ``segm_AP50``
            (:data:`METRIC_NAMES`); for another than ``'coco'`` the rows
            also hold the COCO-style ``coco_segm_AP`` / ``coco_segm_AP50``,
            shown (mean over the seeds) in a last column.
        distill_teacher (str): Stage 2's teacher where it is not θ_T''
            (title and json), e.g. ``"θ_T' + θ_T''"``.
        student (str): Another student than the recipe's (``--student``):
            named in the title and kept in the json as ``student``.
        ablation (dict, optional): The row of an ablation table the run is
            (:meth:`~mmcast.apis.pipeline.ablations.AblationRow.record`):
            named in the title and kept in the json as ``ablation``.
        pretraining_cost (dict, optional): ``{stage: dict(cpu_s, ...)}``
            of the stages before the seeds (θ_T^0's and the students'
            pre-trainings), summed in the footer and kept in the json as
            ``pretraining_cpu_s`` (and by stage under ``cost``).

    Each row: mask AP / AP50 per seed, mean ± standard deviation over
    the seeds, and the evaluation noise: the split-half standard error
    of a seed's AP on the val images (mean over the seeds). The claimed
    differences (:data:`CLAIMS`) are paired per seed, with their mean ±
    standard deviation over the seeds and their split-half standard
    error (of the COCO-style AP: it comes from the COCO results files).
    With a teacher other than the default, the title names it and the json
    has a ``teacher`` key; so with another stage-2 teacher
    (``distill_teacher``).
    """
    seeds = sorted(per_seed)
    noise = noise or {}
    keys = [k for k, _ in ROWS if all(k in per_seed[s] for s in seeds)]
    n_val = next((n['num_images'] for n in noise.values() if n), None)
    second = metric != 'coco'
    lines = [
        f'# {methods} on {dataset}' +
        (f' (teacher: {teacher})' if teacher else '') +
        (f' (stage 2\'s teacher: {distill_teacher})'
         if distill_teacher else '') +
        (f' (student: {student})' if student else '') +
        (f' — ablation {ablation["table"]}: {ablation["label"]}'
         if ablation else '') +
        f': mask AP / AP50 ({METRIC_NAMES[metric]}, ×100)' +
        ('; last column COCO-style (pycocotools)' if second else ''),
        '',
        '| model | ' + ' | '.join(f'seed {s}' for s in seeds) +
        ' | mean ± sd AP | eval SE |' +
        (' COCO-style AP / AP50 (mean) |' if second else ''),
        '|---|' + '---|' * (len(seeds) + 2 + second)
    ]
    summary = {}
    for key, label in ROWS:
        if key not in keys:
            continue
        cells = [per_seed[s][key] for s in seeds]
        stats = spread([c['segm_AP'] for c in cells])
        ses = [noise[s]['models'][key]['se'] for s in seeds
               if key in noise.get(s, {}).get('models', {})]
        summary[key] = dict(
            mean_segm_AP=stats['mean'], std_segm_AP=stats['std'],
            per_seed=dict(zip(seeds, cells)))
        if ses:
            summary[key]['eval_se'] = dict(zip(seeds, _rounded(ses)))
        lines.append(f'| {label} | ' + ' | '.join(
            f'{c["segm_AP"]} / {c["segm_AP50"]}' for c in cells) +
            f' | {_pm(stats)} | ' +
            (f'{sum(ses) / len(ses):.1f}' if len(ses) == len(seeds)
             else '') + ' |' + (f' {_coco_means(cells)} |' if second else ''))
    gains = {}
    for key, ref in CLAIMS:
        if key not in summary or ref not in summary:
            continue
        diffs = [per_seed[s][key]['segm_AP'] - per_seed[s][ref]['segm_AP']
                 for s in seeds]
        stats = spread(diffs)
        name = f'{key} - {ref}'
        ses = [noise[s]['pairs'][name]['se'] for s in seeds
               if name in noise.get(s, {}).get('pairs', {})]
        gains[name] = dict(mean=stats['mean'], std=stats['std'],
                           per_seed=dict(zip(seeds, _rounded(diffs))))
        if len(ses) == len(seeds):
            gains[name]['eval_se'] = dict(zip(seeds, _rounded(ses)))
        per = ', '.join(
            signed(d, 1) + (f' ± {se:.1f}' if len(ses) == len(seeds)
                           else '') for d, se in
            zip(diffs, ses if len(ses) == len(seeds) else diffs))
        lines += ['', f'{ROW_NAMES[key]} − {ROW_NAMES[ref]}: '
                  f'{_pm(stats, sign=True)} mask AP (per seed' +
                  (' ± split-half SE' if len(ses) == len(seeds) else '') +
                  f': {per})']
    resumed = [(per_seed[s][k], f'{dict(ROWS)[k]} (seed {s}) at iteration '
                f'{per_seed[s][k]["resumed_from"]}') for k in keys
               for s in seeds if per_seed[s][k].get('resumed_from')]
    if resumed:
        lines += ['', 'resumed after a stop: ' + '; '.join(
            text + _RESUMED_ON.get(row.get('resumed_on'), '')
            for row, text in resumed) + ' (on a CPU a resumed stage ends '
            'bit for bit as the run it continues on the same processor '
            'model; on another model, or on a GPU, whose kernels are not '
            'all deterministic, it does not)']
    other_code = [f'{dict(ROWS)[k]} (seed {s}): {per_seed[s][k]["code"]}'
                  for k in keys for s in seeds if per_seed[s][k].get('code')]
    if other_code:
        lines += ['', 'kept though mmcast\'s code changed since they were '
                  'made (--redo-on-code-change makes them again): ' +
                  '; '.join(other_code)]
    monitors = _contrast_monitors(per_seed, keys)
    if monitors:
        lines += ['', 'L_pxl as the paper monitors it (mean over the seeds; '
                  'FNR: share of drawn negatives of the anchor\'s class, '
                  'after the first quarter of the iterations; Δ: mean '
                  'cosine distance of the negatives minus the positive\'s, '
                  'first → last quarter): ' + '; '.join(monitors)]
    cost = _cost(per_seed, keys, pretraining_cost or {})
    if cost['lines']:
        lines += ['', 'cost (user + system seconds of each stage\'s '
                  'processes, pseudo-labelling and evaluation included; '
                  'chain: 1a, 1b, 2, 3 and labels-only): ' +
                  '; '.join(cost['lines'])]
    if n_val:
        lines += ['', f'eval SE: split-half standard error of one seed\'s '
                  f'{"COCO-style " if second else ""}AP on the {n_val} val '
                  f'images ({NOISE_SPLITS} random halves); mean ± sd: over '
                  'the seeds.']
    table = '\n'.join(lines) + '\n'
    with atomic_open(osp.join(out_dir, 'results.md'), 'w',
                     encoding='utf-8') as f:
        f.write(table)
    result = dict(dataset=dataset, metric=metric)
    if teacher:
        result['teacher'] = teacher
    if distill_teacher:
        result['distill_teacher'] = distill_teacher
    if ablation:
        result['ablation'] = ablation
    if student:
        result['student'] = student
    result.update(seeds=seeds, rows=summary, differences=gains,
                  minus_baseline={
                      key: gains[f'{key} - supervised_student']
                      for key in ('finetune', 'guided_distillation')
                      if f'{key} - supervised_student' in gains})
    if n_val:
        result['eval_noise'] = dict(num_val_images=n_val,
                                    num_splits=NOISE_SPLITS)
    result.update(cost['json'])
    if 'finetune' in result['minus_baseline']:
        result['stage3_minus_baseline'] = \
            result['minus_baseline']['finetune']['mean']
    atomic_dump_json(result, osp.join(out_dir, 'results.json'), indent=2,
                     sort_keys=False)
    print(table, flush=True)
    return result


def _contrast_monitors(per_seed: Dict[int, Dict],
                       keys: List[str]) -> List[str]:
    """``'<row>: FNR f, Δ a → b'`` of every row whose stage logged L_pxl's
    monitors on every seed, means over the seeds."""
    found = []
    for key, label in ROWS:
        cells = [per_seed[s][key] for s in sorted(per_seed)] \
            if key in keys else []
        if not cells or not all('pxl_margin_last' in c for c in cells):
            continue
        mean = {m: sum(c.get(m, 0.0) for c in cells) / len(cells)
                for m in ('pxl_fnr', 'pxl_margin_first', 'pxl_margin_last')}
        fnr = (f'FNR {mean["pxl_fnr"]:.3f}, '
               if all('pxl_fnr' in c for c in cells) else '')
        found.append(f'{label}: {fnr}Δ {mean["pxl_margin_first"]:.2f} → '
                     f'{mean["pxl_margin_last"]:.2f}')
    return found


def _cost(per_seed: Dict[int, Dict], keys: List[str],
          pretraining: Dict[str, Dict]) -> Dict:
    """The footer's cost lines and the json's cost keys: per seed the
    processor seconds of its chain (:data:`CHAIN_ROWS`, when each has its
    cost) and of all its rows, with their wall seconds; the pre-trainings'
    processor seconds; the machines the rows were made on (``machine``),
    with their number of rows where there are several."""
    lines, chain, total, wall = [], {}, {}, {}
    for seed in sorted(per_seed):
        rows = [per_seed[seed][k] for k in keys]
        if not rows or not all('cpu_s' in r for r in rows):
            continue
        total[seed] = round(sum(r['cpu_s'] for r in rows), 1)
        wall[seed] = round(sum(r['wall_s'] for r in rows), 1)
        text = f'seed {seed}: '
        if all('cpu_s' in per_seed[seed].get(k, {}) for k in CHAIN_ROWS):
            chain[seed] = round(sum(per_seed[seed][k]['cpu_s']
                                    for k in CHAIN_ROWS), 1)
            text += f'chain {chain[seed]:.0f} core-s, '
        lines.append(text + f'all rows {total[seed]:.0f} core-s '
                     f'({wall[seed]:.0f} s of stage wall time)')
    found = {}
    by_stage = {}
    if pretraining and all('cpu_s' in c for c in pretraining.values()):
        by_stage = {k: c['cpu_s'] for k, c in pretraining.items()}
        found['pretraining_cpu_s'] = round(sum(by_stage.values()), 1)
        lines.append(f'pre-trainings ({", ".join(pretraining)}) '
                     f'{found["pretraining_cpu_s"]:.0f} core-s')
    machines = collections.Counter(
        per_seed[seed][k]['machine'] for seed in sorted(per_seed)
        for k in keys if 'cpu_s' in per_seed[seed][k] and
        per_seed[seed][k].get('machine'))
    if lines and machines:  # core-seconds differ from processor to processor
        lines.append('measured on ' + (
            next(iter(machines)) if len(machines) == 1 else
            f'{len(machines)} machines: ' + ', '.join(
                f'{name} ({count} row{"s" * (count > 1)})'
                for name, count in
                sorted(machines.items()))))
    if total or by_stage:
        found['cost'] = dict(chain_cpu_s=chain, cpu_s=total, wall_s=wall,
                             pretraining_cpu_s=by_stage)
        if machines:
            found['cost']['machines'] = dict(sorted(machines.items()))
    return dict(lines=lines, json=found)


def _coco_means(cells: List[Dict]) -> str:
    """The COCO-style AP / AP50 of a row, mean over its seeds."""
    means = [sum(c[k] for c in cells) / len(cells)
             for k in ('coco_segm_AP', 'coco_segm_AP50')]
    return f'{means[0]:.1f} / {means[1]:.1f}'


def _rounded(values: List[float]) -> List[float]:
    return [round(v, 2) for v in values]


def spread(values: List[float]) -> Dict[str, Optional[float]]:
    """Mean and sample standard deviation (``None`` for one value), rounded
    to 2 decimals, as the results tables show them."""
    mean = sum(values) / len(values)
    std = (sum((v - mean)**2 for v in values) / (len(values) - 1))**0.5 \
        if len(values) > 1 else None
    return dict(mean=round(mean, 2), std=None if std is None else round(std, 2))


def signed(value: float, digits: int) -> str:
    """``value`` with its sign to ``digits`` decimals; a difference that
    rounds to zero is ``+0.0``, never ``-0.0``."""
    return f'{round(value, digits) + 0.0:+.{digits}f}'


def _pm(stats: Dict[str, Optional[float]], sign: bool = False) -> str:
    mean = signed(stats['mean'], 2) if sign else f'{stats["mean"]:.2f}'
    return mean if stats['std'] is None else f'{mean} ± {stats["std"]:.2f}'

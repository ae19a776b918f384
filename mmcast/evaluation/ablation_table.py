# Copyright (c) mmcast contributors. All rights reserved.
"""An ablation table from the pipeline runs of its rows: each row's mask AP
per seed, its paired difference to the reference row (the full method) with
the split-half standard error of that difference, beside the paper's."""
import os.path as osp
from typing import Dict, List, Optional

from .results_table import NOISE_SPLITS, signed, spread
from .split_half import split_half_noise


def _read_results(work_dir: str) -> Dict:
    import json
    path = osp.join(work_dir, 'results.json')
    with open(path, encoding='utf-8') as f:
        return json.load(f)


def collect_ablation(table: str, rows: Dict[str, Dict], runs: Dict[str, str],
                     reference: str, gt_file: Optional[str] = None) -> Dict:
    """The content of ``toy_ablation_<table>.json``.

    Args:
        table (str): The table's name.
        rows (dict): ``{row: dict(label, columns={column: results row key},
            paper={column: AP})}``, in the table's order.
        runs (dict): ``{row: work dir of its pipeline run}``; the reference
            row's run may be one without ``--ablation``.
        reference (str): The row the others are compared with.
        gt_file (str, optional): The val ground truth; with it, the paired
            differences get their split-half standard error per seed, from
            the runs' COCO results files.

    Returns:
        dict: ``table``, ``reference``, ``seeds`` (those every run has) and
        ``rows``: ``'<row>'`` (one column) or ``'<row>:<column>'`` →
        ``label``, ``work_dir``, ``per_seed`` (seed → ``segm_AP``),
        ``mean_segm_AP``, ``std_segm_AP``, ``paper``; besides the reference:
        ``minus_reference`` (``mean``, ``std``, ``per_seed``, ``eval_se``)
        and ``paper_minus_reference`` and ``ordering_holds``: whether the
        toy's mean difference has the paper's sign (a difference of 0 has
        none).
    """
    results = {row: _read_results(wd) for row, wd in runs.items()}
    seeds = sorted(set.intersection(*(set(r['seeds']) for r in
                                      results.values())))
    if reference not in runs:
        raise ValueError(f'{table}: no run of the reference row '
                         f'{reference!r}')
    single = len({c for spec in rows.values() for c in spec['columns']}) == 1
    out: Dict[str, Dict] = {}
    for row, spec in rows.items():
        if row not in runs:
            continue
        for column, key in spec['columns'].items():
            name = row if single else f'{row}:{column}'
            cells = {s: results[row]['rows'][key]['per_seed'][str(s)]
                     for s in seeds}
            stats = spread([c['segm_AP'] for c in cells.values()])
            entry = dict(label=spec['label'], column=column, reads=key,
                         work_dir=runs[row],
                         per_seed={str(s): dict(segm_AP=c['segm_AP'])
                                   for s, c in cells.items()},
                         mean_segm_AP=stats['mean'],
                         std_segm_AP=stats['std'],
                         paper=spec.get('paper', {}).get(column))
            if row != reference:
                ref_key = rows[reference]['columns'][column]
                entry.update(_against(
                    results[row], results[reference], key, ref_key, seeds,
                    (runs[row], runs[reference]), gt_file))
                paper_ref = rows[reference].get('paper', {}).get(column)
                if entry['paper'] is not None and paper_ref is not None:
                    paper_diff = round(entry['paper'] - paper_ref, 2)
                    entry['paper_minus_reference'] = paper_diff
                    toy_diff = entry['minus_reference']['mean']
                    entry['ordering_holds'] = toy_diff * paper_diff > 0
            out[name] = entry
    return dict(table=table, reference=reference, seeds=seeds, rows=out)


def _against(result: Dict, ref: Dict, key: str, ref_key: str,
             seeds: List[int], work_dirs: tuple,
             gt_file: Optional[str]) -> Dict:
    """The paired difference of ``key`` in ``result`` to ``ref_key`` in
    ``ref``, per seed, with its split-half SE where the files exist."""
    diffs = [result['rows'][key]['per_seed'][str(s)]['segm_AP'] -
             ref['rows'][ref_key]['per_seed'][str(s)]['segm_AP']
             for s in seeds]
    stats = spread(diffs)
    found = dict(mean=stats['mean'], std=stats['std'],
                 per_seed={str(s): round(d, 2) for s, d in zip(seeds, diffs)})
    ses = {}
    for s in seeds:
        files = {name: osp.join(wd, f'seed{s}', 'predictions',
                                f'{k}.segm.json')
                 for name, wd, k in (('row', work_dirs[0], key),
                                     ('ref', work_dirs[1], ref_key))}
        if gt_file and all(osp.isfile(f) for f in files.values()):
            noise = split_half_noise(gt_file, files, [('row', 'ref')],
                                     NOISE_SPLITS, s)
            ses[str(s)] = round(noise['pairs']['row - ref']['se'], 2)
    if len(ses) == len(seeds):
        found['eval_se'] = ses
    return dict(minus_reference=found)


def render_ablation(result: Dict) -> str:
    """The Markdown table of :func:`collect_ablation`'s content."""
    seeds = result['seeds']
    lines = ['| row | ' + ' | '.join(f'seed {s}' for s in seeds) +
             ' | mean ± sd | − reference (per seed ± split-half SE) | paper '
             '| paper − reference | ordering holds |',
             '|---|' + '---|' * (len(seeds) + 5)]
    for name, row in result['rows'].items():
        label = row['label'] + (f' ({row["column"]})' if ':' in name else '')
        mean = f'{row["mean_segm_AP"]:.2f}' + (
            f' ± {row["std_segm_AP"]:.2f}' if row['std_segm_AP'] is not None
            else '')
        diff = row.get('minus_reference')
        if diff:
            ses = diff.get('eval_se', {})
            per = ', '.join(
                signed(diff['per_seed'][str(s)], 1) +
                (f' ± {ses[str(s)]:.1f}' if str(s) in ses else '')
                for s in seeds)
            diff_cell = f'{signed(diff["mean"], 2)} ({per})'
        else:
            diff_cell = 'reference'
        paper = '—' if row['paper'] is None else f'{row["paper"]}'
        paper_diff = row.get('paper_minus_reference')
        holds = row.get('ordering_holds')
        lines.append(
            f'| {label} | ' + ' | '.join(
                f'{row["per_seed"][str(s)]["segm_AP"]}' for s in seeds) +
            f' | {mean} | {diff_cell} | {paper} | ' +
            ('' if paper_diff is None else signed(paper_diff, 1)) + ' | ' +
            ('' if holds is None else ('yes' if holds else '**no**')) + ' |')
    return '\n'.join(lines) + '\n'

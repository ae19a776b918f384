# Copyright (c) mmcast contributors. All rights reserved.
"""Gather an ablation table of ``configs/mmcast/ablations.json`` from the
pipeline runs of its rows (``tools/cast_pipeline.py ... --ablation
TABLE:ROW``), and write it as json (the layout of the other results files:
rows → per_seed → segm_AP; each row's run by its path as given) with its
Markdown table on the console.

    python tools/analysis/ablation_table.py sampler \\
        uniform=work_dirs/ablation/sampler-uniform \\
        mask=work_dirs/ablation/sampler-mask \\
        class=work_dirs/ablation/sampler-class fused=work_dirs/cast_toy \\
        --gt-file data/toy/annotations/instancesonly_filtered_gtFine_val.json \\
        --out docs/en/results/toy_ablation_sampler.json

A row's run is checked to train as that row (its ``results.json`` names the
row it ran): rows that read the same run (``stages``: ``full`` and
``no_refinement``, ``no_adaptation`` and ``distill_only``) and the rows
with no options of their own may name one run, or the recipe's run
without ``--ablation``.
"""
import argparse
import json
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))

from mmcast.apis.pipeline.ablations import ablation_rows  # noqa: E402
from mmcast.evaluation.ablation_table import (collect_ablation,  # noqa: E402
                                              render_ablation)
from mmcast.utils.atomic_io import atomic_dump_json  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('table', help='loss, stages, sampler or contrast')
    parser.add_argument('runs', nargs='+', metavar='ROW=WORK_DIR')
    parser.add_argument('--gt-file',
                        help='the val ground truth: paired split-half SEs')
    parser.add_argument('--out', help='the json to write')
    return parser.parse_args(argv)


def _options(row) -> tuple:
    """What a row trains with: the recipe's (``None``) is no options."""
    if row is None:
        return ({}, None)
    return (row.stage_options, row.distill_teacher)


def main(argv=None) -> int:
    args = parse_args(argv)
    every = ablation_rows()
    rows = {row.name: row for row in every.values()
            if row.table == args.table}
    if not rows:
        print(f'no ablation table {args.table!r} in '
              'configs/mmcast/ablations.json', file=sys.stderr)
        return 2
    reference = next(iter(rows.values())).reference
    runs = {}
    for item in args.runs:
        row, sep, work_dir = item.partition('=')
        if not sep or row not in rows:
            print(f'{item!r}: expected ROW=WORK_DIR with ROW one of '
                  f'{", ".join(rows)}', file=sys.stderr)
            return 2
        path = osp.join(work_dir, 'results.json')
        try:
            with open(path, encoding='utf-8') as f:
                named = json.load(f).get('ablation')
        except (OSError, ValueError) as error:
            print(f'{path}: not the results of a finished pipeline run '
                  f'({error})', file=sys.stderr)
            return 2
        ran = (every[f'{named["table"]}:{named["row"]}'] if named else None)
        if _options(ran) != _options(rows[row]):
            print(f'{work_dir} is the run of ' +
                  (ran.key if ran else 'the recipe (no --ablation)') +
                  f', which trains otherwise than {args.table}:{row}',
                  file=sys.stderr)
            return 2
        # kept as given (from the checkout's root: relative to it), so the
        # results file names no path of the machine it was made on
        runs[row] = osp.normpath(work_dir)
    specs = {name: dict(label=row.label, columns=dict(row.columns),
                        paper=row.paper) for name, row in rows.items()}
    result = collect_ablation(args.table, specs, runs, reference,
                              args.gt_file)
    if args.out:
        atomic_dump_json(result, args.out, indent=2, sort_keys=False)
    print(render_ablation(result), end='')
    return 0


if __name__ == '__main__':
    sys.exit(main())

# Copyright (c) mmcast contributors. All rights reserved.
"""Rewrite the generated tables of the documentation from their data files.

A generated table sits between two markers in a Markdown file::

    <!-- table:NAME -->
    | ... |
    <!-- /table -->

and is rendered from the data under ``docs/en/results/`` and the model
index (``model-index.yml`` and the metafiles it imports):

* ``toy_ablation_<table>`` (``loss``, ``stages``, ``sampler``,
  ``contrast``; ``loss_tabletop``: loss rows on the tabletop world): an
  ablation table of ``configs/mmcast/ablations.json`` from
  ``docs/en/results/toy_ablation_<table>.json``, written by
  ``tools/analysis/ablation_table.py`` from the runs of its rows;
* ``toy_demo``, ``toy_demo_older_epyc`` (the same recipe's first run, on
  an older processor), ``toy_demo_full_width`` (``make demo``'s former
  full-width recipe, kept as history), ``toy_tabletop`` (and
  ``toy_tabletop_full_width``, the former recipe's, and
  ``toy_tabletop_u1800``, at D_u 1800), ``toy_gdino_sam2``,
  ``toy_gdino_sam2_u1800``, ``toy_teacher_ensemble``,
  ``toy_teacher_ensemble_reference`` and ``toy_distill_x3_u1800``: the
  results tables of ``make demo``, of the same recipe on the second toy
  world, with the box-prompted teacher (at D_u 180 and 1800), with stage 2
  distilled from the θ_T' + θ_T'' ensemble, of the recipe rerun beside
  that one and with stage 2 three times longer at D_u 1800, and
  ``toy_eomt_cast`` / ``toy_dpt_cast``, the recipe with the toy EoMT and
  DINOv3 DPT students in stages 2 and 3, and ``toy_two_core``, the CAST
  stages with models and schedules sized for two cores, from
  ``docs/en/results/<name>.json`` (the ``results.json`` that
  :func:`mmcast.evaluation.write_results_table` writes), rendered by that
  same function;
* ``toy_eomt_dpt_cast``: those two students side by side, seed by seed
  (each one's labels-only, stage-2 and stage-3 AP, stage 3 minus
  labels-only, and the paired difference of the two students);
* ``zoo_<section>``: a model-zoo table of ``docs/en/results/model_zoo.json``
  (parameters and GMACs from the metafiles, toy results per seed from
  ``toy_demo.json``, other results from the metafiles or the paper);
* ``paper_headline``: the paper's mask AP per dataset, from the rows of
  ``model_zoo.json`` that carry a ``headline``;
* ``stage_configs``: the table of stage configs,
  ``configs/mmcast/stages.json`` (which config each stage of each dataset
  and teacher runs, and its short name);
* ``stage_graph``: the stage graph, ``configs/mmcast/stage_graph.json``
  (what each stage is made from, and the checkpoint each hand-off key of
  its config gets);
* any name of ``docs/en/results/tables.json`` (``columns`` and ``rows``).

Files scanned: ``README.md``, ``docs/**/*.md``, ``configs/**/README.md`` and
``projects/*/README.md``.
``--check`` changes nothing, prints a diff of every block that differs from
its data and exits with status 1 if any does. Examples::

    python tools/docs/update_tables.py           # rewrite the blocks
    python tools/docs/update_tables.py --check   # CI: are they current?
"""
import argparse
import contextlib
import difflib
import glob
import io
import json
import os.path as osp
import re
import statistics
import sys
import tempfile
from typing import Callable, Dict, List, Optional, Sequence

import yaml

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
RESULTS_DIR = osp.join('docs', 'en', 'results')
# A block: its indentation (a table inside a list item), the name, the
# generated lines and the end marker at the same indentation.
BLOCK = re.compile(
    r'^([ \t]*)<!-- table:([\w.-]+) -->\n(.*?)^\1<!-- /table -->$',
    re.S | re.M)
PAPER = 'paper'
STAGE_TABLE = osp.join('configs', 'mmcast', 'stages.json')
# pipeline results.json files kept under RESULTS_DIR, each a table
PIPELINE_RESULTS = ('toy_demo', 'toy_demo_older_epyc', 'toy_demo_full_width',
                    'toy_tabletop', 'toy_tabletop_full_width',
                    'toy_tabletop_u1800',
                    'toy_gdino_sam2', 'toy_gdino_sam2_u1800',
                    'toy_teacher_ensemble',
                    'toy_teacher_ensemble_reference', 'toy_distill_x3_u1800',
                    'toy_eomt_cast', 'toy_dpt_cast', 'toy_two_core')
# two students' pipeline results side by side: block name -> their names
STUDENT_PAIRS = {'toy_eomt_dpt_cast': ('toy_eomt_cast', 'toy_dpt_cast')}
# the rows of a student in that table: results row key, label
STUDENT_ROWS = (('supervised_student', 'labels only'),
                ('distill', 'CAST, after stage 2'),
                ('finetune', 'CAST, after stage 3'))


def markdown_files(root: str) -> List[str]:
    """The Markdown files whose blocks are generated, relative to root."""
    files = ['README.md'] if osp.isfile(osp.join(root, 'README.md')) else []
    for pattern in ('docs/**/*.md', 'configs/**/README.md',
                    'projects/*/README.md'):
        files += sorted(
            osp.relpath(f, root)
            for f in glob.glob(osp.join(root, pattern), recursive=True))
    return files


def _load_json(root: str, name: str) -> Dict:
    path = osp.join(root, RESULTS_DIR, name)
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise SystemExit(f'{path}: cannot read the table data ({e})')


def load_metafiles(root: str) -> Dict[str, Dict]:
    """Every model of the model index by name: its ``Config``,
    ``Metadata`` and ``Results``."""
    with open(osp.join(root, 'model-index.yml'), encoding='utf-8') as f:
        index = yaml.safe_load(f)
    models = {}
    for meta in index['Import']:
        with open(osp.join(root, meta), encoding='utf-8') as f:
            for model in yaml.safe_load(f).get('Models', []):
                models[model['Name']] = model
    return models


def render_results(result: Dict) -> str:
    """A pipeline results table from the content of its ``results.json``.

    Rendered by :func:`mmcast.evaluation.write_results_table` without its
    title line. A row's evaluation noise is ``eval_se`` per seed, or
    ``eval_se_mean`` where only the mean over the seeds was kept (the
    table prints that mean either way); a difference's likewise.
    """
    from mmcast.evaluation.results_table import write_results_table
    seeds = result['seeds']
    per_seed = {s: {} for s in seeds}
    noise: Dict[int, Dict] = {
        s: dict(models={}, pairs={}) for s in seeds}
    for key, row in result['rows'].items():
        for s in seeds:
            per_seed[s][key] = row['per_seed'][str(s)]
            se = _seed_se(row, s)
            if se is not None:
                noise[s]['models'][key] = dict(se=se)
    for name, diff in result.get('differences', {}).items():
        for s in seeds:
            se = _seed_se(diff, s)
            if se is not None:
                noise[s]['pairs'][name] = dict(se=se)
    n_val = result.get('eval_noise', {}).get('num_val_images')
    for s in seeds:
        noise[s]['num_images'] = n_val
    with tempfile.TemporaryDirectory() as tmp, \
            contextlib.redirect_stdout(io.StringIO()):
        write_results_table(per_seed, tmp, result['dataset'],
                            result.get('methods', 'CAST'),
                            result.get('teacher', ''), noise,
                            result.get('metric', 'coco'),
                            result.get('distill_teacher', ''),
                            pretraining_cost={
                                k: dict(cpu_s=v) for k, v in result.get(
                                    'cost', {}).get('pretraining_cpu_s',
                                                    {}).items()})
        with open(osp.join(tmp, 'results.md'), encoding='utf-8') as f:
            lines = f.read().splitlines()
    return '\n'.join(lines[2:]) + '\n'  # without the title and its blank


def render_student_pair(first: Dict, second: Dict) -> str:
    """Two pipeline results of one recipe and seeds with two students
    (their ``student``), side by side: mask AP per seed and mean ± sd of
    each one's rows (:data:`STUDENT_ROWS`) and of stage 3 minus labels-only,
    then first minus second, paired by seed, for stage 3 and labels-only."""
    seeds = first['seeds']
    if second['seeds'] != seeds:
        raise SystemExit(f'seeds {seeds} and {second["seeds"]} differ')

    def ap(result, key):
        return [result['rows'][key]['per_seed'][str(s)]['segm_AP']
                for s in seeds]

    def row(label, values, signed=False):
        mean = statistics.mean(values)
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        sign = '+' if signed else ''
        return [label] + [f'{v:{sign}.1f}' for v in values] + [
            f'{mean:{sign}.2f} ± {sd:.2f}']

    rows = []
    for result in (first, second):
        name = result['student']
        rows += [row(f'{name}: {label}', ap(result, key))
                 for key, label in STUDENT_ROWS]
        rows.append(row(f'{name}: stage 3 − labels only', [
            a - b for a, b in zip(ap(result, 'finetune'),
                                  ap(result, 'supervised_student'))],
            signed=True))
    for key, label in (('finetune', 'stage 3'),
                       ('supervised_student', 'labels only')):
        rows.append(row(
            f'{first["student"]} − {second["student"]}, {label}',
            [a - b for a, b in zip(ap(first, key), ap(second, key))],
            signed=True))
    return markdown_table(
        ['mask AP'] + [f'seed {s}' for s in seeds] + ['mean ± sd'], rows)


def _seed_se(entry: Dict, seed: int) -> Optional[float]:
    if 'eval_se' in entry:
        return entry['eval_se'].get(str(seed))
    return entry.get('eval_se_mean')


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A Markdown table; every row must have one cell per column."""
    lines = ['| ' + ' | '.join(columns) + ' |',
             '|' + '---|' * len(columns)]
    for row in rows:
        if len(row) != len(columns):
            raise ValueError(f'row {row!r} has {len(row)} cells for '
                             f'{len(columns)} columns')
        lines.append('| ' + ' | '.join(str(c) for c in row) + ' |')
    return '\n'.join(lines) + '\n'


def _metric(value) -> str:
    """A figure of the paper is marked as such."""
    if isinstance(value, dict) and PAPER in value:
        return f'{value[PAPER]} *({value.get("note", PAPER)})*'
    return '—' if value is None else str(value)


def render_zoo(section: Dict, models: Dict[str, Dict], toy: Dict,
               md_file: str) -> str:
    """A model-zoo table: stage, config, labels %, mask AP, AP50, params,
    GMACs and download, config links relative to ``md_file``. In the
    documentation site (``docs/``), which holds no configs, a config is
    named by its path and the download column left out."""
    site = md_file.startswith('docs/')
    columns = ['stage', 'config', 'labels %']
    per_seed = section.get('per_seed', False)
    columns += (['mask AP (seed ' + ' / '.join(map(str, toy['seeds'])) + ')',
                 'AP50 (seed ' + ' / '.join(map(str, toy['seeds'])) + ')']
                if per_seed else ['mask AP', 'AP50'])
    columns += ['params', 'GMACs'] + ([] if site else ['download'])
    rows = []
    for spec in section['rows']:
        name = spec.get('model')
        if name is not None and name not in models:
            raise SystemExit(f'{RESULTS_DIR}/model_zoo.json: model {name!r} '
                             'is not in the model index (metafiles)')
        model = models.get(name, {})
        meta = model.get('Metadata', {})
        link = '—'
        if model and site:
            link = f'`{model["Config"]}`'
        elif model:
            rel = osp.relpath(model['Config'], osp.dirname(md_file) or '.')
            link = f'[{name}]({rel})'
        ap, ap50 = _zoo_metrics(spec, model, toy, per_seed)
        flops = meta.get('FLOPs')
        rows.append([
            spec['stage'], link, spec.get('labels', '—'), ap, ap50,
            meta.get('Parameters', '—'),
            flops.split('G')[0] if flops else '—'
        ] + ([] if site else [
            link.replace(f'[{name}]', '[config]') if model else '—']))
    return markdown_table(columns, rows)


def _zoo_metrics(spec: Dict, model: Dict, toy: Dict, per_seed: bool):
    if 'toy_row' in spec:
        row = toy['rows'][spec['toy_row']]['per_seed']
        seeds = [row[str(s)] for s in toy['seeds']]
        return (' / '.join(str(c['segm_AP']) for c in seeds),
                ' / '.join(str(c['segm_AP50']) for c in seeds))
    if spec.get('results') == 'metafile':
        metrics = model['Results'][0]['Metrics']
        return str(metrics['mask AP']), str(metrics['AP50'])
    if per_seed:
        raise SystemExit(f'{RESULTS_DIR}/model_zoo.json: row '
                         f'{spec["stage"]!r} of a per-seed table needs '
                         '"toy_row" or "results": "metafile"')
    return _metric(spec.get('mask_ap')), _metric(spec.get('ap50'))


HEADLINE = ['student, labels only', 'Guided Distillation, same student',
            'adapted teacher (stage 1)', 'CAST student (stage 3)']


def render_headline(zoo: Dict) -> str:
    """The paper's mask AP per dataset (10 % labels): the rows of the
    model-zoo sections that carry a ``headline`` column name."""
    rows = []
    for section in zoo.values():
        cells = {spec['headline']: spec.get('mask_ap')
                 for spec in section['rows'] if 'headline' in spec}
        if cells:
            rows.append([section['title']] +
                        [_metric(cells.get(col)) for col in HEADLINE])
    return markdown_table(['mask AP, 10 % labels'] + HEADLINE, rows)


def render_stage_configs(root: str) -> str:
    """The rows of the table of stage configs."""
    with open(osp.join(root, STAGE_TABLE), encoding='utf-8') as f:
        rows = json.load(f)
    return markdown_table(
        ['dataset', 'stage', 'teacher', 'student variant', 'config',
         'short name'],
        [[row['dataset'], row['stage'], row['teacher'] or '',
          row['variant'] or '', f'`{row["config"]}.py`',
          f'`{row["short"]}.py`' if row['short'] else '']
         for row in rows])


def render_stage_graph(root: str) -> str:
    """The stage graph (:mod:`mmcast.apis.pipeline.stage_graph`): each
    stage's upstream stages and hand-offs."""
    from mmcast.apis.pipeline.stage_graph import TEACHER0, stage_graph
    return markdown_table(
        ['stage', 'made from', 'hand-offs (config key ← checkpoint of)',
         'pseudo-labels'],
        [[f'`{key}`', ', '.join(f'`{u}`' for u in node.upstream),
          '<br>'.join(f'`{k}` ← {"θ_T^0" if src == TEACHER0 else src}'
                      for k, src in node.handoffs),
          node.pseudo_labels or '']
         for key, node in stage_graph(root).items()])


def renderers(root: str) -> Dict[str, Callable[[str], str]]:
    """Every table name -> a function of the Markdown file's path."""
    results = {name: _load_json(root, f'{name}.json')
               for name in PIPELINE_RESULTS}
    toy = results['toy_demo']
    zoo = _load_json(root, 'model_zoo.json')
    tables = _load_json(root, 'tables.json')
    models = load_metafiles(root)
    out: Dict[str, Callable[[str], str]] = {
        'paper_headline': lambda md: render_headline(zoo),
        'stage_configs': lambda md: render_stage_configs(root),
        'stage_graph': lambda md: render_stage_graph(root)}
    for name, result in results.items():
        out[name] = lambda md, r=result: render_results(r)
    for name, (first, second) in STUDENT_PAIRS.items():
        out[name] = (lambda md, a=results[first], b=results[second]:
                     render_student_pair(a, b))
    for path in sorted(glob.glob(osp.join(root, RESULTS_DIR,
                                          'toy_ablation_*.json'))):
        from mmcast.evaluation.ablation_table import render_ablation
        name = osp.splitext(osp.basename(path))[0]
        out[name] = (lambda md, r=_load_json(root, osp.basename(path)):
                     render_ablation(r))
    for name, section in zoo.items():
        out[f'zoo_{name}'] = (
            lambda md, s=section: render_zoo(s, models, toy, md))
    for name, table in tables.items():
        out[name] = (lambda md, t=table: markdown_table(t['columns'],
                                                        t['rows']))
    return out


def update_file(root: str, md_file: str,
                render: Dict[str, Callable[[str], str]]) -> str:
    """The file's text with every block rendered anew."""
    with open(osp.join(root, md_file), encoding='utf-8') as f:
        text = f.read()

    def fill(match: re.Match) -> str:
        name = match.group(2)
        if name not in render:
            raise SystemExit(f'{md_file}: unknown table {name!r} (known: '
                             f'{", ".join(sorted(render))})')
        indent = match.group(1)
        table = ''.join(indent + line if line.strip() else line
                        for line in render[name](md_file).splitlines(True))
        return (f'{indent}<!-- table:{name} -->\n{table}'
                f'{indent}<!-- /table -->')

    return BLOCK.sub(fill, text)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--check', action='store_true',
                        help='change nothing; exit 1 with a diff where a '
                        'block differs from its data')
    parser.add_argument('--root', default=REPO_ROOT,
                        help='the repository (default: this one)')
    args = parser.parse_args(argv)
    render = renderers(args.root)
    stale = []
    for md_file in markdown_files(args.root):
        path = osp.join(args.root, md_file)
        with open(path, encoding='utf-8') as f:
            old = f.read()
        new = update_file(args.root, md_file, render)
        if new == old:
            continue
        stale.append(md_file)
        if args.check:
            sys.stdout.writelines(difflib.unified_diff(
                old.splitlines(True), new.splitlines(True),
                f'{md_file} (as written)', f'{md_file} (from its data)'))
        else:
            with open(path, 'w', encoding='utf-8') as f:
                f.write(new)
            print(f'updated {md_file}')
    if args.check and stale:
        print(f'{len(stale)} file(s) with stale tables: {", ".join(stale)}; '
              'run python tools/docs/update_tables.py')
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())

# Copyright (c) mmcast contributors. All rights reserved.
"""Plot a ``tools/cast_pipeline.py`` work dir: results table and curves.

Writes, as PNG (matplotlib, Agg backend)::

    <out-dir>/results.png         the results table as a bar chart: mean mask
                                  AP / AP50 per row (teacher before and after
                                  adaptation, CAST student after stages 2 and
                                  3, labels-only baseline, Guided
                                  Distillation), ± the std over seeds (two or
                                  more), one point per seed
    <out-dir>/curves_seed<k>.png  the training curves of every stage of seed
                                  k, read from MMEngine's json logs (or,
                                  for a run without one, its TensorBoard
                                  event files): total
                                  loss, ``loss_pxl``, ``pxl_margin`` (the
                                  cosine-distance margin of negatives over
                                  positives), ``pxl_fnr``, the annealed
                                  temperature ``pxl_temperature`` and the
                                  validation mask AP; one line per stage.

Scalars a stage does not log are left out (a panel no stage logs is not
drawn); stages still running are plotted as far as they got. Example::

    python tools/analysis/plot_pipeline.py work_dirs/cast_toy \\
        --out-dir work_dirs/cast_toy/figures
"""
import argparse
import glob
import json
import os.path as osp
import re
import statistics
from typing import Dict, List, Optional, Sequence, Tuple

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker  # noqa: E402

from mmcast.evaluation import ROWS as RESULT_ROWS  # noqa: E402

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# (panel title, logged scalar, factor): one panel of the curves each.
CURVES = [
    ('total loss', 'loss', 1.0),
    ('loss_pxl (pixel contrast)', 'loss_pxl', 1.0),
    ('pxl_margin: cos. distance neg − pos', 'pxl_margin', 1.0),
    ('pxl_fnr: same-instance negatives', 'pxl_fnr', 1.0),
    ('temperature T (pxl_temperature)', 'pxl_temperature', 1.0),
    ('val mask AP (coco/segm_mAP ×100)', 'coco/segm_mAP', 100.0),
]
VAL_KEY = 'coco/segm_mAP'
# The rows of the results table, in order, with their labels.
ROWS: List[Tuple[str, str]] = RESULT_ROWS
STAGE_ORDER = [key for key, _ in ROWS]

# A scalar series: iterations and values.
Series = Tuple[List[int], List[float]]


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work_dir', help='the --work-dir of cast_pipeline.py')
    parser.add_argument('--out-dir',
                        help='where the PNGs go (default: <work_dir>/figures)')
    parser.add_argument('--seeds', type=int, nargs='+',
                        help='seeds to plot curves of (default: all seed*/)')
    return parser.parse_args(argv)


def _run_logs(stage_dir: str) -> List[Tuple[str, str]]:
    """The scalar log of each run of a stage, oldest run first, as
    ``(kind, path)``: ``('json', file)`` or ``('events', vis_data folder)``.

    A run is a ``<timestamp>/`` folder; its log is ``vis_data/scalars.json``
    (MMEngine's ``LocalVisBackend``) or else ``vis_data/<timestamp>.json``
    (``LoggerHook``), which hold the same records; a test run (``mim
    test``) writes ``<timestamp>.json`` beside ``vis_data/``. A run logged
    by ``TensorboardVisBackend`` alone has only ``vis_data/events.out.*``.
    """
    logs = []
    for vis_data in sorted(glob.glob(osp.join(stage_dir, '*', 'vis_data'))):
        run = osp.dirname(vis_data)
        stamp = osp.basename(run)
        for name in (osp.join('vis_data', 'scalars.json'),
                     osp.join('vis_data', f'{stamp}.json'), f'{stamp}.json'):
            if osp.isfile(osp.join(run, name)):
                logs.append(('json', osp.join(run, name)))
                break
        else:
            if glob.glob(osp.join(vis_data, 'events.out.tfevents.*')):
                logs.append(('events', vis_data))
    return logs


def _json_records(path: str) -> List[Tuple[int, Dict[str, float]]]:
    """``(iteration, scalars)`` per record of an MMEngine json log; a
    validation record (no ``iter``) counts at the iteration before it."""
    records, it = [], 0
    with open(path, encoding='utf-8') as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                if line.endswith('\n'):
                    raise ValueError(f'{path}:{line_no}: not json: {e}')
                break  # a run killed while writing its last line
            if 'iter' in rec:
                it = int(rec['iter'])
            records.append((it, {
                name: float(value)
                for name, value in rec.items()
                if name not in ('iter', 'step', 'epoch')
                and isinstance(value, (int, float))
            }))
    return records


def _event_records(vis_data: str) -> List[Tuple[int, Dict[str, float]]]:
    """``(iteration, scalars)`` of the TensorBoard event files of a run,
    in the order they were written. Training scalars are logged at their
    iteration, validation metrics of iteration-based runs at the epoch (0):
    as in the json, a scalar counts at the latest iteration before it."""
    from tensorboard.backend.event_processing.event_accumulator import \
        EventAccumulator
    events = []
    acc = EventAccumulator(vis_data, size_guidance={'scalars': 0})
    acc.Reload()
    for name in acc.Tags()['scalars']:
        events += [(e.wall_time, e.step, name, e.value)
                   for e in acc.Scalars(name)]
    records, it = [], 0
    for _, step, name, value in sorted(events):
        it = max(it, int(step))
        records.append((it, {name: float(value)}))
    return records


def read_scalars(stage_dir: str) -> Dict[str, Series]:
    """Every scalar a stage logged, as (iterations, values) per name.

    Training records carry their ``iter``. MMEngine logs validation metrics
    of iteration-based runs with the epoch (0) as ``step``, so a validation
    record gets the iteration of the training record before it (0 for a
    test-only stage). A resumed run's records replace those of earlier runs
    at the same iteration.

    Args:
        stage_dir (str): An MMEngine work dir (``<timestamp>/vis_data/``).

    Returns:
        dict[str, tuple[list[int], list[float]]]: Sorted by iteration.
    """
    by_name: Dict[str, Dict[int, float]] = {}
    for kind, path in _run_logs(stage_dir):
        read = _json_records if kind == 'json' else _event_records
        for it, scalars in read(path):
            for name, value in scalars.items():
                by_name.setdefault(name, {})[it] = value
    return {
        name: (sorted(points), [points[i] for i in sorted(points)])
        for name, points in by_name.items()
    }


def stage_dirs(seed_dir: str) -> List[Tuple[str, str]]:
    """(stage, folder) of every stage of a seed that has json logs, in the
    pipeline's order (unknown stages last, by name)."""
    found = [(osp.basename(d), d) for d in sorted(glob.glob(osp.join(seed_dir, '*')))
             if osp.isdir(d) and _run_logs(d)]
    rank = {key: i for i, key in enumerate(STAGE_ORDER)}
    return sorted(found, key=lambda s: (rank.get(s[0], len(rank)), s[0]))


def _stage_colors(stages: Sequence[str]) -> Dict[str, tuple]:
    """One fixed colour per stage (the same in every figure)."""
    cmap = plt.get_cmap('tab10')
    extra = sorted(set(stages) - set(STAGE_ORDER))
    order = STAGE_ORDER + extra
    return {s: cmap(order.index(s) % 10) for s in stages}


def _label(stage: str) -> str:
    return dict(ROWS).get(stage, stage)


def _save(fig, path: str) -> None:
    from mmcast.utils.atomic_io import atomic_open
    with atomic_open(path, 'wb') as f:
        fig.savefig(f, format='png', dpi=120)
    plt.close(fig)


def plot_curves(seed_dir: str, out_file: str) -> List[str]:
    """Draw the training curves of one seed's stages.

    Args:
        seed_dir (str): ``<work_dir>/seed<k>``.
        out_file (str): The PNG to write.

    Returns:
        list[str]: The scalars drawn (one panel each).

    Raises:
        FileNotFoundError: if no stage of ``seed_dir`` has a json log.
    """
    stages = stage_dirs(seed_dir)
    if not stages:
        raise FileNotFoundError(
            f'{seed_dir}: no stage with an MMEngine json log '
            '(<stage>/<timestamp>/vis_data/*.json)')
    scalars = {stage: read_scalars(d) for stage, d in stages}
    panels = [c for c in CURVES if any(c[1] in s for s in scalars.values())]
    if not panels:
        raise ValueError(f'{seed_dir}: the logs hold none of '
                         f'{", ".join(c[1] for c in CURVES)}')
    colors = _stage_colors([s for s, _ in stages])
    ncols = min(3, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.6 * nrows),
                             squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (title, name, factor) in zip(axes.flat, panels):
        for stage, _ in stages:
            if name not in scalars[stage]:
                continue
            its, values = scalars[stage][name]
            style = dict(marker='o', ms=4) if name == VAL_KEY or len(its) < 3 \
                else dict(lw=1.2)
            ax.plot(its, [v * factor for v in values], color=colors[stage],
                    label=_label(stage), **style)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel('iteration of the stage', fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if name == 'loss':  # the stages' totals differ by orders of magnitude
            ax.set_yscale('log')
            plain = ticker.FuncFormatter(lambda v, _: f'{v:g}')
            low, high = ax.get_ylim()
            ax.yaxis.set_major_formatter(plain)
            ax.yaxis.set_minor_formatter(
                plain if high < 3 * low else ticker.NullFormatter())
    drawn = {}  # label -> a line of it
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            drawn.setdefault(lab, h)
    labels = [_label(s) for s, _ in stages if _label(s) in drawn]
    handles = [drawn[lab] for lab in labels]
    fig.legend(handles, labels, loc='lower center', ncol=min(4, len(labels)),
               fontsize=9, frameon=False)
    fig.suptitle(f'training curves, {osp.basename(osp.normpath(seed_dir))}')
    fig.tight_layout(rect=(0, 0.05 + 0.03 * (len(labels) > 4), 1, 1))
    _save(fig, out_file)
    return [name for _, name, _ in panels]


def plot_results(results_file: str, out_file: str) -> List[str]:
    """Draw ``results.json`` as bars: mean mask AP and AP50 per row, ± the
    std over seeds (with two or more), and each seed as a point.

    Args:
        results_file (str): The pipeline's ``results.json``.
        out_file (str): The PNG to write.

    Returns:
        list[str]: The rows drawn, in order.
    """
    with open(results_file, encoding='utf-8') as f:
        results = json.load(f)
    rows = results.get('rows')
    if not isinstance(rows, dict) or not rows:
        raise ValueError(f'{results_file}: no "rows" to plot')
    rank = {key: i for i, key in enumerate(STAGE_ORDER)}
    keys = sorted(rows, key=lambda k: (rank.get(k, len(rank)), k))
    metrics = [('segm_AP', 'mask AP'), ('segm_AP50', 'mask AP50')]
    colors = _stage_colors(keys)
    fig, axes = plt.subplots(1, 2, figsize=(6 + 1.1 * len(keys), 4.8))
    for ax, (metric, title) in zip(axes, metrics):
        for x, key in enumerate(keys):
            per_seed = rows[key].get('per_seed', {})
            seeds = sorted(per_seed, key=int)
            try:
                values = [float(per_seed[s][metric]) for s in seeds]
            except (KeyError, TypeError, ValueError) as e:
                raise ValueError(f'{results_file}: rows.{key}.per_seed has '
                                 f'no number {metric} ({e!r})') from e
            if not values:
                raise ValueError(f'{results_file}: rows.{key} has no seeds')
            mean = statistics.fmean(values)
            std = statistics.stdev(values) if len(values) > 1 else None
            ax.bar(x, mean, 0.6, color=colors[key], alpha=0.55,
                   yerr=std, capsize=5, ecolor='black')
            offsets = [0.22 * (i - (len(values) - 1) / 2) / max(1, len(values) - 1)
                       for i in range(len(values))]
            ax.scatter([x + o for o in offsets], values, color='black', s=14,
                       zorder=3)
            text = f'{mean:.1f}' + (f'±{std:.1f}' if std is not None else '')
            ax.annotate(text, (x, mean + (std or 0)), textcoords='offset points',
                        xytext=(0, 4), ha='center', fontsize=8)
        if 'supervised_student' in rows and metric == 'segm_AP':
            ax.axhline(rows['supervised_student']['mean_segm_AP'], ls='--',
                       color='grey', lw=1, label='labels-only baseline (mean)')
            ax.legend(fontsize=8, loc='lower right')
        ax.set_xticks(range(len(keys)))
        ax.set_xticklabels([_label(k) for k in keys], rotation=30, ha='right',
                           fontsize=8)
        ax.set_ylabel(f'{title} (×100)')
        ax.set_title(title)
        ax.grid(axis='y', alpha=0.3)
    seeds = results.get('seeds', [])
    teacher = f', teacher {results["teacher"]}' if 'teacher' in results else ''
    spread = 'mean ± std, points: seeds' if len(seeds) > 1 else 'points: seeds'
    fig.suptitle(f'{results.get("dataset", "?")}{teacher}: seeds '
                 f'{", ".join(map(str, seeds))} ({spread})')
    fig.tight_layout()
    _save(fig, out_file)
    return keys


def main(argv: Optional[List[str]] = None) -> List[str]:
    """Write the PNGs; return their paths."""
    args = parse_args(argv)
    work_dir = args.work_dir
    if not osp.isdir(work_dir):
        raise SystemExit(f'{work_dir}: no such work dir')
    seed_dirs = {int(m.group(1)): d for d in glob.glob(osp.join(work_dir, 'seed*'))
                 if osp.isdir(d) and (m := re.fullmatch(r'seed(\d+)', osp.basename(d)))}
    results_file = osp.join(work_dir, 'results.json')
    if not seed_dirs and not osp.isfile(results_file):
        raise SystemExit(f'{work_dir}: neither results.json nor seed*/ '
                         'folders: not a cast_pipeline.py work dir (or empty)')
    out_dir = args.out_dir or osp.join(work_dir, 'figures')
    written = []
    if osp.isfile(results_file):
        out = osp.join(out_dir, 'results.png')
        rows = plot_results(results_file, out)
        print(f'{out}: {len(rows)} rows', flush=True)
        written.append(out)
    else:
        print(f'note: no {results_file} yet (pipeline unfinished): '
              'curves only', flush=True)
    for seed in args.seeds or sorted(seed_dirs):
        if seed not in seed_dirs:
            raise SystemExit(f'{osp.join(work_dir, f"seed{seed}")}: no such '
                             f'seed folder (have: {sorted(seed_dirs)})')
        out = osp.join(out_dir, f'curves_seed{seed}.png')
        try:
            names = plot_curves(seed_dirs[seed], out)
        except (FileNotFoundError, ValueError) as e:
            raise SystemExit(str(e)) from e
        print(f'{out}: {", ".join(names)}', flush=True)
        written.append(out)
    return written


if __name__ == '__main__':
    main()

# Copyright (c) mmcast contributors. All rights reserved.
"""CAST's ablations as runs of the pipeline (``configs/mmcast/ablations.json``).

Each table (``loss``, ``stages``, ``sampler``, ``contrast``) has rows; a row
is one run, ``--ablation TABLE:ROW``, whose stages take the row's overrides
(``stage_cfg_options``, by stage key) and, for the stage ablation, another
stage-2 teacher (``distill_teacher``). A table's ``columns`` name the
results rows it reads (``null``: the row's own ``reads``), its
``reference`` the row the others are compared with (the full method) and
each row's ``paper`` the paper's mask AP of each column. With
``--reuse-from`` a row trains only the stages its overrides change.
"""
import json
import os.path as osp
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Dict, Optional, Tuple

from .errors import PipelineError
from .overrides import Overrides
from .settings import REPO_ROOT

ABLATIONS = osp.join('configs', 'mmcast', 'ablations.json')


@dataclass(frozen=True)
class AblationRow:
    """One row of an ablation table: one run of the pipeline.

    Args:
        table (str): The table's name.
        name (str): The row's name.
        label (str): What the row changes, in words.
        columns (tuple[tuple[str, str]]): ``(column, results row key)``:
            what the table shows of this run.
        paper (dict): The paper's mask AP of each column (may be empty).
        distill_teacher (str, optional): Stage 2's teacher
            (``--distill-teacher``), when the row sets one.
        stage_options (dict): ``{stage key: Overrides}``.
        reference (str): The row of the table the others are compared with.
    """
    table: str
    name: str
    label: str
    columns: Tuple[Tuple[str, str], ...]
    paper: Dict[str, float] = field(default_factory=dict)
    distill_teacher: Optional[str] = None
    stage_options: Dict[str, Overrides] = field(default_factory=dict)
    reference: str = ''

    @property
    def key(self) -> str:
        """``TABLE:ROW``, as ``--ablation`` takes it."""
        return f'{self.table}:{self.name}'

    def record(self) -> dict:
        """What a run's ``results.json`` says of its ablation."""
        return dict(table=self.table, row=self.name, label=self.label,
                    columns=dict(self.columns), reference=self.reference)


@lru_cache(maxsize=None)
def _tables(root: str) -> Dict[str, dict]:
    with open(osp.join(root, ABLATIONS), encoding='utf-8') as f:
        return json.load(f)


def ablation_rows(root: str = REPO_ROOT) -> Dict[str, AblationRow]:
    """Every row of every table, by ``TABLE:ROW``."""
    rows = {}
    for table, spec in _tables(root).items():
        for name, row in spec['rows'].items():
            columns = tuple(
                (column, key if key is not None else row['reads'])
                for column, key in spec['columns'].items())
            rows[f'{table}:{name}'] = AblationRow(
                table=table, name=name, label=row['label'], columns=columns,
                paper=dict(row.get('paper', {})),
                distill_teacher=row.get('distill_teacher'),
                stage_options={
                    stage: Overrides.of(options.items())
                    for stage, options in row.get('stage_cfg_options',
                                                  {}).items()},
                reference=spec['reference'])
    return rows


def find_ablation(key: str, root: str = REPO_ROOT) -> AblationRow:
    """The row ``TABLE:ROW``.

    Raises:
        PipelineError: No such row; the message lists them.
    """
    rows = ablation_rows(root)
    if key not in rows:
        raise PipelineError(
            f'--ablation {key!r}: no such row of {ABLATIONS}; the rows are '
            + ', '.join(rows))
    return rows[key]


def distill_teacher_of(given: Optional[str],
                       ablation: Optional[AblationRow]) -> str:
    """Stage 2's teacher of a run: ``--distill-teacher`` (``given``), else
    the ablation row's, else ``selftrained``.

    Raises:
        PipelineError: Both name one, and not the same.
    """
    row = ablation.distill_teacher if ablation else None
    if given and row and given != row:
        raise PipelineError(
            f'--distill-teacher {given} contradicts --ablation '
            f'{ablation.key}, whose stage 2 is taught by {row}')
    return given or row or 'selftrained'

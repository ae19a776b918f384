# Copyright (c) mmcast contributors. All rights reserved.
"""The table of stage configs: which config each stage of each dataset and
teacher runs (``configs/mmcast/stages.json``).

Each row names a ``dataset``, a ``stage`` (the pipeline's stage keys:
``toy_foundation``, ``student_foundation``, ``adapt_teacher``,
``adapt_teacher_selftrain``, ``distill``, ``finetune``,
``supervised_student``, ``guided_distillation``), the ``teacher`` of the
stages that name one (θ_T^0's pre-training and stages 1a, 1b, 2), a
``variant`` (another student than the recipe's, e.g. ``dinov3-s``; the
pipeline runs the rows without one, or those of ``--student``), the
``config`` (under ``configs/mmcast/``, OpenMMLab's conventional name where
it has one) and, for the CAST configs of the shipped datasets, its
``short`` name: the file ``configs/mmcast/<short>.py`` that only inherits
the config (:func:`alias_text`, written by
``tools/misc/config_aliases.py``). The pipeline runs a stage by its short
name where there is one, so that a stage's work dir holds its config under
the name earlier runs dumped it with; the configs' README, their metafile's
entries, the docs' tables and the tests read the same table.
"""
import json
import os.path as osp
from functools import lru_cache
from typing import Dict, List, Optional, Tuple

from .errors import PipelineError
from .project_root import REPO_ROOT

TABLE = osp.join('configs', 'mmcast', 'stages.json')
CONFIG_DIR = osp.join('configs', 'mmcast')


@lru_cache(maxsize=None)
def _rows(root: str) -> tuple:
    with open(osp.join(root, TABLE), encoding='utf-8') as f:
        return tuple(json.load(f))


def stage_rows(root: str = REPO_ROOT) -> List[Dict[str, Optional[str]]]:
    """Every row of the table, in its order (copies)."""
    return [dict(row) for row in _rows(root)]


def find_row(dataset: str, stage: str, teacher: Optional[str] = None,
             variant: Optional[str] = None,
             root: str = REPO_ROOT) -> Dict[str, Optional[str]]:
    """The row of ``(dataset, stage, teacher, variant)``.

    Raises:
        PipelineError: The table has no such row (naming what it has for
            the dataset).
    """
    found = [row for row in _rows(root)
             if (row['dataset'], row['stage'], row['teacher'],
                 row['variant']) == (dataset, stage, teacher, variant)]
    if not found:
        have = sorted({row['stage'] + (f' ({row["teacher"]})'
                                       if row['teacher'] else '')
                       for row in _rows(root) if row['dataset'] == dataset})
        raise PipelineError(
            f'no config for stage {stage} of {dataset}' +
            (f' with --teacher {teacher}' if teacher else '') +
            (f' with --student {variant}' if variant else '') +
            f' in {TABLE} (it has: {", ".join(have) or "none"})')
    return dict(found[0])


def config_file(row: Dict[str, Optional[str]], short: bool = True) -> str:
    """The path of a row's config relative to the repository: its short
    name where it has one (``short``), else the config itself."""
    name = row['short'] if short and row['short'] else row['config']
    return osp.join(CONFIG_DIR, f'{name}.py')


def stage_config_path(dataset: str, stage: str,
                      teacher: Optional[str] = None,
                      variant: Optional[str] = None) -> str:
    """The config the pipeline runs for a stage (:func:`config_file` of its
    row)."""
    return config_file(find_row(dataset, stage, teacher, variant))


def student_variants(root: str = REPO_ROOT) -> List[str]:
    """The students the table has besides the recipe's (``--student``)."""
    return sorted({row['variant'] for row in _rows(root) if row['variant']})


def teacher_stages(root: str = REPO_ROOT) -> Tuple[str, ...]:
    """The stages whose configs name the teacher (architecture or weights):
    those with a row per teacher (``--teacher``), in the table's order."""
    return tuple(dict.fromkeys(
        row['stage'] for row in _rows(root) if row['teacher']))


def student_stages(root: str = REPO_ROOT) -> Tuple[str, ...]:
    """The stages whose configs are the student's: those with rows of
    another student (``--student``), in the table's order."""
    return tuple(dict.fromkeys(
        row['stage'] for row in _rows(root) if row['variant']))


def alias_text(row: Dict[str, Optional[str]]) -> str:
    """The content of ``configs/mmcast/<short>.py``: the config, and its
    work dir (where the next stage's config looks for its checkpoint)."""
    name = osp.basename(row['config'])
    return (
        '# Short name of the config below (generated from '
        'configs/mmcast/stages.json\n'
        '# by tools/misc/config_aliases.py); it trains in that config\'s '
        'work dir,\n'
        '# where the next stage\'s config looks for its checkpoint.\n'
        f"_base_ = './{row['config']}.py'  # noqa: E501\n"
        f"work_dir = './work_dirs/{name}'  # noqa: E501\n")

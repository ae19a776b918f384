# Copyright (c) mmcast contributors. All rights reserved.
"""``--reuse-from``: link the finished stages an ablation does not change,
and the config comparison that decides what "unchanged" is."""
import json
import os
import os.path as osp
from typing import List, Tuple

from ..stage_state import FINISHED, stage_status
from .settings import (RESULT_NEUTRAL_KEYS, SCRIPT_SET_KEYS, STANDIN_TEACHER,
                       STUDENT_FOUNDATION, TEACHER_MARKER, UPSTREAM)
from .stage import Stage


class StageReuse:
    """``--reuse-from``: link the finished stages an ablation does not change,
    and the config comparison that decides what "unchanged" is.

    A part of :class:`~mmcast.apis.pipeline.CASTPipeline`; it uses the
    attributes that class sets.
    """

    def link_reused(self, stages: List[Stage], dry: bool) -> None:
        """``--reuse-from``: link every finished stage of that work dir that
        this run would train (or test) alike (see :meth:`_reusable`;
        ``--nproc`` is not compared). A stage trained here stays; a link
        left by an earlier run (with or without ``--reuse-from`` now) stays
        when it is still alike, and is refused when this run changes its
        stage. A stage finished here with another config than this run's
        (e.g. after a default changed) is refused too, not skipped. A dry
        run only prints the links."""
        base = self.args.reuse_from and osp.abspath(self.args.reuse_from)
        planned = {osp.relpath(st.work_dir, self.work_dir) for st in stages}
        linked = set()
        for stage in stages:
            rel = osp.relpath(stage.work_dir, self.work_dir)
            if osp.islink(stage.work_dir):
                if not self._reusable(stage, stage.work_dir, linked, planned):
                    raise SystemExit(
                        f'{stage.work_dir} links to '
                        f'{os.readlink(stage.work_dir)}, but this run trains '
                        f'{stage.name} differently: remove the link (or use '
                        'another --work-dir)')
                linked.add(rel)
                continue
            if stage.max_iters is not None and \
                    self._finished_in(stage, stage.work_dir) and \
                    not self._same_config(stage, stage.work_dir):
                raise SystemExit(
                    f'{stage.work_dir} holds {stage.name} trained with '
                    'another config than this run\'s: remove it (or use '
                    'another --work-dir)')
            source = osp.join(base, rel) if base else ''
            if not base or osp.lexists(stage.work_dir) or \
                    not self._reusable(stage, source, linked, planned):
                continue  # trained here
            linked.add(rel)
            print(f'[{stage.name}] reused from {source}', flush=True)
            if dry:
                continue
            links = [(source, stage.work_dir)]
            if osp.dirname(rel):  # a seed's stage: its val predictions too
                links.append((self.predictions_file(osp.dirname(source),
                                                    stage.key),
                              self.predictions_file(
                                  osp.dirname(stage.work_dir), stage.key)))
            for target, link in links:
                if osp.exists(target) and not osp.lexists(link):
                    os.makedirs(osp.dirname(link), exist_ok=True)
                    os.symlink(target, link)

    def _reusable(self, stage: Stage, source: str, linked: set,
                  planned: set) -> bool:
        """Whether ``source`` holds ``stage`` finished and trained alike
        (:meth:`_same_config`), and every stage it is trained from
        (:data:`UPSTREAM`) is linked too."""
        rel = osp.relpath(stage.work_dir, self.work_dir)
        return all(u in linked or u not in planned
                   for u in self._upstream(rel, stage.key)) and \
            self._finished_in(stage, osp.realpath(source)) and \
            self._same_config(stage, source)

    def _check_reuse_base(self, base: str) -> None:
        """The ``--reuse-from`` work dir: another one, of this teacher."""
        if osp.realpath(base) == osp.realpath(self.work_dir):
            raise SystemExit('--reuse-from names the --work-dir itself')
        marker = osp.join(base, TEACHER_MARKER)
        if not osp.isfile(marker):
            raise SystemExit(f'--reuse-from {base}: no pipeline work dir '
                             f'(no {TEACHER_MARKER})')
        with open(marker, encoding='utf-8') as f:
            teacher = json.load(f).get('teacher')
        if teacher != self.teacher:
            raise SystemExit(f'--reuse-from {base} holds the stages of '
                             f'--teacher {teacher}, not {self.teacher}')

    def _upstream(self, rel: str, key: str) -> List[str]:
        """The work dirs (relative) of the stages ``key`` is made from."""
        top = {'toy_foundation': self.teacher_cfg['toy_foundation'],
               STUDENT_FOUNDATION: STUDENT_FOUNDATION,
               STANDIN_TEACHER: STANDIN_TEACHER}
        return [top.get(u, osp.join(osp.dirname(rel), u))
                for u in UPSTREAM[key]]

    def _same_config(self, stage: Stage, source: str) -> bool:
        """Whether the config ``stage`` would run with, its work dir's paths
        moved to where ``source`` was trained, is the one MMEngine dumped
        into ``source`` (all but the keys the train / test scripts set from
        their command line)."""
        from mmengine.config import Config

        dumped = osp.join(source, osp.basename(stage.config))
        if not osp.isfile(dumped):
            return False
        try:
            theirs = Config.fromfile(dumped).to_dict()
        except Exception:  # noqa: BLE001 - cut short (a full disk, say)
            return False
        # the work dir the stage was trained in: the one its dumped config
        # names (a work dir copied or moved since, or a stage linked from
        # another run, names its old place), else where source leads
        rel = os.sep + osp.relpath(stage.work_dir, self.work_dir)
        trained_in = str(theirs.get('work_dir') or '')
        if not trained_in.endswith(rel):
            trained_in = osp.realpath(source)
        base = trained_in[:-len(rel)] if trained_in.endswith(rel) else \
            source[:-len(rel)]
        ours = self.load_config(stage).to_dict()
        if stage.checkpoint:  # what test.py sets from --checkpoint
            ours['load_from'] = stage.checkpoint
        if theirs.get('resume'):  # train.py --resume replaced its load_from
            ours.pop('load_from', None)
            theirs.pop('load_from', None)
        for key in SCRIPT_SET_KEYS:
            ours.pop(key, None)
            theirs.pop(key, None)
        for *parents, key in RESULT_NEUTRAL_KEYS:
            for cfg in (ours, theirs):
                for parent in parents:
                    cfg = cfg.get(parent) if isinstance(cfg, dict) else None
                if isinstance(cfg, dict):
                    cfg.pop(key, None)
        # paths into either work dir (options, MMCAST_TINY_TEACHERS) alike
        return _plain(ours, (self.work_dir, WORK_DIR_MARK)) == \
            _plain(theirs, (base, WORK_DIR_MARK))

    @staticmethod
    def _finished_in(stage: Stage, work_dir: str) -> bool:
        """Whether ``work_dir`` holds ``stage`` finished
        (:func:`~mmcast.apis.stage_status`), or (a test stage) its row in
        the seed's results."""
        if stage.max_iters is not None:
            return stage_status(work_dir, stage.max_iters) == FINISHED
        results = osp.join(osp.dirname(work_dir), 'results.json')
        if not osp.isfile(results):
            return False
        with open(results, encoding='utf-8') as f:
            return stage.key in json.load(f)


# what a path into the work dir becomes when two configs are compared
WORK_DIR_MARK = '<work_dir>'


def _plain(value, move: Tuple[str, str] = ('', '')):
    """A config value with tuples as lists (as a dumped config reads) and,
    in its strings, the path ``move[0]`` replaced by ``move[1]``."""
    if isinstance(value, dict):
        return {k: _plain(v, move) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, move) for v in value]
    if isinstance(value, str) and move[0]:
        return value.replace(*move)
    return value

# Copyright (c) mmcast contributors. All rights reserved.
"""Progress of the pipeline's running stages, read from their json logs.

Each stage runs in its own process and writes MMEngine's json log
(``<work_dir>/<timestamp>/vis_data/<timestamp>.json``: a record per logging
interval with ``step``, ``loss`` and ``time`` per iteration, and one per
validation with ``coco/segm_mAP``). :class:`ProgressMonitor` reads those
logs in a background thread and shows, for each running stage, the
iteration, ETA, last loss and last val AP: a tqdm bar per stage on a
terminal, otherwise a plain line per stage every ``interval`` seconds when
it changed, followed by the run's overall progress and ETA.
"""
import datetime
import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, TextIO, Tuple

from mmcast.utils.stage_state import SEGM_AP_KEY, json_logs


@dataclass
class StageProgress:
    """What a stage's json logs say so far.

    Args:
        iteration (int): The last logged iteration (0: none yet).
        seconds_per_iter (float, optional): Mean time of the last records.
        loss (float, optional): The last logged training loss.
        val_ap (float, optional): The last logged mask AP (×100).
    """
    iteration: int = 0
    seconds_per_iter: Optional[float] = None
    loss: Optional[float] = None
    val_ap: Optional[float] = None

    @classmethod
    def read(cls, work_dir: str) -> 'StageProgress':
        """Read every json log of ``work_dir``, oldest first: the newest
        record counts (a resumed run continues the iterations of the one
        before; a run started over counts from its own first iteration)."""
        progress = cls()
        times = []
        for path in reversed(json_logs(work_dir)):
            try:
                with open(path, encoding='utf-8', errors='replace') as f:
                    lines = f.readlines()
            except OSError:  # rotated or removed meanwhile
                continue
            for line in lines:
                try:
                    record = json.loads(line)
                except ValueError:  # a line being written
                    continue
                progress._add(record, times)
        if times:
            recent = times[-5:]
            progress.seconds_per_iter = sum(recent) / len(recent)
        return progress

    def _add(self, record: dict, times: list) -> None:
        if SEGM_AP_KEY in record:
            self.val_ap = 100 * float(record[SEGM_AP_KEY])
        elif 'loss' in record and 'step' in record:
            self.iteration = int(record['step'])
            self.loss = float(record['loss'])
            if 'time' in record:
                times.append(float(record['time']))

    def eta(self, max_iters: int) -> Optional[datetime.timedelta]:
        """Time left at the logged speed (``None`` before the first log)."""
        if self.seconds_per_iter is None:
            return None
        left = max(max_iters - self.iteration, 0) * self.seconds_per_iter
        return datetime.timedelta(seconds=round(left))

    def describe(self, max_iters: int) -> str:
        """``iter 120/1600 ETA 0:12:31 loss 2.345 val AP 31.2``."""
        eta = self.eta(max_iters)
        parts = [f'iter {self.iteration}/{max_iters}',
                 f'ETA {eta}' if eta is not None else 'ETA -',
                 f'loss {self.loss:.4g}' if self.loss is not None
                 else 'loss -',
                 f'val AP {self.val_ap:.1f}' if self.val_ap is not None
                 else 'val AP -']
        return ' '.join(parts)


@dataclass
class _Running:
    label: str
    work_dir: str
    max_iters: int
    watch: Optional[Tuple[str, Callable[[], List[str]]]] = None
    started: float = field(default_factory=time.time)
    bar: object = None
    shown: str = ''  # the last progress shown (without the running time)


@dataclass
class _Planned:
    """A stage of the run, for the overall ETA (a test has 0 iterations:
    its time is not estimated)."""
    key: str
    work_dir: str
    max_iters: int
    done: bool = False


class ProgressMonitor:
    """Shows the progress of the running stages until :meth:`close`.

    Each stage's progress line is shown when it changes (never the same line
    twice), and, after a round of lines and when a stage is done, the run's
    overall progress and ETA (:meth:`plan`): the iterations every unfinished training stage has left
    at its measured speed, or at the speed measured for the same stage of
    another seed, or at the mean speed of the stages measured so far,
    spread over the stages run at once.

    Args:
        interval (float): Seconds between plain lines (non-terminal
            output). Defaults to 30.
        stream (TextIO, optional): Where to write. Defaults to stdout.
        bars (bool, optional): tqdm bars instead of lines. Defaults to
            whether ``stream`` is a terminal.
    """

    def __init__(self, interval: float = 30.0,
                 stream: Optional[TextIO] = None,
                 bars: Optional[bool] = None) -> None:
        self.interval = interval
        self.stream = stream or sys.stdout
        self.bars = self.stream.isatty() if bars is None else bars
        self._running: Dict[str, _Running] = {}
        self._planned: Dict[str, _Planned] = {}
        self._followed: set = set()  # labels of the stages started
        self._jobs = 1
        self._overall = ''
        self._lock = threading.Lock()
        self._overall_lock = threading.Lock()  # shown once, from any thread
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def plan(self, stages: List[Tuple[str, str, str, int]],
             jobs: int = 1) -> None:
        """The run's stages ``(label, key, work_dir, max_iters)`` (0
        iterations: a test), for the overall progress; ``jobs`` run at
        once."""
        with self._lock:
            self._planned = {label: _Planned(key, work_dir, max_iters)
                             for label, key, work_dir, max_iters in stages}
            self._jobs = max(1, jobs)

    def done(self, label: str) -> None:
        """A stage of :meth:`plan` is finished (trained, or found done);
        after one this run followed (:meth:`start`), the run's progress is
        shown while stages are left (a stage shorter than the interval shows
        no line of its own; a rerun that finds every stage done shows
        none)."""
        with self._lock:
            if label in self._planned:
                self._planned[label].done = True
            left = any(not stage.done for stage in self._planned.values())
            followed = label in self._followed
        if left and followed:
            self._show_overall()

    def start(self, label: str, work_dir: str, max_iters: int,
              watch: Optional[Tuple[str, Callable[[], List[str]]]] = None
              ) -> None:
        """Follow a stage that starts now (``label``: e.g. ``[seed 0]
        [stage 2]``). ``watch``: ``(path, lines)``: when the stage writes
        ``path`` (e.g. its pseudo-labels), ``lines()`` is shown once."""
        running = _Running(label, work_dir, max_iters, watch)
        if self.bars:
            from tqdm import tqdm
            running.bar = tqdm(
                total=max_iters, desc=label, file=self.stream,
                dynamic_ncols=True, leave=False,
                bar_format='{desc} |{bar}| {n}/{total}{postfix}')
        with self._lock:
            self._running[label] = running
            self._followed.add(label)

    def finish(self, label: str) -> None:
        """Stop following a stage; its last state is shown if it changed."""
        with self._lock:
            running = self._running.pop(label, None)
        if running is not None:
            self._show(running, final=True)

    def write(self, line: str) -> None:
        """Print a line without breaking the bars."""
        if self.bars:
            from tqdm import tqdm
            tqdm.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        """Stop the thread and the bars."""
        self._stop.set()
        self._thread.join()
        with self._lock:
            running, self._running = list(self._running.values()), {}
        for stage in running:
            if stage.bar is not None:
                stage.bar.close()

    def _loop(self) -> None:
        period = min(self.interval, 2.0) if self.bars else self.interval
        while not self._stop.wait(period):
            with self._lock:
                running = list(self._running.values())
            shown = [self._show(stage) for stage in running]
            if any(shown):
                self._show_overall()

    def _show(self, stage: _Running, final: bool = False) -> bool:
        """Show the stage's progress if it changed; ``True`` if shown."""
        self._check_watch(stage)
        progress = StageProgress.read(stage.work_dir)
        text = progress.describe(stage.max_iters)
        changed, stage.shown = text != stage.shown, text
        if stage.bar is not None:
            stage.bar.n = min(progress.iteration, stage.max_iters)
            stage.bar.set_postfix_str(text.split(' ', 2)[-1], refresh=True)
            if final:
                stage.bar.close()
                self.write(f'{stage.label} {text}')
            return changed
        if not changed:
            return False
        elapsed = datetime.timedelta(seconds=round(time.time() - stage.started))
        self.write(f'{stage.label} {text} (running {elapsed})')
        return True

    def _check_watch(self, stage: _Running) -> None:
        """Show the watched file's lines once it was written by the stage."""
        if stage.watch is None:
            return
        path, lines = stage.watch
        try:
            written = os.path.getmtime(path) >= stage.started - 1
        except OSError:
            return
        if written:
            stage.watch = None
            for line in lines():
                self.write(line)

    def _show_overall(self) -> None:
        with self._overall_lock:
            line = self.overall()
            if line and line != self._overall:
                self._overall = line
                self.write(line)

    def overall(self) -> str:
        """``run: 3 of 14 stages done, ETA 0:20:00`` ('' without a
        plan)."""
        with self._lock:
            planned = list(self._planned.values())
            jobs = self._jobs
        if not planned:
            return ''
        left, speeds, by_key = [], [], {}
        for stage in planned:
            progress = StageProgress.read(stage.work_dir) \
                if stage.max_iters else StageProgress()
            if progress.seconds_per_iter is not None:
                speeds.append(progress.seconds_per_iter)
                by_key.setdefault(stage.key, progress.seconds_per_iter)
            if not stage.done:
                left.append((stage, progress))
        done = len(planned) - len(left)
        line = f'run: {done} of {len(planned)} stages done'
        if not any(st.max_iters for st, _ in left):
            return line
        if not speeds:
            return line + ', ETA -'
        mean = sum(speeds) / len(speeds)
        seconds = sum(
            max(st.max_iters - p.iteration, 0) *
            (p.seconds_per_iter or by_key.get(st.key, mean))
            for st, p in left)
        training = sum(1 for st, _ in left if st.max_iters)
        eta = datetime.timedelta(seconds=round(seconds /
                                               min(jobs, training)))
        return line + f', ETA {eta}'

# Copyright (c) mmcast contributors. All rights reserved.
"""Progress of the pipeline's running stages, read from their json logs.

Each stage runs in its own process and writes MMEngine's json log
(``<work_dir>/<timestamp>/vis_data/<timestamp>.json``: a record per logging
interval with ``step``, ``loss`` and ``time`` per iteration, and one per
validation with ``coco/segm_mAP``). :class:`ProgressMonitor` reads those
logs in a background thread and shows, for each running stage, the
iteration, ETA, last loss and last val AP: a tqdm bar per stage on a
terminal, a plain line per stage every ``interval`` seconds otherwise.
"""
import datetime
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, Optional, TextIO

from .stage_state import SEGM_AP_KEY, json_logs


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
        """Read every json log of ``work_dir`` (a resumed run continues the
        iterations of the one before)."""
        progress = cls()
        times = []
        for path in reversed(json_logs(work_dir)):  # oldest first
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
            self.iteration = max(self.iteration, int(record['step']))
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
    started: float = field(default_factory=time.time)
    bar: object = None


class ProgressMonitor:
    """Shows the progress of the running stages until :meth:`close`.

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
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def start(self, label: str, work_dir: str, max_iters: int) -> None:
        """Follow a stage that starts now (``label``: e.g. ``[seed 0]
        [stage 2]``)."""
        running = _Running(label, work_dir, max_iters)
        if self.bars:
            from tqdm import tqdm
            running.bar = tqdm(
                total=max_iters, desc=label, file=self.stream,
                dynamic_ncols=True, leave=False,
                bar_format='{desc} |{bar}| {n}/{total}{postfix}')
        with self._lock:
            self._running[label] = running

    def finish(self, label: str) -> None:
        """Stop following a stage; its last state is shown once more."""
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
            for stage in running:
                self._show(stage)

    def _show(self, stage: _Running, final: bool = False) -> None:
        progress = StageProgress.read(stage.work_dir)
        if stage.bar is not None:
            stage.bar.n = min(progress.iteration, stage.max_iters)
            stage.bar.set_postfix_str(progress.describe(stage.max_iters)
                                      .split(' ', 2)[-1], refresh=True)
            if final:
                stage.bar.close()
                self.write(f'{stage.label} {progress.describe(stage.max_iters)}')
            return
        elapsed = datetime.timedelta(seconds=round(time.time() - stage.started))
        self.write(f'{stage.label} {progress.describe(stage.max_iters)} '
                   f'(running {elapsed})')

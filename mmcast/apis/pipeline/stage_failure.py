# Copyright (c) mmcast contributors. All rights reserved.
"""A failed stage, told on the console by its own exception.

A stage's output goes to its log file; when the stage fails, the pipeline
shows the exception the stage raised and its last frames, read back from
that log, instead of a traceback of the pipeline itself.
"""
import os.path as osp
import re
import shutil
from typing import List, Optional

TRACEBACK_START = 'Traceback (most recent call last):'
_FRAME = re.compile(r'^\s*File "')
# Exceptions of the launchers around a stage, not the stage's own.
LAUNCHER_ERRORS = ('ChildFailedError', 'CalledProcessError')


# What a write to a full disk raises, as it appears in a log.
DISK_FULL_MARKS = ('No space left on device', '[Errno 28]')


class StageFailed(RuntimeError):
    """A stage's process exited non-zero, or the stage could not start.

    Args:
        name (str): The stage, e.g. ``'[seed 0] [stage 2]'``.
        returncode (int, optional): Its exit status (``None``: not
            started).
        log_file (str): Where its output is.
        cause (str, optional): The root cause when the pipeline knows it
            (e.g. a full disk, whose stage log may be cut short), printed
            first.
    """

    def __init__(self, name: str, returncode: Optional[int], log_file: str,
                 cause: Optional[str] = None) -> None:
        self.name = name
        self.returncode = returncode
        self.log_file = log_file
        self.cause = cause
        what = 'failed' if returncode is None else \
            f'failed (exit {returncode})'
        super().__init__(f'{name} {what}; ' + (cause or f'see {log_file}'))

    def report(self, frames: int = 3) -> str:
        """What to print: the stage, the root cause when known, its
        exception with its last ``frames`` frames, and the log file."""
        if self.returncode is None:
            return f'{self.name} {self.cause}'
        lines = [f'{self.name} failed (exit {self.returncode}):']
        if self.cause:
            lines.append(f'  {self.cause}')
        excerpt = last_exception(self.log_file, frames)
        lines += ['  ' + ln for ln in excerpt] or \
            ['  (no Python traceback in its log: see the end of the log)']
        lines.append(f'  full log: {self.log_file}')
        return '\n'.join(lines)


def disk_full_cause(work_dir: str, log_file: str,
                    need_bytes: Optional[int] = None) -> Optional[str]:
    """``'no space left on device: <work dir> has N MiB free ...'`` when a
    failed stage most likely ran out of disk: its log says so, or the work
    dir has less room than one of its checkpoints (``need_bytes`` covers the
    checkpoints the stage keeps; the log may have been cut by the full
    disk itself). ``None`` otherwise."""
    folder = work_dir
    while not osp.isdir(folder) and osp.dirname(folder) != folder:
        folder = osp.dirname(folder)
    free = shutil.disk_usage(folder).free
    said = _log_says_disk_full(log_file)
    low = free < max((need_bytes or 0) // 4, 64 << 20)
    if not (said or low):
        return None
    line = f'no space left on device: {work_dir} has {free >> 20} MiB free'
    if need_bytes:
        line += f' (its checkpoints take about {need_bytes >> 20} MiB)'
    return line + ': free space, then run the same command again to resume'


def _log_says_disk_full(log_file: str, tail_bytes: int = 1 << 16) -> bool:
    try:
        with open(log_file, 'rb') as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - tail_bytes))
            tail = f.read().decode('utf-8', errors='replace')
    except OSError:
        return False
    return any(mark in tail for mark in DISK_FULL_MARKS)


def last_exception(log_file: str, frames: int = 3) -> List[str]:
    """The last Python traceback in ``log_file``, shortened to its last
    ``frames`` frames and the exception lines; ``[]`` when there is none.

    Frames of a chained exception (``During handling ...``) before the last
    traceback are left out: the last one is what stopped the process.
    """
    try:
        with open(log_file, encoding='utf-8', errors='replace') as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    starts = [i for i, ln in enumerate(lines) if ln.strip() == TRACEBACK_START]
    ends = starts[1:] + [len(lines)]
    excerpts = [_excerpt(lines[i + 1:end], frames)
                for i, end in zip(starts, ends)]
    # a launcher's own traceback (torchrun, mim) only says the child failed
    own = [e for e in excerpts if e and not any(
        w in line for line in e for w in LAUNCHER_ERRORS)]
    return (own or excerpts or [[]])[-1]


def _excerpt(block: List[str], frames: int) -> List[str]:
    """One traceback (the lines after its first line), shortened."""
    frame_starts = [i for i, ln in enumerate(block) if _FRAME.match(ln)]
    if not frame_starts:
        return block[:5]
    # the exception: the lines after the last frame's code line(s)
    last = frame_starts[-1]
    end = last + 1
    while end < len(block) and block[end].startswith((' ', '\t')) and \
            not _FRAME.match(block[end]):
        end += 1
    exception = [ln for ln in block[end:end + 40] if ln.strip()]
    # the exception text ends where the process's later output begins
    exception = exception[:_exception_length(exception)]
    kept = block[frame_starts[max(0, len(frame_starts) - frames)]:end]
    skipped = len(frame_starts) - frames
    head = [f'{TRACEBACK_START} ({skipped} earlier frames in the log)'] \
        if skipped > 0 else [TRACEBACK_START]
    return head + kept + exception


def _exception_length(lines: List[str]) -> int:
    """How many of ``lines`` belong to the exception message: up to the
    first line that looks like other output (a log record, a shell's
    ``ERROR`` line)."""
    for i, line in enumerate(lines[1:], 1):
        if re.match(r'^(\d\d/\d\d \d\d:\d\d:\d\d|E\d{4}|\[|ERROR|W\d{4})',
                    line):
            return i
    return min(len(lines), 20)

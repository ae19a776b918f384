# Copyright (c) mmcast contributors. All rights reserved.
"""A failed stage, told on the console by its own exception.

A stage's output goes to its log file; when the stage fails, the pipeline
shows the exception the stage raised and its last frames, read back from
that log, instead of a traceback of the pipeline itself.
"""
import re
from typing import List

TRACEBACK_START = 'Traceback (most recent call last):'
_FRAME = re.compile(r'^\s*File "')
# Exceptions of the launchers around a stage, not the stage's own.
LAUNCHER_ERRORS = ('ChildFailedError', 'CalledProcessError')


class StageFailed(RuntimeError):
    """A stage's process exited non-zero.

    Args:
        name (str): The stage, e.g. ``'[seed 0] [stage 2]'``.
        returncode (int): Its exit status.
        log_file (str): Where its output is.
    """

    def __init__(self, name: str, returncode: int, log_file: str) -> None:
        self.name = name
        self.returncode = returncode
        self.log_file = log_file
        super().__init__(f'{name} failed (exit {returncode}); see {log_file}')

    def report(self, frames: int = 3) -> str:
        """What to print: the stage, its exception with its last
        ``frames`` frames, and the log file."""
        excerpt = last_exception(self.log_file, frames)
        lines = [f'{self.name} failed (exit {self.returncode}):']
        lines += ['  ' + ln for ln in excerpt] or \
            ['  (no Python traceback in its log: see the end of the log)']
        lines.append(f'  full log: {self.log_file}')
        return '\n'.join(lines)


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

# Copyright (c) mmcast contributors. All rights reserved.
"""Append batches of text to a file on a background thread, in order."""
import collections
import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, Callable, Deque

# batches encoded / written behind the caller at most (host memory bound)
MAX_PENDING_BATCHES = 2


class ShardWriter:
    """Encodes and appends batches to a shard on one background thread.

    Each :meth:`submit` queues one batch; the thread runs ``encode(*args)``
    (returning the batch's text) and writes it with one ``write``, then
    ``flush`` and ``fsync``, so that a killed run leaves whole batches and
    at most one truncated line. One thread: batches land in submission
    order. At most ``max_pending`` batches are queued: :meth:`submit` waits
    for the oldest beyond that. An exception of the thread is raised in the
    calling thread by the next :meth:`submit` or :meth:`drain`, and no later
    batch is written.

    Args:
        file (IO): The shard, open for appending.
        on_written (Callable[[int], None]): Called in the calling thread with
            the number of lines of each written batch, in order.
        max_pending (int): Queued batches at most. Defaults to
            ``MAX_PENDING_BATCHES``.
    """

    def __init__(self,
                 file: IO,
                 on_written: Callable[[int], None],
                 max_pending: int = MAX_PENDING_BATCHES) -> None:
        if max_pending < 1:
            raise ValueError(f'max_pending must be >= 1, got {max_pending}')
        self.file = file
        self.on_written = on_written
        self.max_pending = max_pending
        self._pending: Deque[Future] = collections.deque()
        self._failed = False
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix='pseudo-label-writer')

    def _write(self, encode: Callable[..., str], num_lines: int,
               *args) -> int:
        if self._failed:  # an earlier batch failed: keep the shard in order
            raise RuntimeError('an earlier batch failed to be written')
        try:
            self.file.write(encode(*args))
            self.file.flush()
            os.fsync(self.file.fileno())
        except BaseException:
            self._failed = True
            raise
        return num_lines

    def _collect_oldest(self) -> None:
        self.on_written(self._pending.popleft().result())

    def submit(self, encode: Callable[..., str], num_lines: int,
               *args) -> None:
        """Queue a batch of ``num_lines`` lines, text ``encode(*args)``."""
        while len(self._pending) >= self.max_pending:
            self._collect_oldest()
        self._pending.append(
            self._executor.submit(self._write, encode, num_lines, *args))

    def drain(self) -> None:
        """Wait until every queued batch is written."""
        while self._pending:
            self._collect_oldest()

    def close(self) -> None:
        """Write what is queued and stop the thread. After an exception of
        the caller, the batches queued before it are still written (and a
        failure of theirs is left to the caller's exception)."""
        self._executor.shutdown(wait=True)
        self._pending.clear()

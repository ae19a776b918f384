# Copyright (c) mmcast contributors. All rights reserved.
"""How a labelling command line stops: Ctrl-C, SIGTERM or SIGHUP end it with
one line saying how many images a rerun keeps, and an exit status."""
import signal
import sys
import threading
from typing import Optional

from mmengine.dist import get_dist_info

from mmcast.utils.interrupts import raise_terminated
from .labeling_job import OfflineLabelingJob

# what a labelling command line says when stopped before it has a job
NOT_BEGUN = 'interrupted before labelling began; run the same command to ' \
    'start it'


class LabelingInterrupts:
    """Ends a labelling command line stopped by Ctrl-C, SIGTERM or SIGHUP
    with one line on stderr (rank 0) and an exit status, no traceback.

    Inside ``with``, SIGTERM and SIGHUP raise
    :class:`~mmcast.utils.interrupts.Terminated` (in the
    main thread) as Ctrl-C raises ``KeyboardInterrupt``; either ends the
    block, is swallowed, prints ``interrupted after N of M images; run the
    same command to resume`` (:meth:`OfflineLabelingJob.kept` of
    :attr:`job`; :data:`NOT_BEGUN` without a job) and sets :attr:`status`
    to 128 + the signal (130, 143, 129). The signal handlers are put back
    on leaving.

    Attributes:
        job (OfflineLabelingJob | None): The job, set once built.
        status (int | None): The exit status after an interruption.
    """

    def __init__(self) -> None:
        self.job: Optional[OfflineLabelingJob] = None
        self.status: Optional[int] = None
        self._previous: dict = {}

    def __enter__(self) -> 'LabelingInterrupts':
        if threading.current_thread() is threading.main_thread():
            self._previous = {
                signum: signal.signal(signum, raise_terminated)
                for signum in (signal.SIGTERM, signal.SIGHUP)}
        return self

    def message(self) -> str:
        """The line an interruption ends with."""
        if self.job is None:
            return NOT_BEGUN
        try:
            done, total = self.job.kept()
        except (Exception, KeyboardInterrupt):  # stopped again while counting
            return 'interrupted; run the same command to resume'
        return (f'interrupted after {done} of {total} images; run the same '
                'command to resume')

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if not isinstance(exc, KeyboardInterrupt):
                return False
            self.status = 128 + getattr(exc, 'signum', signal.SIGINT)
            if get_dist_info()[0] == 0:
                print(self.message(), file=sys.stderr, flush=True)
            return True
        finally:
            for signum, handler in self._previous.items():
                signal.signal(signum, handler)

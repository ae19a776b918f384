# Copyright (c) mmcast contributors. All rights reserved.
"""SIGTERM and SIGHUP as exceptions: a command line stops on them as on
Ctrl-C (``KeyboardInterrupt``), cleaning up the same way."""
import signal


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where Ctrl-C raises ``KeyboardInterrupt``.

    Args:
        signum (int): The signal.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def raise_terminated(signum: int, frame) -> None:
    """A signal handler that raises :class:`Terminated`."""
    raise Terminated(signum)

# Copyright (c) mmcast contributors. All rights reserved.
"""What the pipeline refuses to run with, as one exception type.

The library raises; only the command line (:func:`~mmcast.apis.pipeline.
main`) turns an exception into an exit status.
"""
from typing import List

# The exit status of a refused run (bad options, preflight problems).
PREFLIGHT_FAILED = 2


class PipelineError(ValueError):
    """An option, file or setting the pipeline cannot run with; its message
    names it and says what to do. The command line prints the message and
    exits with :data:`PREFLIGHT_FAILED`."""


class PreflightFailed(PipelineError):
    """The preflight found problems; no stage was started.

    Args:
        problems (list[str]): One line each.
    """

    def __init__(self, problems: List[str]) -> None:
        self.problems = list(problems)
        super().__init__('\n'.join(
            [f'preflight: {len(problems)} problem(s), no stage was '
             'started:'] + [f'  {line}' for line in problems]))

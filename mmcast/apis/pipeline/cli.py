# Copyright (c) mmcast contributors. All rights reserved.
"""``tools/cast_pipeline.py``'s command line, and :func:`run_pipeline` for
notebooks and schedulers."""
import logging
import sys
from typing import Dict, List, Optional

from ..stage_failure import StageFailed
from .cast_pipeline import CASTPipeline
from .options import parse_args


def quiet_console() -> None:
    """Keep the config loader's messages (``Using env variable ...``) and
    Python's warnings off the console; :meth:`CASTPipeline.log_to` writes them
    to a file."""
    from mmengine.logging import MMLogger

    # the logger MMEngine's print_log(logger='current') writes to
    for handler in MMLogger.get_instance('mmengine').handlers:
        if not isinstance(handler, logging.FileHandler):
            handler.setLevel(logging.WARNING)
    logging.captureWarnings(True)
    warnings_logger = logging.getLogger('py.warnings')
    warnings_logger.addHandler(logging.NullHandler())
    warnings_logger.propagate = False


def main(argv: Optional[List[str]] = None) -> None:
    """Run the pipeline; a failed stage is told by its own exception
    (exit 1), Ctrl-C stops the stages running (exit 130)."""
    args = parse_args(argv)
    if not args.verbose:
        quiet_console()
    try:
        CASTPipeline(args).run()
    except StageFailed as failure:
        print(failure.report(), file=sys.stderr, flush=True)
        print('the finished stages are kept: fix the cause and run the '
              'same command again to go on from there', file=sys.stderr)
        raise SystemExit(1)
    except KeyboardInterrupt:
        print('interrupted: the finished stages are kept; run the same '
              'command again to resume', file=sys.stderr)
        raise SystemExit(130)


def run_pipeline(dataset: str, work_dir: str, *options: str) -> Dict:
    """Run the CAST pipeline from Python (a notebook, a scheduler), as
    ``tools/cast_pipeline.py DATASET --work-dir WORK_DIR OPTIONS`` does,
    with the same resume, skip and refusal behaviour.

    Args:
        dataset (str): ``toy``, ``cityscapes``, ``ade20k``, ``coco``,
            ``custom`` or ``custom-cpu``.
        work_dir (str): The run's folder.
        *options (str): Further command-line options, e.g.
            ``'--seeds', '0', '1', '--iters', 'distill=400'``.

    Returns:
        dict: ``{seed: {stage key: dict(segm_AP, segm_AP50)}}``; ``{}`` for
        ``--dry-run``.

    Raises:
        StageFailed: A stage failed (``.report()`` tells why).
        SystemExit: Bad options, or preflight problems (code 2).
    """
    return CASTPipeline(parse_args([dataset, '--work-dir', work_dir,
                                    *options])).run()

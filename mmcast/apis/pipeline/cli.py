# Copyright (c) mmcast contributors. All rights reserved.
"""``tools/cast_pipeline.py``'s command line, and :func:`run_pipeline` for
notebooks and schedulers."""
import errno
import logging
import signal
import sys
import warnings
from typing import Callable, Dict, List, Optional

from mmcast.utils.interrupts import raise_terminated
from .cast_pipeline import CASTPipeline
from .errors import PREFLIGHT_FAILED, PipelineError
from .options import HelpRequested, parse_args
from .run_spec import RunSpec
from .settings import WORK_DIR_BUSY
from .stage_failure import StageFailed
from .work_dir_lock import FolderBusy, describe_holder


def quiet_console() -> Callable[[], None]:
    """Keep the config loader's messages (``Using env variable ...``) and
    Python's warnings off the console;
    :func:`~mmcast.apis.pipeline.cast_pipeline.log_to` writes them to a
    file.

    Returns:
        Callable[[], None]: Puts back what this changed (the console
        handlers' levels, the capture of warnings, the ``py.warnings``
        logger).
    """
    from mmengine.logging import MMLogger

    # the logger MMEngine's print_log(logger='current') writes to
    levels = {handler: handler.level
              for handler in MMLogger.get_instance('mmengine').handlers
              if not isinstance(handler, logging.FileHandler)}
    for handler in levels:
        handler.setLevel(logging.WARNING)
    showwarning = warnings.showwarning
    logging.captureWarnings(True)
    warnings_logger = logging.getLogger('py.warnings')
    propagate = warnings_logger.propagate
    null = logging.NullHandler()
    warnings_logger.addHandler(null)
    warnings_logger.propagate = False

    def restore() -> None:
        for handler, level in levels.items():
            handler.setLevel(level)
        if warnings.showwarning is not showwarning:  # capture was off
            logging.captureWarnings(False)  # puts back the one it swapped
        warnings_logger.removeHandler(null)
        warnings_logger.propagate = propagate

    return restore


def main(argv: Optional[List[str]] = None) -> int:
    """Run the pipeline; options or files it cannot run with are told in
    one message (exit 2); a failed stage is told by its own exception
    (exit 1); Ctrl-C, SIGTERM and SIGHUP stop the stages running (exit 130,
    143, 129); a work dir another pipeline holds is refused (exit
    :data:`~mmcast.apis.pipeline.settings.WORK_DIR_BUSY`); ``--help``
    prints the help on stdout (exit 0). Returns the exit status (0: every
    stage ran); ``tools/cast_pipeline.py`` exits with it. The signal
    handlers and the console's logging are left as they were found."""
    try:
        args = parse_args(argv)
    except HelpRequested as help_text:
        print(help_text, end='', flush=True)
        return 0
    except PipelineError as error:  # argparse's usage and message
        print(error, file=sys.stderr, flush=True)
        return PREFLIGHT_FAILED
    previous = {signum: signal.signal(signum, raise_terminated)
                for signum in (signal.SIGTERM, signal.SIGHUP)}
    restore_console = None if args.verbose else quiet_console()
    try:
        CASTPipeline(RunSpec.from_args(args)).run()
        return 0
    except PipelineError as error:
        print(error, file=sys.stderr, flush=True)
        return PREFLIGHT_FAILED
    except StageFailed as failure:
        print(failure.report(), file=sys.stderr, flush=True)
        print('the finished stages are kept: fix the cause and run the '
              'same command again to go on from there', file=sys.stderr)
        return 1
    except FolderBusy as busy:
        print(f'error: {args.work_dir} is in use by another pipeline '
              f'({describe_holder(busy.holder)}): nothing was written; wait '
              'for it to end, or use another --work-dir', file=sys.stderr)
        return WORK_DIR_BUSY
    except KeyboardInterrupt as stop:
        print('interrupted: the finished stages are kept; run the same '
              'command again to resume', file=sys.stderr)
        return 128 + getattr(stop, 'signum', signal.SIGINT)
    except OSError as e:  # the pipeline's own files (a full disk, say)
        name = errno.errorcode.get(e.errno, e.errno)
        print(f'error: {e.strerror or e} ({name}): '
              f'{e.filename or "a file of the pipeline"}; the finished '
              'stages are kept: fix the cause and run the same command '
              'again', file=sys.stderr)
        return 1
    finally:  # main() called from Python (a notebook) leaves them as found
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if restore_console is not None:
            restore_console()


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
        dict: ``{seed: {stage key: dict(segm_AP, segm_AP50, metric)}}``
        (Cityscapes: cityscapesscripts' AP, and pycocotools' as
        ``coco_segm_AP``, ``coco_segm_AP50``); ``{}`` for
        ``--dry-run``.

    Raises:
        PipelineError: Options or files it cannot run with (an unknown
            option, a value of the wrong type or out of range), preflight
            problems (:class:`PreflightFailed`) included, and ``--help``
            (:class:`~mmcast.apis.pipeline.options.HelpRequested`, the help
            as its message); never ``SystemExit``.
        StageFailed: A stage failed (``.report()`` tells why).
        FolderBusy: Another pipeline holds ``work_dir`` (``.holder`` says
            which).
    """
    return CASTPipeline(RunSpec.from_args(parse_args(
        [dataset, '--work-dir', work_dir, *options]))).run()

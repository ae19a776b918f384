# Copyright (c) mmcast contributors. All rights reserved.
"""Bad options from Python and from the command line.

``run_pipeline`` raises ``PipelineError`` with argparse's own words (never
``SystemExit``) for an option argparse refuses, and for an unknown dataset
or stage, before anything is written; ``main`` prints the same usage and
message on stderr, without a traceback, and returns 2. Good options parse
as before. ``--help`` is a ``PipelineError`` holding the help for
``run_pipeline``, printed on stdout (exit 0) by ``main``. A run leaves no
logging set up behind it: each logs to its own ``cast_pipeline.log`` only,
and ``main`` puts back the console's logging as it found it.
"""
import logging
import warnings

import pytest
from mmengine.logging import MMLogger

from mmcast.apis.pipeline import (PREFLIGHT_FAILED, PipelineError, RunSpec,
                                  main, parse_args, run_pipeline)
from mmcast.apis.pipeline import cast_pipeline
from mmcast.apis.pipeline.stage_graph import stage_keys

# (options, what the message says)
BAD_OPTIONS = [
    (['--teacher', 'nope'], "argument --teacher: invalid choice: 'nope'"),
    (['--no-such-flag'], 'unrecognized arguments: --no-such-flag'),
    (['--seeds', 'x'], "argument --seeds: invalid int value: 'x'"),
]
IDS = ['teacher', 'flag', 'seeds']


def refused(*args: str) -> PipelineError:
    """The exception ``run_pipeline(*args)`` raises (failing the test if it
    returns or raises anything else, ``SystemExit`` included)."""
    try:
        run_pipeline(*args)
    except BaseException as error:  # noqa: B036 - SystemExit is a failure
        assert isinstance(error, PipelineError), repr(error)
        assert not isinstance(error, SystemExit)
        return error
    pytest.fail(f'run_pipeline{args} ran')


@pytest.mark.parametrize('options,message', BAD_OPTIONS, ids=IDS)
def test_run_pipeline_raises_argparses_message(tmp_path, options, message):
    work_dir = tmp_path / 'run'
    with pytest.raises(PipelineError):
        run_pipeline('toy', str(work_dir), *options)
    error = refused('toy', str(work_dir), *options)
    text = str(error)
    assert text.startswith('usage: ')
    assert f': error: {message}' in text
    assert not work_dir.exists()


def test_an_unknown_dataset_is_refused(tmp_path):
    work_dir = tmp_path / 'run'
    with pytest.raises(PipelineError):
        run_pipeline('nosuchdataset', str(work_dir))
    message = str(refused('nosuchdataset', str(work_dir),
                          '--pretrained-teacher', str(tmp_path / 't.pth')))
    assert message.startswith("unknown dataset 'nosuchdataset': one of toy, ")
    assert 'custom-cpu' in message
    assert not work_dir.exists()


@pytest.mark.parametrize('options,message', BAD_OPTIONS, ids=IDS)
def test_main_prints_usage_and_message_and_returns_2(tmp_path, capsys,
                                                     options, message):
    work_dir = tmp_path / 'run'
    assert main(['toy', '--work-dir', str(work_dir), *options]) == \
        PREFLIGHT_FAILED == 2
    out, err = capsys.readouterr()
    assert out == ''
    assert err.startswith('usage: ')
    last = err.splitlines()[-1]  # the message, after the usage
    assert f': error: {message}' in last
    assert 'Traceback' not in err
    assert not work_dir.exists()


def test_an_unknown_stage_names_the_graphs_stages(tmp_path, capsys):
    work_dir = tmp_path / 'run'
    options = ['--stage-cfg-options', 'bogus:x=1']
    error = refused('toy', str(work_dir), *options)
    assert "'bogus:x=1'" in str(error)
    keys = stage_keys()
    assert len(keys) >= 8
    assert ', '.join(keys) in str(error)
    assert main(['toy', '--work-dir', str(work_dir), '--verbose',
                 *options]) == 2
    err = capsys.readouterr().err
    assert str(error) in err and 'Traceback' not in err
    assert not work_dir.exists()


def test_good_options_still_parse():
    args = parse_args([
        'toy', '--work-dir', 'w', '--seeds', '0', '1', '--teacher', 'sam3',
        '--methods', 'cast', 'gd', '--iters', 'distill=5',
        '--stage-cfg-options', 'distill:train_cfg.max_iters=9'
    ])
    assert (args.dataset, args.work_dir, args.seeds, args.teacher) == \
        ('toy', 'w', [0, 1], 'sam3')
    assert args.methods == ['cast', 'gd'] and args.iters == ['distill=5']
    assert args.stage_cfg_options == ['distill:train_cfg.max_iters=9']
    assert (args.distill_teacher, args.dry_run) == (None, False)
    assert RunSpec.from_args(args).distill_teacher == 'selftrained'


def test_help_is_an_error_for_python_and_printed_by_main(tmp_path, capsys):
    work_dir = tmp_path / 'run'
    text = str(refused('toy', str(work_dir), '--help'))
    assert text.startswith('usage: ')
    assert '--work-dir' in text and '--pretrained-teacher' in text
    assert not work_dir.exists()
    assert main(['--help']) == 0
    out, err = capsys.readouterr()
    assert out == text and err == ''


def _loggers():
    return (MMLogger.get_instance('mmengine'),
            logging.getLogger('py.warnings'))


def test_a_run_stops_logging_to_its_file_when_it_ends(tmp_path,
                                                      monkeypatch):
    """Two refused runs in one process: each run's log has its own lines
    only, and no file handler is left on the loggers."""

    def refuse(spec):  # the first step after the work dir is claimed
        for logger in _loggers():
            logger.warning('logged by the run of %s', spec.work_dir)
        raise PipelineError('no toy data here')

    monkeypatch.setattr(cast_pipeline, 'prepare_toy_data', refuse)
    before = [list(logger.handlers) for logger in _loggers()]
    first, second = tmp_path / 'first', tmp_path / 'second'
    for work_dir in (first, second):
        with pytest.raises(PipelineError, match='no toy data here'):
            run_pipeline('toy', str(work_dir))
    assert [list(logger.handlers) for logger in _loggers()] == before
    for logger in _loggers():
        logger.warning('logged after the runs')
    logs = {wd: (wd / 'cast_pipeline.log').read_text()
            for wd in (first, second)}
    for mine, other in ((first, second), (second, first)):
        assert logs[mine].count(f'logged by the run of {mine}') == 2
        assert str(other) not in logs[mine]
        assert 'logged after the runs' not in logs[mine]


def test_main_leaves_the_console_logging_as_it_found_it(tmp_path):
    showwarning = warnings.showwarning
    mmengine, py_warnings = _loggers()
    console = logging.StreamHandler()  # a console handler it quietens
    console.setLevel(logging.INFO)
    mmengine.addHandler(console)
    try:
        levels = [handler.level for handler in mmengine.handlers]
        handlers = list(py_warnings.handlers)
        propagate = py_warnings.propagate
        # refused after the console was quietened
        assert main(['toy', '--work-dir', str(tmp_path / 'run'),
                     '--stage-cfg-options', 'bogus:x=1']) == \
            PREFLIGHT_FAILED
        assert warnings.showwarning is showwarning
        assert [handler.level for handler in mmengine.handlers] == levels
        assert console.level == logging.INFO
        assert py_warnings.handlers == handlers
        assert py_warnings.propagate == propagate
    finally:
        mmengine.removeHandler(console)

# Copyright (c) mmcast contributors. All rights reserved.
"""How the pipeline tells a stage's state, progress and failure
(:mod:`mmcast.apis`), on work dirs laid out as MMEngine writes them: a
stage is finished only with its completion record (or, from before the
records, its final checkpoint and its metrics); progress and the val AP are
read from the json logs, a resumed run continuing the one before; a failed
stage is told by its own exception, not by a launcher's."""
import json
import os
import re
import os.path as osp

import pytest

from mmcast.apis import (CRASHED, FINISHED, NEW, StageFailed, StageProgress,
                         last_exception, logged_metrics, set_aside,
                         stage_status, write_completion)


def _checkpoint(work_dir: str, iteration: int) -> str:
    path = osp.join(work_dir, f'iter_{iteration}.pth')
    open(path, 'wb').close()
    with open(osp.join(work_dir, 'last_checkpoint'), 'w') as f:
        f.write(path)
    return path


def _json_log(work_dir: str, run: str, records: list) -> None:
    folder = osp.join(work_dir, run, 'vis_data')
    os.makedirs(folder, exist_ok=True)
    with open(osp.join(folder, f'{run}.json'), 'a') as f:
        for record in records:
            f.write(json.dumps(record) + '\n')


def _train(step: int, loss: float, time: float = 0.5) -> dict:
    return dict(lr=1e-4, loss=loss, time=time, data_time=0.01, iter=step,
                step=step)


def test_a_stage_is_finished_only_when_it_completed(tmp_path):
    wd = str(tmp_path / 'distill')
    os.makedirs(wd)
    assert stage_status(wd, 2) == NEW
    _checkpoint(wd, 1)  # died in iteration 2
    assert stage_status(wd, 2) == CRASHED
    final = _checkpoint(wd, 2)  # died in the final evaluation
    assert stage_status(wd, 2) == CRASHED
    write_completion(wd, final, 2)
    assert stage_status(wd, 2) == FINISHED
    # the same folder asked for a longer run: not finished
    assert stage_status(wd, 4) == CRASHED
    # a record of another length does not count
    other = str(tmp_path / 'other')
    os.makedirs(other)
    _checkpoint(other, 2)
    write_completion(other, osp.join(other, 'iter_1.pth'), 1)
    assert stage_status(other, 2) == CRASHED


def test_work_dirs_from_before_the_records_count_by_their_metrics(tmp_path):
    wd = str(tmp_path / 'finetune')
    os.makedirs(wd)
    _checkpoint(wd, 2)
    _json_log(wd, '20260101_000000', [_train(1, 3.0), _train(2, 2.5)])
    assert stage_status(wd, 2) == CRASHED  # trained, never evaluated
    _json_log(wd, '20260101_000000', [{'coco/segm_mAP': 0.25, 'step': 2}])
    assert stage_status(wd, 2) == FINISHED
    assert logged_metrics(wd)['coco/segm_mAP'] == 0.25


def test_a_crashed_run_is_set_aside_whole(tmp_path):
    wd = str(tmp_path / 'distill')
    os.makedirs(wd)
    _checkpoint(wd, 1)
    moved = set_aside(wd)
    assert not osp.exists(wd) and osp.isfile(osp.join(moved, 'iter_1.pth'))
    os.makedirs(wd)
    assert set_aside(wd) != moved  # a second one in the same second


def test_progress_follows_the_json_logs_across_a_resume(tmp_path):
    wd = str(tmp_path / 'distill')
    os.makedirs(wd)
    progress = StageProgress.read(wd)
    assert progress.iteration == 0 and progress.eta(100) is None
    assert progress.describe(100) == 'iter 0/100 ETA - loss - val AP -'
    _json_log(wd, '20260101_000000', [_train(10, 4.0, 1.0),
                                       _train(20, 3.0, 1.0)])
    # the resumed run: another folder, iterations continue
    _json_log(wd, '20260101_000100', [_train(30, 2.0, 2.0),
                                       {'coco/segm_mAP': 0.312, 'step': 30}])
    with open(osp.join(wd, '20260101_000100', 'vis_data',
                       '20260101_000100.json'), 'a') as f:
        f.write('{"loss": 1.5, "st')  # a line being written
    progress = StageProgress.read(wd)
    assert progress.iteration == 30 and progress.loss == 2.0
    assert progress.val_ap == pytest.approx(31.2)
    # 70 iterations left at the mean of the logged times (1, 1, 2)
    assert progress.eta(100).total_seconds() == round(70 * 4 / 3)
    assert progress.describe(100) == \
        'iter 30/100 ETA 0:01:33 loss 2 val AP 31.2'
    # a run started over (no checkpoint to resume from) counts from its own
    # first iteration, not from where the one before it stopped
    _json_log(wd, '20260101_000200', [_train(10, 3.5, 1.0)])
    progress = StageProgress.read(wd)
    assert (progress.iteration, progress.loss) == (10, 3.5)


TORCHRUN_LOG = """\
11/25 10:00:00 - mmengine - INFO - Iter(train) [1/2]  loss: 3.1
Traceback (most recent call last):
  File "/x/tools/train.py", line 121, in <module>
    main()
  File "/x/tools/train.py", line 117, in main
    runner.train()
  File "/x/mmengine/runner/runner.py", line 1777, in train
    model = self.train_loop.run()  # type: ignore
            ^^^^^^^^^^^^^^^^^^^^^
  File "/x/mmdet/models/layers/head.py", line 52, in instance_postprocess
    scores.flatten(0, 1).topk(max_per_image, sorted=False)
RuntimeError: selected index k out of range
E1125 10:00:01 torch/distributed/elastic/multiprocessing/api.py failed
Traceback (most recent call last):
  File "/x/torch/distributed/run.py", line 900, in main
    run(args)
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
============================================================
tools/train.py FAILED
"""


def test_a_failed_stage_is_told_by_its_own_exception(tmp_path):
    log = tmp_path / 'pipeline.log'
    log.write_text(TORCHRUN_LOG)
    lines = last_exception(str(log), frames=2)
    assert lines[0] == ('Traceback (most recent call last): '
                        '(2 earlier frames in the log)')
    assert lines[-1] == 'RuntimeError: selected index k out of range'
    assert 'instance_postprocess' in lines[-3]
    assert not any('ChildFailedError' in ln or 'E1125' in ln for ln in lines)
    report = StageFailed('[seed 0] [stage 2]', 1, str(log)).report()
    assert report.startswith('[seed 0] [stage 2] failed (exit 1):')
    assert report.endswith(f'full log: {log}')
    # a log without a Python traceback (killed, say)
    log.write_text('Killed\n')
    assert last_exception(str(log)) == []
    assert 'no Python traceback' in StageFailed('[x]', -9, str(log)).report()


def test_a_finished_stage_shows_the_run_at_once(tmp_path):
    """A stage that ends before the interval's first line still moves the
    run's line: shown when a stage this run trained is done while stages
    are left, with the ETA from the speed of the stages measured so far; a
    stage found done shows none."""
    import io

    from mmcast.apis import ProgressMonitor

    dirs = [str(tmp_path / name) for name in ('1a', '1b', '2')]
    _json_log(dirs[0], '20260101_000000', [_train(10, 1.0, time=2.0)])
    stream = io.StringIO()
    monitor = ProgressMonitor(interval=3600, stream=stream, bars=False)
    monitor.plan([(f'[seed 0] [stage {name}]', name, wd, 10)
                  for name, wd in zip(('1a', '1b', '2'), dirs)], jobs=1)
    monitor.start('[seed 0] [stage 1a]', dirs[0], 10)
    monitor.finish('[seed 0] [stage 1a]')
    monitor.done('[seed 0] [stage 1a]')
    # 20 iterations left at the 2 s of stage 1a's
    assert stream.getvalue().endswith(
        'run: 1 of 3 stages done, ETA 0:00:40\n'), stream.getvalue()
    monitor.done('[seed 0] [stage 1b]')  # found done: no line of its own
    monitor.start('[seed 0] [stage 2]', dirs[2], 10)
    monitor.done('[seed 0] [stage 2]')  # the last: nothing left to tell
    monitor.close()
    lines = stream.getvalue().splitlines()
    assert [line for line in lines if line.startswith('run:')] == [
        'run: 1 of 3 stages done, ETA 0:00:40']


@pytest.mark.parametrize('bars', [False, True])
def test_the_monitor_shows_each_running_stage(tmp_path, bars):
    """Plain lines every interval when a stage's progress changed (never
    the same line twice), or a tqdm bar per stage (a terminal); a stage's
    later progress is shown, and the lines of a file it writes once."""
    import io
    import time

    from mmcast.apis import ProgressMonitor

    dirs = {}
    for name, step in (('distill', 40), ('baseline', 7)):
        dirs[name] = str(tmp_path / name)
        os.makedirs(dirs[name])
        _json_log(dirs[name], '20260101_000000', [_train(step, 1.25)])
    stream = io.StringIO()
    pseudo = str(tmp_path / 'stage2.json')
    monitor = ProgressMonitor(interval=0.2, stream=stream, bars=bars)
    monitor.start('[seed 0] [stage 2]', dirs['distill'], 100,
                  watch=(pseudo, lambda: ['pseudo-labels: 3 instances']))
    monitor.start('[seed 1] [baseline]', dirs['baseline'], 50)
    time.sleep(1.5)
    with open(pseudo, 'w') as f:  # the stage writes its pseudo-labels
        f.write('{}')
    _json_log(dirs['baseline'], '20260101_000001', [_train(9, 1.5)])
    time.sleep(1.5)
    monitor.finish('[seed 0] [stage 2]')
    monitor.write('[seed 0] [distill] mask AP 12.3')
    monitor.close()
    out = stream.getvalue()
    assert '[seed 0] [stage 2] iter 40/100 ETA 0:00:30 loss 1.25' in out
    assert '[seed 0] [distill] mask AP 12.3' in out
    assert out.count('pseudo-labels: 3 instances') == 1
    if bars:  # tqdm redraws in place
        assert re.search(r'\[seed 1\] \[baseline\] \|[^|]*\| 7/50, ETA '
                         r'0:00:2\d loss 1.25', out) and '\r' in out
    else:
        for line in ('[seed 1] [baseline] iter 7/50 ETA 0:00:22 loss 1.25',
                     '[seed 1] [baseline] iter 9/50 ETA 0:00:20 loss 1.5',
                     '[seed 0] [stage 2] iter 40/100'):
            assert out.count(line) == 1, (line, out)

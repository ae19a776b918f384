# Copyright (c) mmcast contributors. All rights reserved.
"""How each stage runs: its command (:mod:`mmcast.apis.launchers`), its
process group (:mod:`mmcast.apis.stage_guard`) and log, and
train-or-resume with the completion record last."""
import os
import os.path as osp
import shutil
import signal
import subprocess
import sys
from typing import List, Optional

from .. import stage_guard
from ..launchers import printable, stage_command
from ..stage_failure import StageFailed, disk_full_cause
from ..stage_state import (CRASHED, FINAL_EVAL, FINISHED, NEW,
                           iteration_checkpoints, logged_metrics, set_aside,
                           stage_status, write_completion)
from .settings import REPO_ROOT
from .stage import Stage


class StageLaunching:
    """How each stage runs: its command (:mod:`mmcast.apis.launchers`), its
    process and log, and train-or-resume with the completion record last.

    A part of :class:`~mmcast.apis.pipeline.CASTPipeline`; it uses the
    attributes that class sets.
    """

    def _command(self, mode: str, config: str, work_dir: str,
                 extra: List[str]) -> List[str]:
        return stage_command(mode, config, work_dir, extra, self.launch,
                             job_name=osp.basename(work_dir))

    def _run(self, stage: Stage, cmd: List[str]) -> None:
        """Run ``cmd`` for ``stage`` under :mod:`~mmcast.apis.stage_guard`
        (its processes end with the pipeline), its output into the stage's
        log; a training run's progress is shown meanwhile."""
        log_file = osp.join(stage.work_dir, 'pipeline.log')
        self.say('$ ' + printable(cmd))
        followed = stage.max_iters is not None and self.monitor is not None
        if followed:
            self.monitor.start(stage.label, stage.work_dir, stage.max_iters,
                               watch=self.pseudo_label_watch(stage))
        guard = [sys.executable, stage_guard.__file__, str(os.getpid())]
        try:
            with open(log_file, 'a', encoding='utf-8') as log:
                proc = subprocess.Popen(guard + cmd, cwd=REPO_ROOT,
                                        stdout=log, stderr=subprocess.STDOUT,
                                        env=self.env)
                self._processes.add(proc)
                try:
                    returncode = proc.wait()
                finally:
                    self._processes.discard(proc)
        finally:
            if followed:
                self.monitor.finish(stage.label)
        if returncode != 0:
            raise StageFailed(stage.label, returncode, log_file,
                              cause=disk_full_cause(
                                  stage.work_dir, log_file,
                                  self.checkpoint_bytes.get(stage.work_dir)))

    def stop_processes(self) -> None:
        """Stop the stages still running (Ctrl-C, SIGTERM, SIGHUP): each
        guard stops its stage's process group, then exits."""
        for proc in list(self._processes):
            proc.send_signal(signal.SIGTERM)
        for proc in list(self._processes):
            try:
                proc.wait(timeout=stage_guard.GRACE_S + 25)
            except subprocess.TimeoutExpired:
                proc.kill()

    def check_free_space(self, stage: Stage) -> None:
        """Before a stage trains: room for its checkpoints (the preflight's
        estimate for that stage), else :class:`StageFailed` naming both
        figures."""
        need = self.checkpoint_bytes.get(stage.work_dir)
        if not need:
            return
        free = shutil.disk_usage(stage.work_dir).free
        if free < need:
            raise StageFailed(
                stage.label, None, osp.join(stage.work_dir, 'pipeline.log'),
                cause=f'not started: {stage.work_dir} has {free >> 20} MiB '
                f'free, its checkpoints take about {need >> 20} MiB: free '
                'space (or use another --work-dir) and run the same command '
                'again')

    def say(self, line: str) -> None:
        """Print a line of the pipeline's own (between progress bars)."""
        if self.monitor is not None:
            self.monitor.write(line)
        else:
            print(line, flush=True)

    def train(self, stage: Stage) -> str:
        """Train one stage → its final checkpoint.

        Finished (:func:`~mmcast.apis.stage_status`): skipped. Crashed with
        the config of this run: resumed (``--resume``); when it crashed
        after its last checkpoint (in the final evaluation, say), that
        checkpoint is evaluated. Crashed with another config: its work dir
        is set aside and the stage trains from the start. The completion
        record is written last.
        """
        final = stage.final
        status = stage_status(stage.work_dir, stage.max_iters)
        if status == FINISHED:
            self.say(f'{stage.label} done{stage.of_plan}: {final}')
            return final
        if status == CRASHED and self.launch.leads and \
                not self._same_config(stage, stage.work_dir):
            moved = set_aside(stage.work_dir)
            self.say(f'{stage.label} the unfinished run in {stage.work_dir} '
                     f'had another config: moved to {moved}; training from '
                     'the start')
            status = NEW
        os.makedirs(stage.work_dir, exist_ok=True)
        last = self.resume_point(stage) if status == CRASHED else None
        if last is None or osp.realpath(last) != osp.realpath(final):
            self.check_free_space(stage)
            self.say(f'{stage.label} training{stage.of_plan} {stage.config} '
                     f'for {stage.max_iters} iterations' +
                     (f' (resumed from {osp.basename(last)})' if last
                      else ''))
            # the checkpoint by path: MMEngine's own --resume would read the
            # absolute path last_checkpoint recorded, which is stale in a
            # copied or moved work dir
            self._run(stage, self._command(
                'train', stage.config, stage.work_dir,
                (['--resume', last] if last else []) + ['--cfg-options'] +
                stage.options))
        if logged_metrics(stage.work_dir) is None:
            # trained, but not evaluated: e.g. it crashed in its final
            # evaluation, after its last checkpoint
            self.say(f'{stage.label} evaluating {final}')
            self._run(stage, self._command(
                'test', stage.config, osp.join(stage.work_dir, FINAL_EVAL),
                ['--checkpoint', final, '--cfg-options'] + stage.options))
        if self.launch.leads:  # the other nodes only join the runs
            write_completion(stage.work_dir, final, stage.max_iters)
        return final

    @staticmethod
    def resume_point(stage: Stage) -> Optional[str]:
        """The newest checkpoint of a crashed stage (its damaged ones were
        set aside before the preflight)."""
        found = iteration_checkpoints(stage.work_dir)
        return found[0] if found else None

    def test(self, stage: Stage) -> None:
        """Evaluate the stage's checkpoint with ``mim test``."""
        self.say(f'{stage.label} testing{stage.of_plan} {stage.checkpoint}')
        os.makedirs(stage.work_dir, exist_ok=True)
        self._run(stage, self._command(
            'test', stage.config, stage.work_dir,
            ['--checkpoint', stage.checkpoint, '--cfg-options'] +
            stage.options))

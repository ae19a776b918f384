# Copyright (c) mmcast contributors. All rights reserved.
"""How each stage runs: its command (:mod:`mmcast.apis.launchers`), its
process and log, and train-or-resume with the completion record last."""
import os
import os.path as osp
import subprocess
from typing import List

from ..launchers import printable, stage_command
from ..stage_failure import StageFailed
from ..stage_state import (CRASHED, FINAL_EVAL, FINISHED, NEW, last_checkpoint,
                           logged_metrics, set_aside, stage_status,
                           write_completion)
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
        """Run ``cmd`` for ``stage``, its output into the stage's log; a
        training run's progress is shown meanwhile."""
        log_file = osp.join(stage.work_dir, 'pipeline.log')
        self.say('$ ' + printable(cmd))
        followed = stage.max_iters is not None and self.monitor is not None
        if followed:
            self.monitor.start(stage.label, stage.work_dir, stage.max_iters)
        try:
            with open(log_file, 'a', encoding='utf-8') as log:
                proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=log,
                                        stderr=subprocess.STDOUT,
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
            raise StageFailed(stage.label, returncode, log_file)

    def stop_processes(self) -> None:
        """Stop the stages' processes still running (e.g. on Ctrl-C)."""
        for proc in list(self._processes):
            proc.terminate()
        for proc in list(self._processes):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()

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
            self.say(f'[{stage.name}] done: {final}')
            return final
        if status == CRASHED and self.launch.leads and \
                not self._same_config(stage, stage.work_dir):
            moved = set_aside(stage.work_dir)
            self.say(f'[{stage.name}] the unfinished run in {stage.work_dir} '
                     f'had another config: moved to {moved}; training from '
                     'the start')
            status = NEW
        os.makedirs(stage.work_dir, exist_ok=True)
        last = last_checkpoint(stage.work_dir) if status == CRASHED else None
        if last is None or osp.realpath(last) != osp.realpath(final):
            self.say(f'[{stage.name}] training {stage.config} for '
                     f'{stage.max_iters} iterations' +
                     (f' (resumed from {osp.basename(last)})' if last
                      else ''))
            self._run(stage, self._command(
                'train', stage.config, stage.work_dir,
                (['--resume'] if last else []) + ['--cfg-options'] +
                stage.options))
        if logged_metrics(stage.work_dir) is None:
            # trained, but not evaluated: e.g. it crashed in its final
            # evaluation, after its last checkpoint
            self.say(f'[{stage.name}] evaluating {final}')
            self._run(stage, self._command(
                'test', stage.config, osp.join(stage.work_dir, FINAL_EVAL),
                ['--checkpoint', final, '--cfg-options'] + stage.options))
        if self.launch.leads:  # the other nodes only join the runs
            write_completion(stage.work_dir, final, stage.max_iters)
        return final

    def test(self, stage: Stage) -> None:
        """Evaluate the stage's checkpoint with ``mim test``."""
        os.makedirs(stage.work_dir, exist_ok=True)
        self._run(stage, self._command(
            'test', stage.config, stage.work_dir,
            ['--checkpoint', stage.checkpoint, '--cfg-options'] +
            stage.options))

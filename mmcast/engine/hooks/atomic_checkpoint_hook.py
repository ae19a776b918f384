# Copyright (c) mmcast contributors. All rights reserved.
"""MMEngine's ``CheckpointHook`` with every file it writes whole or absent.

MMEngine (<= 0.10.7) writes ``iter_<N>.pth`` and ``last_checkpoint`` in
place, and with ``max_keep_ckpts`` it removes the oldest checkpoint *before*
it saves the new one. A full disk (or a kill) during the save then leaves a
truncated checkpoint under its final name, one that a resume or the next
stage trusts, and with ``max_keep_ckpts=1`` nothing intact to resume from.
:class:`AtomicCheckpointHook` keeps the parent's behaviour and options and
changes only how files land: each checkpoint is written to a temporary file
beside it, flushed and renamed (:class:`AtomicLocalBackend`), outdated ones
are removed only after the new one is whole, and ``last_checkpoint`` is
replaced atomically. Remote ``out_dir`` s keep MMEngine's own backends.
Every mmcast config uses it (``default_hooks.checkpoint``); it is registered
in MMEngine's root registry, so configs of every scope (mmdet, mmseg) find
it.
"""
import os.path as osp
from collections import deque
from os import PathLike
from typing import Union

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook
from mmengine.registry import HOOKS

from mmcast.utils.atomic_io import atomic_open

ATOMIC_LOCAL = 'atomic_local'


class AtomicLocalBackend(LocalBackend):
    """MMEngine's local file backend whose ``put`` / ``put_text`` write a
    temporary file, flush it and rename it onto the destination."""

    def put(self, obj: bytes, filepath: Union[str, PathLike]) -> None:
        with atomic_open(str(filepath), 'wb') as f:
            f.write(obj)

    def put_text(self, obj: str, filepath: Union[str, PathLike],
                 encoding: str = 'utf-8') -> None:
        with atomic_open(str(filepath), 'w', encoding=encoding) as f:
            f.write(obj)


register_backend(ATOMIC_LOCAL, AtomicLocalBackend, force=True)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` whose checkpoints and ``last_checkpoint`` are whole
    or absent (same arguments as :class:`mmengine.hooks.CheckpointHook`).

    A local ``out_dir`` (the default: the work dir) without ``backend_args``
    or ``file_client_args`` gets :class:`AtomicLocalBackend`; any other keeps
    the backend MMEngine chooses.
    """

    def before_train(self, runner) -> None:
        out_dir = self.out_dir or runner.work_dir
        if self.backend_args is None and self.file_client_args is None and \
                '://' not in str(out_dir):
            self.backend_args = dict(backend=ATOMIC_LOCAL)
        super().before_train(runner)

    def _save_checkpoint_with_step(self, runner, step: int, meta: dict):
        """The parent's steps in an order that never leaves fewer than the
        kept checkpoints whole: save the new one (atomically), then remove
        the outdated ones, then point ``last_checkpoint`` at the new one.
        The checkpoint records the ids kept after the removal, as the
        parent's does."""
        outdated = []
        if self.max_keep_ckpts > 0 and (not self.keep_ckpt_ids
                                        or self.keep_ckpt_ids[-1] != step):
            kept = list(self.keep_ckpt_ids) + [step]
            outdated = kept[:-self.max_keep_ckpts]
            self.keep_ckpt_ids = deque(kept[-self.max_keep_ckpts:],
                                       self.max_keep_ckpts)
            runner.message_hub.update_info('keep_ckpt_ids', list(
                self.keep_ckpt_ids))
        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir,
                                                     ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir, ckpt_filename, self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler, meta=meta,
            by_epoch=self.by_epoch, backend_args=self.backend_args,
            **self.args)
        if not is_main_process():
            return
        for old in outdated:
            path = self.file_backend.join_path(self.out_dir,
                                               self.filename_tmpl.format(old))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):  # DeepSpeed's checkpoints
                self.file_backend.rmtree(path)
        with atomic_open(osp.join(runner.work_dir, 'last_checkpoint'),
                         'w') as f:
            f.write(self.last_ckpt)

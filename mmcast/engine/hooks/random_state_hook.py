# Copyright (c) mmcast contributors. All rights reserved.
"""Random states saved with each checkpoint and set again on ``--resume``,
so that a resumed run on a CPU ends with the checkpoint of a run that was
never stopped.

MMEngine's resume restores the weights, the optimiser, the schedulers and
the message hub, and replays the train loader up to the resumed iteration
(its samplers draw from generators of their own, its worker processes are
seeded by the run's seed: the replay puts both where they stood). It does
not restore the global random states the model and the transforms of a
loader without workers draw from (Mask2Former's point sampling, L_pxl's
negatives, random flips and crops): a resumed run draws other numbers from
its first step on. :class:`RandomStateHook` records Python's, NumPy's and
torch's (CPU and every CUDA device's) states, of every rank, in each
checkpoint, and sets them again where the stopped run stood when it saved:
just before the train loop fetches its next batch, after the replay. An
evaluation during training draws from states set aside and put back, so a
run evaluated every N iterations trains as one that is not.

On a GPU the kernels are not all deterministic: a resumed run there draws
the same numbers but does not repeat the stopped one bit for bit.
"""
import random
from contextlib import contextmanager
from typing import Iterator, List, Optional

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_dist_info
from mmengine.hooks import CheckpointHook, Hook
from mmengine.registry import HOOKS
from mmengine.runner import IterBasedTrainLoop

CHECKPOINT_KEY = 'random_states'


def random_states() -> dict:
    """This process's random states: Python's, NumPy's, torch's CPU one
    and, where CUDA is initialised, one per CUDA device."""
    states = dict(python=random.getstate(), numpy=np.random.get_state(),
                  torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states['cuda'] = torch.cuda.get_rng_state_all()
    return states


def set_random_states(states: dict) -> None:
    """Set the states of :func:`random_states` (CUDA's where this process
    has as many devices). The tensors may have been loaded onto a GPU
    (MMEngine resumes with ``map_location`` the device): torch takes
    them on the CPU."""
    random.setstate(states['python'])
    np.random.set_state(states['numpy'])
    torch.set_rng_state(states['torch'].cpu())
    cuda = states.get('cuda')
    if cuda is not None and torch.cuda.is_available() and \
            torch.cuda.device_count() == len(cuda):
        torch.cuda.set_rng_state_all([state.cpu() for state in cuda])


@contextmanager
def kept_random_states() -> Iterator[None]:
    """Run a block on this process's random states and set them back
    after it: what the block draws (a teacher labelling the unlabeled set,
    a loader's new iterator) changes nothing that follows."""
    states = random_states()
    try:
        yield
    finally:
        set_random_states(states)


class _SetStatesBeforeFetch:
    """The train loop's iterator, handing through the ``skip`` batches of
    MMEngine's replay, then setting ``states`` and giving the loop its own
    iterator back before the next batch is fetched."""

    def __init__(self, loop: IterBasedTrainLoop, skip: int,
                 states: dict) -> None:
        self.loop = loop
        self.iterator: Iterator = loop.dataloader_iterator
        self.skip = skip
        self.states = states

    def __iter__(self) -> '_SetStatesBeforeFetch':
        return self

    def __next__(self):
        if self.skip == 0:
            set_random_states(self.states)
            self.loop.dataloader_iterator = self.iterator
        else:
            self.skip -= 1
        return next(self.iterator)


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Save the random states of every rank with each checkpoint and set
    them again on resume (module docstring).

    A run resumed from a checkpoint without them (saved without this hook)
    goes on as MMEngine's does, with a warning; from one saved by another
    number of ranks, each rank gets the states of rank ``rank % saved``.
    A checkpoint only loaded (``load_from``, a stage starting from the
    previous one's) leaves the states as the run's seed set them. With
    several ranks the states are gathered in ``after_train_iter`` /
    ``after_train_epoch`` where a checkpoint hook saves (one collective
    per checkpoint), since MMEngine calls ``before_save_checkpoint`` on the
    main process alone. Registered in MMEngine's root registry: every
    scope's config finds it (``default_hooks.random_state``).
    """

    priority = 'LOW'  # after_train_iter before CheckpointHook's

    def __init__(self) -> None:
        self._loaded: Optional[List[dict]] = None
        self._gathered: Optional[List[dict]] = None
        self._set_aside: Optional[dict] = None

    def _gather_if_saving(self, runner, by_epoch: bool) -> None:
        if get_dist_info()[1] == 1:
            return
        for hook in runner.hooks:
            if isinstance(hook, CheckpointHook) and \
                    hook.by_epoch == by_epoch and _saves_now(hook, runner):
                self._gathered = all_gather_object(random_states())
                return

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        self._gather_if_saving(runner, by_epoch=False)

    def after_train_epoch(self, runner) -> None:
        self._gather_if_saving(runner, by_epoch=True)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Add every rank's states (rank order) to ``checkpoint``."""
        gathered, self._gathered = self._gathered, None
        checkpoint[CHECKPOINT_KEY] = gathered or [random_states()]

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Keep the states of a loaded checkpoint, for a resumed run."""
        self._loaded = checkpoint.get(CHECKPOINT_KEY) or []

    def before_train_epoch(self, runner) -> None:
        """In a resumed run, set this rank's states of its checkpoint: just
        before the next batch is fetched (after the loader's replay) in an
        iteration-based loop, here in an epoch-based one (resumed at the
        start of an epoch)."""
        loaded, self._loaded = self._loaded, None
        if loaded is None or runner.iter == 0:  # not resumed
            return
        if not loaded:
            runner.logger.warning(
                'RandomStateHook: the checkpoint resumed from holds no random '
                'states: this run draws other numbers than the stopped one')
            return
        rank, world_size = get_dist_info()
        if len(loaded) != world_size:
            runner.logger.warning(
                f'RandomStateHook: the checkpoint holds the random states of '
                f'{len(loaded)} ranks, this run has {world_size}')
        states = loaded[rank % len(loaded)]
        loop = runner.train_loop
        if isinstance(loop, IterBasedTrainLoop):
            loop.dataloader_iterator = _SetStatesBeforeFetch(
                loop, loop.iter, states)
        else:
            set_random_states(states)

    def before_val(self, runner) -> None:
        self._set_aside = random_states()

    def after_val(self, runner) -> None:
        if self._set_aside is not None:
            set_random_states(self._set_aside)
            self._set_aside = None


def _saves_now(hook: CheckpointHook, runner) -> bool:
    """Whether ``hook`` saves a checkpoint in the ``after_train_iter`` /
    ``after_train_epoch`` being run (CheckpointHook's own condition)."""
    if hook.by_epoch:
        return hook.every_n_epochs(runner, hook.interval, hook.save_begin) \
            or (hook.save_last and hook.is_last_train_epoch(runner))
    return hook.every_n_train_iters(runner, hook.interval, hook.save_begin) \
        or (hook.save_last and hook.is_last_train_iter(runner))

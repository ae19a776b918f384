# Copyright (c) mmcast contributors. All rights reserved.
"""A stage's overrides of its config, as typed values.

The pipeline decides each stage's settings (its schedule, hand-off
checkpoints, split, capacity, batch and lr, the command line's options) as
``(dotted key, value)`` pairs with Python values: an ``int`` is an int, a
list of checkpoints a list. They are merged into the stage config as
MMEngine merges ``--cfg-options`` (dotted keys, list items by index,
``_delete_``; a later value of a key replaces an earlier one), and are
written as ``--cfg-options`` strings once, by the launcher
(:func:`~mmcast.apis.pipeline.launchers.cfg_options_args`).
"""
import copy
from dataclasses import dataclass
from typing import Any, Iterable, Tuple


@dataclass(frozen=True)
class Overrides:
    """Ordered ``(dotted key, value)`` pairs; a key may repeat (the last
    value counts).

    Args:
        items (tuple[tuple[str, Any], ...]): The pairs, in order.
    """
    items: Tuple[Tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, pairs: Iterable[Tuple[str, Any]] = ()) -> 'Overrides':
        """Overrides of ``pairs`` (any iterable of ``(key, value)``)."""
        return cls(tuple((str(k), v) for k, v in pairs))

    def __add__(self, other: 'Overrides') -> 'Overrides':
        return Overrides(self.items + tuple(other.items))

    def __bool__(self) -> bool:
        return bool(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self):
        return iter(self.items)

    def __contains__(self, key: str) -> bool:
        return any(k == key for k, _ in self.items)

    def get(self, key: str, default: Any = None) -> Any:
        """The value ``key`` ends with (its last pair), else ``default``."""
        for k, value in reversed(self.items):
            if k == key:
                return value
        return default

    def as_dict(self) -> dict:
        """``{dotted key: value}``, the last value of each key (what
        ``Config.merge_from_dict`` takes)."""
        return {k: copy.deepcopy(v) for k, v in self.items}

    def merged_into(self, cfg):
        """A copy of the config ``cfg`` with these overrides merged."""
        cfg = copy.deepcopy(cfg)
        if self.items:
            cfg.merge_from_dict(self.as_dict())
        return cfg

# Copyright (c) mmcast contributors. All rights reserved.
"""MMEngine checkpoints load with ``weights_only=True``; nothing else opens up."""
import collections
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer

import mmcast  # noqa: F401  (registers the allow-list)


class _Reduce:
    """Pickles as ``getattr(target, name)``."""

    def __init__(self, target, name):
        self.target, self.name = target, name

    def __reduce__(self):
        return getattr, (self.target, self.name)


def test_message_hub_state_round_trips(tmp_path):
    buffer = HistoryBuffer()
    for v in (1.0, 2.0, np.float64(3.0)):
        buffer.update(v)
    state = dict(
        meta=dict(iter=np.int64(7), seed=np.int32(3)),
        message_hub=dict(log_scalars={'train/loss': buffer},
                         runtime_info={'lr': np.array([1e-4])}),
        state_dict=collections.OrderedDict(w=torch.ones(2)))
    torch.save(state, tmp_path / 'ckpt.pth')
    loaded = torch.load(tmp_path / 'ckpt.pth', weights_only=True)
    assert loaded['message_hub']['log_scalars']['train/loss'].mean() == 2.0
    assert loaded['meta']['iter'] == 7


@pytest.mark.parametrize('target,name', [
    (HistoryBuffer, '__init__'),
    (collections.OrderedDict(), 'clear'),
])
def test_other_getattr_is_refused(tmp_path, target, name):
    torch.save({'x': _Reduce(target, name)}, tmp_path / 'evil.pth')
    with pytest.raises(pickle.UnpicklingError, match='refusing getattr'):
        torch.load(tmp_path / 'evil.pth', weights_only=True)

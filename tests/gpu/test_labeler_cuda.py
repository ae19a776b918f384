# Copyright (c) mmcast contributors. All rights reserved.
"""The offline labeler with a teacher predicting on CUDA writes the same
bytes as the filter applied to host copies of the predictions (the filter
runs on the device; only the kept masks come back)."""
import json

import pytest
import torch
from mmengine.structures import InstanceData

from mmcast.pseudo_labels import (PseudoLabelFilter, identity,
                                  label_unlabeled_set, shard_path)
from mmcast.pseudo_labels.labeler import SHARD_KEY

from test_labeler_on_device import (FILTERS, expected_line,  # noqa: F401
                                    raw_predictions, unlabeled)


class CudaTeacher(torch.nn.Module):
    """``test_step`` returning ``raw_predictions`` as CUDA tensors."""

    def test_step(self, data):
        out = []
        for sample in data['data_samples']:
            pred = raw_predictions(sample.img_id, *sample.ori_shape)
            sample.pred_instances = InstanceData(
                **{k: v.cuda() for k, v in pred.items()})
            out.append(sample)
        return out


@pytest.mark.parametrize('filter_cfg', FILTERS)
def test_cuda_teacher_shard_bytes(unlabeled, tmp_path,  # noqa: F811
                                  filter_cfg):
    out = str(tmp_path / 'pl.json')
    filt = PseudoLabelFilter(filter_cfg)
    res = label_unlabeled_set(
        CudaTeacher(), unlabeled, out, filter_cfg=filter_cfg, rank=0,
        world_size=2, batch_size=2, header=dict(teacher='fake'),
        progress=False)
    assert res['num_processed'] == 3
    expected = json.dumps(
        {SHARD_KEY: identity(dict(teacher='fake', filter=filt.cfg))}) + '\n'
    expected += ''.join(expected_line(i, filt) for i in (100, 102, 104))
    with open(shard_path(out, 0), encoding='utf-8') as f:
        assert f.read() == expected

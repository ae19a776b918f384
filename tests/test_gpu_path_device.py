# Copyright (c) mmcast contributors. All rights reserved.
"""Online pseudo-labels stay on the inputs' device (no host round trip).

CPU and GPU share this code path, so a recorder of torch calls stands in
for the GPU: a copy to the host (``.cpu()``, ``.numpy()``, ``.item()``,
``.to('cpu')``...), or a tensor made on the default (host) device instead
of the inputs' one, is what breaks CUDA training, and is seen on the CPU.
"""
from unittest import mock

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.testing import demo_mm_inputs
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.structures import InstanceData
from torch.overrides import TorchFunctionMode

import mmcast  # noqa: F401
from mmcast.pseudo_labels import PseudoLabelFilter, masks_to_bboxes
from mmcast.pseudo_labels.filtering import paint_in_order

register_all_modules()

# reading a device tensor on the host
HOST_READS = {'cpu', 'numpy', 'tolist', 'item', '__array__', '__bool__',
              '__int__', '__float__', 'new_tensor'}
# data-dependent shapes: the host waits for the device to know them
SHAPE_SYNCS = {'nonzero', 'argwhere', 'masked_select', 'unique'}
# tensors made on the default device unless ``device=`` is given
FACTORIES = {'zeros', 'ones', 'empty', 'full', 'arange', 'rand', 'randn',
             'randint', 'randperm', 'tensor', 'as_tensor', 'linspace', 'eye'}


def _has_tensor_index(index) -> bool:
    items = index if isinstance(index, tuple) else (index, )
    return any(isinstance(i, torch.Tensor) for i in items)


class HostTransferRecorder(TorchFunctionMode):
    """Record every torch call that moves data to or from the host.

    Args:
        shape_syncs (bool): Also record calls whose output shape depends on
            the data (``nonzero``, tensor indexing), each a device→host sync.
    """

    def __init__(self, shape_syncs: bool = False) -> None:
        super().__init__()
        self.shape_syncs = shape_syncs
        self.calls = []
        self.paused = False

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, '__name__', repr(func))
        if not self.paused:
            devices = [a for a in (*args[1:], kwargs.get('device'))
                       if isinstance(a, (str, torch.device))]
            if name in HOST_READS or (name == 'to' and devices):
                self.calls.append(name)
            elif name in FACTORIES and kwargs.get('device') is None:
                self.calls.append(f'torch.{name} without device')
            elif self.shape_syncs and (
                    name in SHAPE_SYNCS or
                    name in ('__getitem__', '__setitem__')
                    and _has_tensor_index(args[1])):
                self.calls.append(name)
        return func(*args, **kwargs)


def _predictions(num=6, height=20, width=30, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return InstanceData(
        masks=torch.rand(num, height, width, generator=gen),
        labels=torch.randint(0, 8, (num, ), generator=gen),
        scores=torch.rand(num, generator=gen))


def _reference_filter(pred, score_thr=0.3, max_per_image=100, mask_thr=0.5):
    """The filter written out plainly: threshold, sort, paint in a loop."""
    keep = (pred.scores > score_thr).nonzero()[:, 0]
    keep = keep[torch.argsort(pred.scores[keep], descending=True,
                              stable=True)][:max_per_image]
    masks = pred.masks[keep] > mask_thr
    taken = torch.zeros(masks.shape[1:], dtype=torch.bool)
    for i in range(len(masks)):
        masks[i] &= ~taken
        taken |= masks[i]
    ok = masks.flatten(1).sum(1) >= 1
    return masks[ok], pred.labels[keep][ok], pred.scores[keep][ok]


def test_recorder_sees_host_round_trips():
    """The recorder itself: it must catch what the tests rely on."""
    x = torch.rand(3)
    with HostTransferRecorder(shape_syncs=True) as rec:
        x.cpu(), x.to('cpu'), x.to(torch.device('cpu')), x.numpy()
        torch.zeros(2), x.nonzero(), x[x > 0.5], x.to(torch.float64)
        torch.zeros(2, device=x.device), x.new_zeros(2), x[1:]
    assert rec.calls == ['cpu', 'to', 'to', 'numpy', 'torch.zeros without '
                         'device', 'nonzero', '__getitem__']


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_filter_stays_on_device_and_matches_reference(seed):
    pred = _predictions(seed=seed)
    with HostTransferRecorder() as rec:
        out = PseudoLabelFilter(score_thr=0.3)(pred)
    assert rec.calls == []
    masks, labels, scores = _reference_filter(pred)
    assert len(masks) > 1  # the painting mattered
    assert torch.equal(out.masks, masks)
    assert torch.equal(out.labels, labels)
    assert torch.equal(out.scores, scores)
    assert torch.equal(out.bboxes, masks_to_bboxes(masks))
    for value in (out.masks, out.labels, out.scores, out.bboxes):
        assert value.device == pred.masks.device


def test_paint_in_order_equals_the_loop_and_runs_on_meta():
    gen = torch.Generator().manual_seed(3)
    masks = torch.rand(7, 16, 24, generator=gen) > 0.6
    expected = masks.clone()
    taken = torch.zeros(16, 24, dtype=torch.bool)
    for i in range(len(masks)):
        expected[i] &= ~taken
        taken |= expected[i]
    assert torch.equal(paint_in_order(masks), expected)
    assert paint_in_order(masks).sum(0).max() == 1
    # no data reaches the host: both run on a device without data
    meta = masks.to('meta')
    assert paint_in_order(meta).device.type == 'meta'
    boxes = masks_to_bboxes(meta)
    assert boxes.device.type == 'meta' and boxes.shape == (7, 4)


def test_boxes_of_masks():
    masks = torch.zeros(3, 6, 8, dtype=torch.bool)
    masks[0, 1:3, 2:5] = True
    masks[2, 5, 7] = True
    assert masks_to_bboxes(masks).tolist() == [[2, 1, 5, 3], [0, 0, 0, 0],
                                               [7, 5, 8, 6]]
    assert masks_to_bboxes(masks[:0]).shape == (0, 4)


@pytest.fixture(scope='module')
def online_distiller(repo_root):
    cfg = Config.fromfile(f'{repo_root}/configs/mmcast/distill_toy.py').model
    cfg.teacher = f'{repo_root}/configs/mmcast/adapt_teacher_toy.py'
    cfg.teacher_checkpoint = None
    cfg.student.train_cfg.num_points = 256
    cfg.semi_train_cfg.pseudo_label_mode = 'online'
    cfg.semi_train_cfg.pseudo_label_filter = dict(score_thr=0.0)
    torch.manual_seed(0)
    return MODELS.build(cfg)


def test_online_labels_never_leave_the_inputs_device(online_distiller):
    distiller = online_distiller
    torch.manual_seed(1)
    packed = demo_mm_inputs(2, [[3, 64, 96]] * 2, num_items=[0, 0],
                            num_classes=8, with_mask=True)
    batch = distiller.student.data_preprocessor(packed, True)
    inputs, samples = batch['inputs'], batch['data_samples']
    teacher = distiller.teacher
    recorder = HostTransferRecorder()

    def predict(*args, **kwargs):  # the teacher's own network is not
        recorder.paused = True    # what is checked here
        try:
            return type(teacher).predict(teacher, *args, **kwargs)
        finally:
            recorder.paused = False

    with mock.patch.object(teacher, 'predict', side_effect=predict), \
            recorder:
        labeled = distiller.label_online(inputs, samples)
    assert recorder.calls == []
    assert sum(len(s.gt_instances) for s in labeled) > 0
    for sample in labeled:
        gt = sample.gt_instances
        mask_tensor = gt.masks.to_tensor(torch.bool)
        assert mask_tensor.shape[-2:] == inputs.shape[-2:]
        for value in (mask_tensor, gt.labels, gt.scores, gt.bboxes):
            assert value.device == inputs.device
    # and the student trains on them
    losses = distiller.loss(dict(unsup=inputs), dict(unsup=samples))
    assert torch.isfinite(losses['unsup_loss_mask'])

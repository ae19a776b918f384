# Copyright (c) mmcast contributors. All rights reserved.
"""The labeler filters on the teacher's device, copies only the kept masks to
the host and writes on a background thread, with unchanged output.

The teacher's predictions are :class:`DeviceResident` tensors: CPU tensors
that stand for tensors on an accelerator and record every copy to the host
(``cpu()``, ``to('cpu')``, ``numpy()``, ``item()``, ...). The expected files
are computed the plain way: the filter applied to host copies of the whole
predictions, then :func:`instances_to_coco_annotations`, one json line per
image.
"""
import json
import os.path as osp
import threading
from typing import List, Tuple

import cv2
import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData

import mmcast  # noqa: F401
import mmcast.pseudo_labels.labeler as labeler_mod
from mmcast.pseudo_labels import (PseudoLabelFilter, identity,
                                  instances_to_coco_annotations,
                                  label_unlabeled_set, read_header,
                                  shard_path)
from mmcast.pseudo_labels.labeler import SHARD_KEY
from mmcast.pseudo_labels.shard_writer import ShardWriter

CAT_IDS = [24, 25, 26, 27, 28, 31, 32, 33]
CLASSES = ('person', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle',
           'bicycle')
H, W = 40, 56
NUM_QUERIES = 30
META_KEYS = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')
_HOST_CALLS = frozenset(('cpu', 'numpy', 'tolist', 'item', '__array__',
                         '__int__', '__float__', '__bool__', '__index__'))


class DeviceResident(torch.Tensor):
    """A tensor standing for one on an accelerator.

    Operations keep the type (they "run on the device"); a copy to the host
    returns a plain tensor (or a number / array) and is recorded in
    ``transfers`` as ``(name, shape, dtype, bytes)``.
    """

    transfers: List[Tuple[str, tuple, torch.dtype, int]] = []

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, '__name__', '')
        if name in _HOST_CALLS or (name == 'to' and _names_cpu(args, kwargs)):
            src = args[0]
            with torch._C.DisableTorchFunctionSubclass():
                out = func(*args, **kwargs)
                if isinstance(out, torch.Tensor):
                    out = out.as_subclass(torch.Tensor)
                    nbytes = out.numel() * out.element_size()
                else:
                    nbytes = int(getattr(out, 'nbytes', src.element_size()))
                cls.transfers.append(
                    (name, tuple(src.shape), src.dtype, nbytes))
            return out
        return super().__torch_function__(func, types, args, kwargs)


def _names_cpu(args, kwargs) -> bool:
    candidates = list(args[1:]) + [kwargs.get('device')]
    return any(
        isinstance(a, (str, torch.device)) and torch.device(a).type == 'cpu'
        for a in candidates)


def on_device(x: torch.Tensor) -> DeviceResident:
    return x.as_subclass(DeviceResident)


def raw_predictions(img_id: int, height: int, width: int) -> InstanceData:
    """A Mask2Former-like output of one image, on the host: NUM_QUERIES
    float masks (soft blobs, overlapping), scores with ties, a score equal
    to the default threshold, many under it, labels in [0, 8)."""
    g = torch.Generator().manual_seed(img_id)
    masks = torch.rand(NUM_QUERIES, height, width, generator=g) * 0.4
    for q in range(NUM_QUERIES):
        y0 = int(torch.randint(0, height - 8, (1, ), generator=g))
        x0 = int(torch.randint(0, width - 8, (1, ), generator=g))
        masks[q, y0:y0 + 12, x0:x0 + 16] += 0.5
    scores = torch.rand(NUM_QUERIES, generator=g) * 0.3
    scores[:8] = torch.tensor([0.9, 0.8, 0.8, 0.7, 0.6, 0.6, 0.5, 0.3])
    scores = scores[torch.randperm(NUM_QUERIES, generator=g)]
    labels = torch.randint(0, 8, (NUM_QUERIES, ), generator=g)
    return InstanceData(masks=masks, labels=labels, scores=scores)


class DeviceTeacher(torch.nn.Module):
    """``test_step`` returning :func:`raw_predictions` as device tensors."""

    def __init__(self, predictions=raw_predictions) -> None:
        super().__init__()
        self.predictions = predictions
        self.batches = 0

    def test_step(self, data):
        self.batches += 1
        out = []
        for sample in data['data_samples']:
            pred = self.predictions(sample.img_id, *sample.ori_shape)
            sample.pred_instances = InstanceData(
                **{k: on_device(v) for k, v in pred.items()})
            out.append(sample)
        return out


@pytest.fixture
def unlabeled(tmp_path, monkeypatch):
    """A dataset config of 5 random PNGs (ids 100...) and its folder."""
    from mmengine.registry import DefaultScope
    monkeypatch.setenv('MMCAST_CACHE_DIR', str(tmp_path / 'cache'))
    DeviceResident.transfers = []
    (tmp_path / 'img').mkdir()
    rng = np.random.RandomState(0)
    images = []
    for i in range(5):
        name = f'city_{i:03d}_leftImg8bit.png'
        cv2.imwrite(str(tmp_path / 'img' / name),
                    rng.randint(0, 255, (H, W, 3)).astype(np.uint8))
        images.append(dict(id=100 + i, file_name=name, height=H, width=W))
    coco = dict(images=images, annotations=[], categories=[
        dict(id=c, name=n) for c, n in zip(CAT_IDS, CLASSES)])
    (tmp_path / 'u.json').write_text(json.dumps(coco))
    cfg = dict(
        type='CityscapesDataset', data_root=str(tmp_path), ann_file='u.json',
        data_prefix=dict(img='img/'),
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='PackDetInputs', meta_keys=META_KEYS)])
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield cfg


def expected_line(img_id: int, filt: PseudoLabelFilter) -> str:
    """The shard line of one image, the plain way: the filter on host
    copies of every prediction."""
    kept = filt(raw_predictions(img_id, H, W))
    line = dict(image_id=img_id,
                annotations=instances_to_coco_annotations(kept, img_id,
                                                          CAT_IDS))
    if kept.metainfo.get('num_over_cap'):  # what the filter's cap left out
        line['num_over_cap'] = kept.metainfo['num_over_cap']
    return json.dumps(line) + '\n'


FILTERS = [
    pytest.param(dict(), id='default'),
    pytest.param(dict(score_thr=0.55, max_per_image=4, min_area=150),
                 id='strict'),
]


@pytest.mark.parametrize('filter_cfg', FILTERS)
def test_shard_bytes_equal_the_filter_on_host_copies(unlabeled, tmp_path,
                                                     filter_cfg):
    """Rank 0 of 2 (no process group): its shard stays, byte for byte."""
    out = str(tmp_path / 'pl.json')
    filt = PseudoLabelFilter(filter_cfg)
    res = label_unlabeled_set(
        DeviceTeacher(), unlabeled, out, filter_cfg=filter_cfg, rank=0,
        world_size=2, batch_size=2, header=dict(teacher='fake'),
        progress=False)
    assert res['num_processed'] == 3 and not res['merged']
    expected = json.dumps(
        {SHARD_KEY: identity(dict(teacher='fake', filter=filt.cfg))}) + '\n'
    expected += ''.join(expected_line(i, filt) for i in (100, 102, 104))
    with open(shard_path(out, 0), encoding='utf-8') as f:
        assert f.read() == expected


@pytest.mark.parametrize('filter_cfg', FILTERS)
def test_merged_file_holds_the_filter_on_host_copies(unlabeled, tmp_path,
                                                     filter_cfg):
    out = str(tmp_path / 'pl.json')
    filt = PseudoLabelFilter(filter_cfg)
    res = label_unlabeled_set(
        DeviceTeacher(), unlabeled, out, filter_cfg=filter_cfg,
        batch_size=2, header=dict(teacher='fake'), progress=False)
    assert res['merged'] and res['num_processed'] == 5
    with open(out, encoding='utf-8') as f:
        coco = json.load(f)
    expected = []
    for img_id in range(100, 105):
        kept = filt(raw_predictions(img_id, H, W))
        for ann in instances_to_coco_annotations(kept, img_id, CAT_IDS):
            expected.append(dict(ann, id=len(expected) + 1))
    assert coco['annotations'] == expected
    assert read_header(out)['num_instances'] == len(expected) > 5


@pytest.mark.parametrize('filter_cfg', FILTERS)
def test_only_the_kept_masks_reach_the_host(unlabeled, tmp_path,
                                            filter_cfg):
    """No mask under the score threshold or beyond ``max_per_image`` is
    copied, and the kept ones travel as bool (1 byte a pixel)."""
    out = str(tmp_path / 'pl.json')
    label_unlabeled_set(
        DeviceTeacher(), unlabeled, out, filter_cfg=filter_cfg,
        batch_size=2, header=dict(teacher='fake'), progress=False)
    with open(out, encoding='utf-8') as f:
        num_kept = len(json.load(f)['annotations'])
    masks = [t for t in DeviceResident.transfers if len(t[1]) == 3]
    assert sum(shape[0] for _, shape, _, _ in masks) == num_kept
    assert all(dtype == torch.bool for _, _, dtype, _ in masks)
    mask_bytes = sum(nbytes for *_, nbytes in masks)
    assert mask_bytes == num_kept * H * W
    # everything else moved: labels, scores, counts (8 bytes at most each)
    other = sum(nbytes for *_, nbytes in DeviceResident.transfers) - \
        mask_bytes
    assert other <= 5 * 8 * (2 * NUM_QUERIES + 2)
    # the plain way would have moved every float mask
    assert mask_bytes * 10 < 5 * NUM_QUERIES * H * W * 4


def test_encoding_overlaps_the_next_batch(unlabeled, tmp_path, monkeypatch):
    """The first batch is encoded while the teacher runs the second (the
    encoder waits for it: a serial labeler would never get there), on a
    thread other than the caller's."""
    second_batch = threading.Event()
    encoder = {}
    real = labeler_mod.instances_to_coco_annotations

    def encode(instances, img_id, cat_ids):
        if img_id == 100:
            encoder['overlapped'] = second_batch.wait(timeout=120)
            encoder['thread'] = threading.current_thread()
        return real(instances, img_id, cat_ids)

    class Teacher(DeviceTeacher):

        def test_step(self, data):
            if self.batches == 1:
                second_batch.set()
            return super().test_step(data)

    monkeypatch.setattr(labeler_mod, 'instances_to_coco_annotations', encode)
    res = label_unlabeled_set(
        Teacher(), unlabeled, str(tmp_path / 'pl.json'), batch_size=2,
        header=dict(teacher='fake'), progress=False)
    assert res['merged'] and encoder['overlapped']
    assert encoder['thread'] is not threading.main_thread()


def test_encoding_error_surfaces_and_later_batches_are_not_written(
        unlabeled, tmp_path):
    """A label the dataset does not have fails in the encoder thread: the
    caller gets its error, the shard keeps the batches before it only."""

    def predictions(img_id, height, width):
        pred = raw_predictions(img_id, height, width)
        if img_id == 102:
            pred.labels = torch.full_like(pred.labels, 99)
        return pred

    out = str(tmp_path / 'pl.json')
    with pytest.raises(ValueError, match='label 99 of image 102'):
        label_unlabeled_set(
            DeviceTeacher(predictions), unlabeled, out, batch_size=2,
            header=dict(teacher='fake'), progress=False)
    assert not osp.exists(out)
    with open(shard_path(out, 0), encoding='utf-8') as f:
        lines = f.read().splitlines()
    assert [json.loads(x)['image_id'] for x in lines[1:]] == [100, 101]


def test_teacher_error_keeps_the_queued_batches(unlabeled, tmp_path):
    """A teacher failing at its third batch: the two queued batches are
    written before the error propagates (the run resumes from them)."""

    class Failing(DeviceTeacher):

        def test_step(self, data):
            if self.batches == 2:
                raise RuntimeError('simulated teacher failure')
            return super().test_step(data)

    out = str(tmp_path / 'pl.json')
    with pytest.raises(RuntimeError, match='simulated teacher failure'):
        label_unlabeled_set(Failing(), unlabeled, out, batch_size=2,
                            header=dict(teacher='fake'), progress=False)
    with open(shard_path(out, 0), encoding='utf-8') as f:
        lines = f.read().splitlines()
    assert [json.loads(x)['image_id'] for x in lines[1:]] == [
        100, 101, 102, 103]
    res = label_unlabeled_set(DeviceTeacher(), unlabeled, out, batch_size=2,
                              header=dict(teacher='fake'), progress=False)
    assert res['num_resumed'] == 4 and res['merged']


def test_writer_bounds_its_queue_and_keeps_the_order(tmp_path):
    written = []
    path = tmp_path / 'shard.jsonl'
    with open(path, 'a', encoding='utf-8') as f:
        writer = ShardWriter(f, written.append, max_pending=2)
        for i in range(6):
            writer.submit(lambda i: f'{i}\n' * (i + 1), i + 1, i)
            # the oldest batches beyond two were waited for
            assert len(written) >= i + 1 - 2
        writer.drain()
        writer.close()
    assert written == [1, 2, 3, 4, 5, 6]
    assert path.read_text() == ''.join(f'{i}\n' * (i + 1) for i in range(6))
    with pytest.raises(ValueError, match='max_pending'):
        ShardWriter(None, written.append, max_pending=0)

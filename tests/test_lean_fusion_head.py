# Copyright (c) mmcast contributors. All rights reserved.
"""``LeanMaskFormerFusionHead`` predicts what the stock head predicts.

On constructed logits (1, 2, 8 and 80 classes; 20 and 100 queries;
``max_per_image`` above and below queries × classes; padded batches whose
images are rescaled or not) the lean head gives the stock
``MaskFormerFusionHead``'s instances — same labels, masks and boxes, scores
to float tolerance — whether it gets the head's 1/4-resolution logits or
logits already upsampled; with ``score_thr`` it gives the stock instances
scored at or above it, and resamples only the kept queries. A toy
``CASTMask2Former`` predicts through it what a stock ``Mask2Former`` with
the same weights predicts.
"""
import copy

import pytest
import torch
import torch.nn.functional as F
from mmdet.models.seg_heads.panoptic_fusion_heads import MaskFormerFusionHead
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.mask import mask2bbox
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.registry import DefaultScope

import mmcast  # noqa: F401  (registers the modules)
from conftest import REPO_ROOT
from mmcast.models.seg_heads import LeanMaskFormerFusionHead, score_floor
from mmcast.models.seg_heads import lean_maskformer_fusion_head as lean_mod
from mmcast.structures import masks_to_bboxes

register_all_modules()
INSTANCE_ONLY = dict(panoptic_on=False, semantic_on=False, instance_on=True)
BATCH_INPUT = (96, 160)  # padded (H, W); the head's logits are 1/4 of it
# (img_shape, ori_shape) of the two images: downscaled with padding, and
# the image filling the batch at its own size
IMAGES = (((90, 150), (45, 75)), ((96, 160), (96, 160)))


def _samples():
    samples = []
    for img_shape, ori_shape in IMAGES:
        sample = DetDataSample()
        sample.set_metainfo(dict(batch_input_shape=BATCH_INPUT,
                                 img_shape=img_shape, ori_shape=ori_shape))
        samples.append(sample)
    return samples


def _logits(num_classes, num_queries, seed=0):
    """Class logits (2, Q, C + 1) and 1/4-resolution mask logits."""
    gen = torch.Generator().manual_seed(seed)
    cls = 3 * torch.randn(2, num_queries, num_classes + 1, generator=gen)
    masks = 4 * torch.randn(2, num_queries, BATCH_INPUT[0] // 4,
                            BATCH_INPUT[1] // 4, generator=gen)
    return cls, masks


def _stock(cls, masks, num_classes, max_per_image, rescale):
    """The stock route: head upsampling to the batch, stock fusion head."""
    upsampled = F.interpolate(masks, size=BATCH_INPUT, mode='bilinear',
                              align_corners=False)
    head = MaskFormerFusionHead(
        num_things_classes=num_classes, num_stuff_classes=0,
        test_cfg=dict(INSTANCE_ONLY, max_per_image=max_per_image))
    return [r['ins_results'] for r in head.predict(
        cls, upsampled, _samples(), rescale=rescale)]


def _lean(cls, masks, num_classes, max_per_image, rescale, score_thr=0.0):
    head = LeanMaskFormerFusionHead(
        num_things_classes=num_classes, num_stuff_classes=0,
        test_cfg=dict(INSTANCE_ONLY, max_per_image=max_per_image,
                      score_thr=score_thr))
    return [r['ins_results'] for r in head.predict(
        cls, masks, _samples(), rescale=rescale)]


def _assert_same(ref, out):
    assert len(ref) == len(out) > 0
    assert torch.equal(ref.labels, out.labels)
    assert torch.equal(ref.masks, out.masks)
    assert torch.equal(ref.bboxes, out.bboxes)
    torch.testing.assert_close(ref.scores, out.scores, rtol=0, atol=1e-6)


@pytest.mark.parametrize('rescale', [True, False])
@pytest.mark.parametrize('num_classes,num_queries,max_per_image',
                         [(1, 20, 50), (2, 20, 50), (8, 100, 100),
                          (80, 100, 100), (2, 100, 30)])
def test_same_instances_as_the_stock_head(num_classes, num_queries,
                                          max_per_image, rescale):
    cls, masks = _logits(num_classes, num_queries)
    kept = min(max_per_image, num_queries * num_classes)
    ref = _stock(cls, masks, num_classes, kept, rescale)
    upsampled = F.interpolate(masks, size=BATCH_INPUT, mode='bilinear',
                              align_corners=False)
    for logits in (masks, upsampled):  # CASTMask2Former's / stock route
        out = _lean(cls, logits, num_classes, max_per_image, rescale)
        for (img_shape, ori_shape), r, o in zip(IMAGES, ref, out):
            assert len(o) == kept
            assert o.masks.shape[1:] == (ori_shape if rescale else img_shape)
            _assert_same(r, o)


def test_score_threshold_keeps_the_stock_instances_above_it(monkeypatch):
    """The stock instances scored ≥ ``score_thr``; only the distinct
    queries of pairs whose class probability reaches it are resampled."""
    cls, masks = _logits(8, 100, seed=1)
    resampled = []
    interpolate = F.interpolate

    def counting(tensor, *args, **kwargs):
        resampled.append(tensor.shape[0] * tensor.shape[1])  # masks
        return interpolate(tensor, *args, **kwargs)

    ref = _stock(cls, masks, 8, 100, True)
    monkeypatch.setattr(lean_mod.F, 'interpolate', counting)
    score_thr = 0.6
    out = _lean(cls, masks, 8, 100, True, score_thr=score_thr)
    for r, o in zip(ref, out):
        _assert_same(r[r.scores >= score_thr], o)
        assert len(o) < len(r)
    probs = F.softmax(cls, dim=-1)[..., :-1]
    top = probs.flatten(1).topk(100, dim=1)
    candidates = [len(torch.unique(i[v >= score_thr] // 8))
                  for v, i in zip(*top)]
    # per image: to the batch shape, then to the original shape if it differs
    assert resampled == [candidates[0], candidates[0], candidates[1]]
    assert 0 < min(candidates) and max(candidates) < 50


def test_nothing_above_the_threshold_gives_empty_results():
    cls, masks = _logits(2, 20)
    cls[..., -1] = 50.0  # every query is "no object"
    for out, (img_shape, _) in zip(_lean(cls, masks, 2, 50, False, 0.5),
                                   IMAGES):
        assert len(out) == 0
        assert out.masks.shape == (0, *img_shape)
        assert out.bboxes.shape == (0, 4)


def test_chunked_resampling_changes_nothing(monkeypatch):
    """Large images resample a few masks at a time: same results."""
    cls, masks = _logits(8, 100, seed=2)
    whole = _lean(cls, masks, 8, 100, True)
    monkeypatch.setattr(lean_mod, 'PIXEL_BUDGET', 3 * 96 * 160)
    for a, b in zip(whole, _lean(cls, masks, 8, 100, True)):
        _assert_same(a, b)


def test_vectorised_boxes_are_mask2bbox():
    gen = torch.Generator().manual_seed(0)
    masks = torch.rand(12, 30, 40, generator=gen) > 0.995
    masks[3] = False  # an empty mask: a zero box
    masks[4, 7, 9] = True
    assert torch.equal(masks_to_bboxes(masks), mask2bbox(masks))


@pytest.mark.parametrize('test_cfg,match', [
    (dict(panoptic_on=True), 'instance segmentation only'),
    (dict(INSTANCE_ONLY, max_per_image=0), 'max_per_image'),
    (dict(INSTANCE_ONLY, max_per_image=2.5), 'max_per_image'),
    (dict(INSTANCE_ONLY, score_thr=1.5), 'score_thr'),
])
def test_bad_test_cfg_is_named(test_cfg, match):
    with pytest.raises(ValueError, match=match):
        LeanMaskFormerFusionHead(num_things_classes=2, num_stuff_classes=0,
                                 test_cfg=test_cfg)


def _toy_batch(model):
    gen = torch.Generator().manual_seed(0)
    images = (torch.rand(2, 3, 64, 96, generator=gen) * 255)
    samples = []
    for ori in ((64, 96), (40, 60)):
        sample = DetDataSample()
        sample.set_metainfo(dict(img_shape=(64, 96), ori_shape=ori,
                                 scale_factor=(1.0, 1.0)))
        samples.append(sample)
    data = model.data_preprocessor(
        dict(inputs=list(images), data_samples=samples), False)
    return data['inputs'], data['data_samples']


def _toy_models():
    """A toy CASTMask2Former (lean head) and a stock Mask2Former (stock
    head, every query mask upsampled in the head) with the same weights."""
    cfg = Config.fromfile(
        f'{REPO_ROOT}/configs/mmcast/toy/mask2former_r18_1xb4-1500it_toy.py')
    stock_cfg = copy.deepcopy(cfg.model)
    stock_cfg.type = 'Mask2Former'
    stock_cfg.pop('strong_view', None)
    stock_cfg.panoptic_fusion_head.type = 'MaskFormerFusionHead'
    with DefaultScope.overwrite_default_scope('mmdet'):
        torch.manual_seed(0)
        lean = MODELS.build(cfg.model).eval()
        stock = MODELS.build(stock_cfg).eval()
    stock.load_state_dict(lean.state_dict())
    return lean, stock


def test_toy_model_predicts_what_stock_mask2former_predicts():
    lean, stock = _toy_models()
    assert type(lean).__name__ == 'CASTMask2Former'
    assert type(lean.panoptic_fusion_head) is LeanMaskFormerFusionHead
    assert type(stock.panoptic_fusion_head) is MaskFormerFusionHead
    with torch.no_grad():
        ref = stock.predict(*_toy_batch(stock))
        out = lean.predict(*_toy_batch(lean))
    for r, o in zip(ref, out):
        assert len(o.pred_instances) == 50  # the toy's max_per_image
        _assert_same(r.pred_instances, o.pred_instances)


def test_score_floor_drops_only_what_the_consumer_drops():
    """Inside ``score_floor`` the model predicts its instances scored at
    or above the floor; outside, everything again (also after an error)."""
    lean, _ = _toy_models()
    with torch.no_grad():
        full = lean.predict(*_toy_batch(lean))
        floor = float(full[0].pred_instances.scores.median())
        with score_floor(lean, floor):
            floored = lean.predict(*_toy_batch(lean))
        with pytest.raises(RuntimeError), score_floor(lean, floor):
            raise RuntimeError
        again = lean.predict(*_toy_batch(lean))
    for f, o, a in zip(full, floored, again):
        f, o = f.pred_instances, o.pred_instances
        _assert_same(f[f.scores >= floor], o)
        _assert_same(f, a.pred_instances)
    assert len(floored[0].pred_instances) < len(full[0].pred_instances)
    assert lean.panoptic_fusion_head.test_cfg['score_thr'] == 0.0

# Copyright (c) mmcast contributors. All rights reserved.
"""The parts of L_pxl on their own: the negative sampler (TASK_UTILS), its
two draws, the key axis, the monitors and the gathered cosine."""
import pytest
import torch
import torch.nn.functional as F
from mmdet.registry import TASK_UTILS

from mmcast.models.losses import (GatheredCosine,
                                  InstanceAwarePixelContrastLoss,
                                  PixelContrastMonitors, gather_key_axis)
from mmcast.models.task_modules import (PixelContrastNegativeSampler,
                                        columns_to_keys, exact_negative_draw,
                                        rejection_negative_draw)


def _logits(batch=3, h=4, w=5, queries=6, classes=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (3 * torch.randn(batch, queries, 2 * h, 2 * w, generator=gen),
            3 * torch.randn(batch, queries, classes + 1, generator=gen))


@pytest.mark.parametrize('draw', ['exact', 'rejection'])
@pytest.mark.parametrize('cross_image', [True, False])
def test_built_sampler_draws_as_the_loss(draw, cross_image):
    """A sampler built from TASK_UTILS, on the local key axis, draws the
    loss's negatives with the same seed, in chunks of at most chunk_size
    anchors that cover the flat pixel axis in order."""
    mask_logits, cls_logits = _logits()
    sampler = TASK_UTILS.build(
        dict(type='PixelContrastNegativeSampler', features='fused_class',
             num_negatives=6, cross_image=cross_image, draw=draw,
             chunk_size=7))
    assert isinstance(sampler, PixelContrastNegativeSampler)
    loss = InstanceAwarePixelContrastLoss(
        sampler='fused_class', num_negatives=6, cross_image=cross_image,
        draw=draw, chunk_size=7)
    expected = loss.sample_negatives(mask_logits, cls_logits, (4, 5), seed=3)

    y = sampler.sampling_features(mask_logits, cls_logits, (4, 5))
    assert y.shape == (3, 20, 5)
    torch.testing.assert_close(y.norm(dim=-1), torch.ones(3, 20))
    y = y.flatten(0, 1)
    images = [(0, 20), (20, 40), (40, 60)]
    chunks = list(sampler.iter_chunks(y, y, images, 0, 3, 20,
                                      torch.device('cpu'), seed=3))
    assert [(s, e) for s, e, _ in chunks] == [(0, 7), (7, 14), (14, 20),
                                              (20, 27), (27, 34), (34, 40),
                                              (40, 47), (47, 54), (54, 60)]
    assert torch.equal(torch.cat([neg for *_, neg in chunks]), expected)


def test_loss_options_live_on_its_sampler():
    """The sampler's settings read and write through the loss: switching
    ``loss.draw`` switches the draw."""
    mask_logits, cls_logits = _logits()
    loss = InstanceAwarePixelContrastLoss(num_negatives=5, chunk_size=9)
    assert (loss.sampler, loss.draw, loss.num_negatives, loss.chunk_size,
            loss.eps) == ('fused', 'exact', 5, 9, 1e-6)
    loss.draw = 'rejection'
    assert loss.negative_sampler.draw == 'rejection'
    rejection = InstanceAwarePixelContrastLoss(
        num_negatives=5, chunk_size=9, draw='rejection')
    assert torch.equal(
        loss.sample_negatives(mask_logits, cls_logits, (4, 5), seed=1),
        rejection.sample_negatives(mask_logits, cls_logits, (4, 5), seed=1))
    assert 'negative_sampler' not in dict(loss.named_modules())
    assert not loss.state_dict()


def test_invalid_options_name_their_key():
    with pytest.raises(ValueError, match="features must be one of"):
        PixelContrastNegativeSampler(features='bogus')
    with pytest.raises(ValueError, match="^sampler must be one of"):
        InstanceAwarePixelContrastLoss(sampler='bogus')
    with pytest.raises(ValueError, match='draw must be one of'):
        InstanceAwarePixelContrastLoss(draw='bogus')
    with pytest.raises(ValueError, match='min_proposals must be >= 1'):
        InstanceAwarePixelContrastLoss(min_proposals=0)


def test_columns_to_keys_skips_the_gap():
    cols = torch.tensor([[0, 2, 3, 6]])
    assert columns_to_keys(cols, ((0, 3), (6, 10))).tolist() == [[0, 2, 6, 9]]
    assert columns_to_keys(cols, ((5, 12), )).tolist() == [[5, 7, 8, 11]]


def test_exact_draw_stays_in_its_blocks():
    """Without replacement, never the anchor's own row, never a row outside
    the blocks; all candidates drawn when R equals their number."""
    gen = torch.Generator().manual_seed(0)
    blocks = ((0, 3), (6, 10))
    idx = exact_negative_draw(None, None, blocks, None, 50, 4, 1e-6,
                              torch.device('cpu'), gen)
    assert ((idx < 3) | ((idx >= 6) & (idx < 10))).all()
    assert (idx.sort(dim=1).values.diff(dim=1) > 0).all()
    # within-image: anchors are rows 2..6 of the block (4, 12)
    idx = exact_negative_draw(None, None, ((4, 12), ), 6, 5, 7, 1e-6,
                              torch.device('cpu'), gen)
    own = torch.arange(6, 11)[:, None]
    assert not (idx == own).any()
    assert torch.equal(idx.sort(dim=1).values,
                       torch.stack([torch.tensor(
                           [r for r in range(4, 12) if r != a])
                           for a in range(6, 11)]))


def test_rejection_draw_follows_the_weights():
    """Key rows 0-3 predict as the anchors (w = eps), rows 4-7 differ
    (w = 1 + eps): all 6 negatives of an anchor are among rows 4-7, so
    with repeats."""
    y_keys = torch.tensor([[1., 0.]] * 4 + [[0., 1.]] * 4)
    gen = torch.Generator().manual_seed(0)
    idx = rejection_negative_draw(y_keys[:4], y_keys, ((0, 8), ), 0, 4, 6,
                                  16, 8, 1e-6, torch.device('cpu'), gen)
    assert idx.shape == (4, 6) and (idx >= 4).all()
    assert (idx.sort(dim=1).values.diff(dim=1) == 0).any(dim=1).all()


def test_local_key_axis_is_the_flat_pixel_axis():
    rows = [torch.randn(6, 2), None]
    out, images, first = gather_key_axis(rows, 2, 3, torch.device('cpu'),
                                         across_processes=True)
    assert out[0] is rows[0] and out[1] is None
    assert images == [(0, 3), (3, 6)] and first == 0


def test_monitors_by_their_definitions():
    ids = torch.tensor([[0], [1], [-1]])
    id_keys = torch.tensor([[0], [1], [-1], [1]])
    monitors = PixelContrastMonitors(torch.zeros(()), ids, id_keys)
    neg = torch.tensor([[1, 3], [3, 0], [0, 1]])
    neg_cos = torch.tensor([[0.5, 0.0], [1.0, -1.0], [0.0, 0.0]])
    pos_cos = torch.tensor([1.0, 0.5, 0.0])
    monitors.update(0, 2, pos_cos[:2], neg_cos[:2], neg[:2])
    monitors.update(2, 3, pos_cos[2:], neg_cos[2:], neg[2:])
    stats = monitors.summary(3)
    # negatives at mean distance 5.5 / 6, positives at 1.5 / 3
    torch.testing.assert_close(stats['pxl_margin'],
                               torch.tensor(5.5 / 6 - 0.5))
    # anchors 0, 1 count (id >= 0): anchor 1 draws row 3 of id 1
    torch.testing.assert_close(stats['pxl_fnr'], torch.tensor(1 / 4))
    assert 'pxl_fnr' not in PixelContrastMonitors(torch.zeros(())).summary(1)


def test_gathered_cosine_gradients():
    gen = torch.Generator().manual_seed(0)
    anchors = F.normalize(torch.randn(4, 3, generator=gen, dtype=torch.double),
                          dim=1).requires_grad_()
    keys = torch.randn(5, 3, generator=gen,
                       dtype=torch.double).requires_grad_()
    index = torch.tensor([[0, 0, 4], [1, 2, 2], [3, 3, 3], [4, 0, 1]])
    out = GatheredCosine.apply(anchors, keys, index)
    torch.testing.assert_close(out, torch.einsum('cd,crd->cr', anchors,
                                                 keys[index]))
    assert torch.autograd.gradcheck(GatheredCosine.apply,
                                    (anchors, keys, index))

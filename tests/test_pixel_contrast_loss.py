# Copyright (c) mmcast contributors. All rights reserved.
import math

import pytest
import torch
import torch.nn.functional as F

from mmcast.models.losses import InstanceAwarePixelContrastLoss
from mmcast.testing import authors_loss, authors_negatives
from mmdet.registry import MODELS

SAMPLERS = ('fused', 'fused_class', 'mask', 'class', 'uniform')


def _inputs(batch=3, dim=8, h=4, w=5, queries=6, classes=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    z_weak = F.normalize(torch.randn(batch, dim, h, w, generator=gen), dim=1)
    z_strong = F.normalize(
        z_weak + 0.5 * torch.randn(batch, dim, h, w, generator=gen), dim=1)
    mask_logits = 3 * torch.randn(batch, queries, 2 * h, 2 * w, generator=gen)
    cls_logits = 3 * torch.randn(batch, queries, classes + 1, generator=gen)
    return z_weak.requires_grad_(), z_strong, mask_logits, cls_logits


def _flat(z):
    """(B, D, h, w) -> (B*N, D), normalised, float32."""
    return F.normalize(
        z.float(), dim=1).flatten(2).transpose(1, 2).flatten(0, 1)


def _naive_gather(z_weak, z_strong, neg_indices, temperature, neg_margin,
                  loss_weight, negative_keys='weak'):
    """Reference: materialises the (B*N, R, D) negative keys (weak view
    with gradient, or strong view without)."""
    anchors, keys = _flat(z_weak), _flat(z_strong.detach())
    neg_keys = anchors if negative_keys == 'weak' else keys
    pos = (anchors * keys).sum(-1) / temperature
    neg = torch.einsum('nd,nrd->nr', anchors,
                       neg_keys[neg_indices]) / temperature
    if neg_margin is not None:
        neg = (neg - neg_margin).clamp(min=0)
    logits = torch.cat([pos[:, None], neg], dim=1)
    return loss_weight * (logits.logsumexp(dim=1) - pos).mean()


def _naive_loops(z_weak, z_strong, neg_indices, temperature, neg_margin,
                 loss_weight, negative_keys='weak'):
    """Reference: one anchor and one negative at a time, in float64."""
    anchors = _flat(z_weak).detach().double()
    keys = _flat(z_strong).double()
    neg_keys = anchors if negative_keys == 'weak' else keys
    total = 0.0
    for a in range(anchors.size(0)):
        pos = float(anchors[a] @ keys[a]) / temperature
        denom = math.exp(pos)
        for q in neg_indices[a].tolist():
            neg = float(anchors[a] @ neg_keys[q]) / temperature
            if neg_margin is not None:
                neg = max(0.0, neg - neg_margin)
            denom += math.exp(neg)
        total += -math.log(math.exp(pos) / denom)
    return loss_weight * total / anchors.size(0)


def _reference(loss, z_weak, z_strong, neg_indices):
    """:func:`_naive_gather` with the settings of ``loss``."""
    return _naive_gather(z_weak, z_strong, neg_indices, loss.temperature,
                         loss.neg_margin, loss.loss_weight,
                         loss.negative_keys)


def _expected_dissim(loss, mask_logits, cls_logits, size):
    y = loss.sampling_features(mask_logits, cls_logits, size).flatten(0, 1)
    return (1 - y @ y.t()).clamp(min=0)


def test_build_and_invalid_sampler():
    loss = MODELS.build(
        dict(type='InstanceAwarePixelContrastLoss', sampler='fused_class'))
    assert isinstance(loss, InstanceAwarePixelContrastLoss)
    assert loss.temperature == 0.3 and loss.num_negatives == 200
    with pytest.raises(ValueError, match='bogus'):
        InstanceAwarePixelContrastLoss(sampler='bogus')


@pytest.mark.parametrize('sampler', SAMPLERS)
@pytest.mark.parametrize('cross_image', [True, False])
@pytest.mark.parametrize('neg_margin', [None, 0.5])
@pytest.mark.parametrize('negative_keys', ['weak', 'strong'])
def test_loss_matches_naive(sampler, cross_image, neg_margin, negative_keys):
    z_weak, z_strong, mask_logits, cls_logits = _inputs()
    loss = InstanceAwarePixelContrastLoss(
        sampler=sampler,
        negative_keys=negative_keys,
        num_negatives=7,
        cross_image=cross_image,
        temperature=0.2,
        neg_margin=neg_margin,
        loss_weight=0.7,
        chunk_size=6)
    torch.manual_seed(5)
    idx = loss.sample_negatives(mask_logits, cls_logits, (4, 5))
    torch.manual_seed(5)
    out = loss(z_weak, z_strong, mask_logits, cls_logits)
    # The same random state gives the same draws inside forward.
    out_idx = loss(z_weak, z_strong, mask_logits, cls_logits, neg_indices=idx)
    torch.testing.assert_close(out['loss_pxl'], out_idx['loss_pxl'])
    ref = _naive_gather(z_weak, z_strong, idx, 0.2, neg_margin, 0.7,
                        negative_keys)
    assert abs(out['loss_pxl'].item() - ref.item()) < 1e-5
    ref_loops = _naive_loops(z_weak, z_strong, idx, 0.2, neg_margin, 0.7,
                             negative_keys)
    assert abs(out['loss_pxl'].item() - ref_loops) < 1e-5

    # Gradients agree too.
    grad, = torch.autograd.grad(out['loss_pxl'], z_weak)
    ref_grad, = torch.autograd.grad(ref, z_weak)
    torch.testing.assert_close(grad, ref_grad, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize('cross_image', [True, False])
def test_sampled_indices_are_valid(cross_image):
    _, _, mask_logits, cls_logits = _inputs(batch=3, h=3, w=4)
    loss = InstanceAwarePixelContrastLoss(
        num_negatives=5, cross_image=cross_image, chunk_size=5)
    num_pixels = 12
    anchor = torch.arange(3 * num_pixels)
    for seed in range(20):
        idx = loss.sample_negatives(
            mask_logits,
            cls_logits, (3, 4),
            generator=torch.Generator().manual_seed(seed))
        assert idx.shape == (3 * num_pixels, 5)
        # Without replacement.
        assert (idx.sort(dim=1).values.diff(dim=1) > 0).all()
        same_image = idx // num_pixels == (anchor // num_pixels)[:, None]
        if cross_image:
            assert not same_image.any()
        else:
            assert same_image.all()
            assert not (idx == anchor[:, None]).any()


GROUP = 64  # pixels per prediction type in the frequency problems


def _frequency_problem():
    """Two 1x512 images. Image 0: one prediction everywhere. Image 1: 8 groups
    of 64 pixels, one prediction per group, group 0 identical to image 0
    (s_deb = 0). All anchors of image 0 share one distribution over image
    1's groups, so one call gives 512 draws."""
    size = (1, 8 * GROUP)
    mask_logits = torch.zeros(2, 3, *size)
    mask_logits[0, 0] = 6.0
    gen = torch.Generator().manual_seed(3)
    group_logits = 4 * torch.rand(3, 8, generator=gen)
    group_logits[:, 0] = mask_logits[0, :, 0, 0]
    mask_logits[1, :, 0] = group_logits.repeat_interleave(GROUP, dim=1)
    cls_logits = torch.randn(2, 3, 3, generator=gen)
    cls_logits[1] = cls_logits[0]
    return mask_logits, cls_logits, size


def _group_weights(loss, mask_logits, cls_logits, size, anchor):
    """Probability of each group of image 1 for a draw of ``anchor``."""
    dissim = _expected_dissim(loss, mask_logits, cls_logits, size)
    weights = dissim[anchor, 8 * GROUP:].double() + loss.eps
    weights[anchor - 8 * GROUP] = 0  # the anchor itself, if in image 1
    weights = weights.view(8, GROUP).sum(dim=1)
    return weights / weights.sum()


def _check_frequencies(draws, expected):
    counts = torch.bincount(draws, minlength=8).double()
    total = counts.sum()
    assert (counts / total - expected).abs().max() < 0.02
    keep = expected > 1e-3
    chi2 = ((counts[keep] - total * expected[keep])**2 /
            (total * expected[keep])).sum()
    assert chi2 < 24.3  # chi-square, at most 7 dof, p = 0.001


@pytest.mark.parametrize('sampler', ['fused', 'mask', 'uniform'])
def test_sampling_frequencies_follow_dissimilarity(sampler):
    mask_logits, cls_logits, size = _frequency_problem()
    loss = InstanceAwarePixelContrastLoss(
        sampler=sampler, num_negatives=1, cross_image=True)
    gen = torch.Generator().manual_seed(0)
    draws = torch.cat([
        loss.sample_negatives(mask_logits, cls_logits, size,
                              generator=gen)[:8 * GROUP, 0] for _ in range(16)
    ])  # 8192 draws for image 0's anchors
    assert (draws >= 8 * GROUP).all()  # never the anchor's own image
    groups = (draws - 8 * GROUP) // GROUP
    if sampler == 'uniform':
        expected = torch.full((8, ), 1 / 8, dtype=torch.float64)
    else:
        expected = _group_weights(loss, mask_logits, cls_logits, size, 0)
        assert expected[0] < 1e-4 and (groups != 0).all()
        assert expected.min() < 0.05 and expected.max() > 0.15
    _check_frequencies(groups, expected)


def test_sampling_frequencies_within_image():
    mask_logits, cls_logits, size = _frequency_problem()
    loss = InstanceAwarePixelContrastLoss(
        sampler='mask', num_negatives=1, cross_image=False)
    gen = torch.Generator().manual_seed(1)
    anchors = torch.arange(8 * GROUP, 9 * GROUP)  # group 0 of image 1
    draws = torch.cat([
        loss.sample_negatives(mask_logits, cls_logits, size,
                              generator=gen)[anchors, 0] for _ in range(60)
    ])
    assert (draws != anchors.repeat(60)).all() and (draws >= 8 * GROUP).all()
    expected = _group_weights(loss, mask_logits, cls_logits, size, 8 * GROUP)
    _check_frequencies((draws - 8 * GROUP) // GROUP, expected)


def test_identical_predictions_fall_back_to_uniform():
    mask_logits = torch.zeros(2, 3, 1, 8 * GROUP)
    cls_logits = torch.zeros(2, 3, 5)
    loss = InstanceAwarePixelContrastLoss(num_negatives=1)
    gen = torch.Generator().manual_seed(0)
    draws = torch.cat([
        loss.sample_negatives(
            mask_logits, cls_logits, (1, 8 * GROUP),
            generator=gen)[:8 * GROUP, 0] for _ in range(16)
    ])
    _check_frequencies((draws - 8 * GROUP) // GROUP,
                       torch.full((8, ), 1 / 8, dtype=torch.float64))
    # the loss draws the same way: the same random state, the negatives
    # above, the reference's loss
    z_weak, z_strong, _, _ = _inputs(batch=2, h=1, w=8 * GROUP)
    torch.manual_seed(4)
    idx = loss.sample_negatives(mask_logits, cls_logits, (1, 8 * GROUP))
    torch.manual_seed(4)
    out = loss(z_weak, z_strong, mask_logits, cls_logits)
    torch.testing.assert_close(out['loss_pxl'],
                               _reference(loss, z_weak, z_strong, idx))


def test_gradients_reach_weak_view_only():
    z_weak, z_strong, mask_logits, cls_logits = _inputs()
    z_strong.requires_grad_()
    mask_logits.requires_grad_()
    cls_logits.requires_grad_()
    out = InstanceAwarePixelContrastLoss(num_negatives=5)(z_weak, z_strong,
                                                          mask_logits,
                                                          cls_logits)
    out['loss_pxl'].backward()
    assert z_weak.grad is not None and z_weak.grad.abs().sum() > 0
    assert z_strong.grad is None
    assert mask_logits.grad is None and cls_logits.grad is None
    assert not out['pxl_margin'].requires_grad


def test_batch_of_one_falls_back_to_within_image():
    z_weak, z_strong, mask_logits, cls_logits = _inputs(batch=1)
    loss = InstanceAwarePixelContrastLoss(num_negatives=50, cross_image=True)
    with pytest.warns(UserWarning, match='batch of one image'):
        idx = loss.sample_negatives(mask_logits, cls_logits, (4, 5))
    assert idx.shape == (20, 19)  # fewer candidates than R: all 19 used
    assert not (idx == torch.arange(20)[:, None]).any()
    # every other pixel is a negative: the loss and its gradient are the
    # reference's with these negatives, whatever their order
    out = loss(z_weak, z_strong, mask_logits, cls_logits)
    grad, = torch.autograd.grad(out['loss_pxl'], z_weak)
    ref = _reference(loss, z_weak, z_strong, idx)
    ref_grad, = torch.autograd.grad(ref, z_weak)
    torch.testing.assert_close(out['loss_pxl'], ref)
    torch.testing.assert_close(grad, ref_grad)

    # A single pixel has no candidate at all: the loss is exactly 0.
    z = F.normalize(torch.randn(1, 4, 1, 1), dim=1).requires_grad_()
    out = loss(z, z.detach(), torch.randn(1, 3, 1, 1), torch.randn(1, 3, 2))
    assert out['loss_pxl'].item() == 0
    out['loss_pxl'].backward()


def test_fewer_candidates_than_negatives():
    z_weak, z_strong, mask_logits, cls_logits = _inputs(batch=2, h=2, w=3)
    loss = InstanceAwarePixelContrastLoss(num_negatives=200)
    idx = loss.sample_negatives(mask_logits, cls_logits, (2, 3))
    assert idx.shape == (12, 6)
    expected = torch.cat(
        [torch.arange(6, 12).expand(6, 6),
         torch.arange(6).expand(6, 6)])
    assert torch.equal(idx.sort(dim=1).values, expected)
    out = loss(z_weak, z_strong, mask_logits, cls_logits)
    ref = _naive_gather(z_weak, z_strong, expected, 0.3, 0.5, 0.1)
    assert abs(out['loss_pxl'].item() - ref.item()) < 1e-6


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_half_precision_inputs(dtype):
    z_weak, z_strong, mask_logits, cls_logits = _inputs()
    z_weak = z_weak.detach().to(dtype).requires_grad_()
    loss = InstanceAwarePixelContrastLoss(num_negatives=7)
    idx = loss.sample_negatives(mask_logits, cls_logits, (4, 5))
    out = loss(
        z_weak,
        z_strong.to(dtype),
        mask_logits.to(dtype),
        cls_logits.to(dtype),
        neg_indices=idx)
    assert out['loss_pxl'].dtype == torch.float32
    out['loss_pxl'].backward()
    assert z_weak.grad.dtype == dtype
    assert torch.isfinite(z_weak.grad.float()).all()
    ref = _naive_gather(z_weak.detach().float(),
                        z_strong.to(dtype).float(), idx, 0.3, 0.5, 0.1)
    assert abs(out['loss_pxl'].item() - ref.item()) < 1e-5
    # Sampling itself also runs on half-precision logits: valid negatives
    # (none in the anchor's image), the reference's loss with them.
    torch.manual_seed(2)
    idx = loss.sample_negatives(mask_logits.to(dtype), cls_logits.to(dtype),
                                (4, 5))
    assert idx.shape == (60, 7)
    assert not (idx // 20 == torch.arange(60)[:, None] // 20).any()
    torch.manual_seed(2)
    out = loss(z_weak, z_strong.to(dtype), mask_logits.to(dtype),
               cls_logits.to(dtype))
    ref = _naive_gather(z_weak.detach().float(),
                        z_strong.to(dtype).float(), idx, 0.3, 0.5, 0.1)
    assert abs(out['loss_pxl'].item() - ref.item()) < 1e-5


@pytest.mark.parametrize('cross_image', [True, False])
def test_chunk_size_independence(cross_image):
    z_weak, z_strong, mask_logits, cls_logits = _inputs(batch=3, h=5, w=6)
    kwargs = dict(num_negatives=9, cross_image=cross_image)
    idx = InstanceAwarePixelContrastLoss(**kwargs).sample_negatives(
        mask_logits, cls_logits, (5, 6))
    ids = torch.randint(-1, 3, (3, 5, 6))
    results = []
    for chunk_size in (1, 7, 30, 4096):
        loss = InstanceAwarePixelContrastLoss(chunk_size=chunk_size, **kwargs)
        out = loss(
            z_weak, z_strong, mask_logits, cls_logits, ids, neg_indices=idx)
        grad, = torch.autograd.grad(out['loss_pxl'], z_weak)
        results.append((out, grad))
    for out, grad in results[1:]:
        for key in ('loss_pxl', 'pxl_margin', 'pxl_fnr'):
            torch.testing.assert_close(out[key], results[0][0][key])
        torch.testing.assert_close(grad, results[0][1])


def test_autograd_keeps_no_similarity_block():
    """Only (chunk, R) indices and the inputs are saved for backward, never
    a (chunk, M) block, so memory does not grow with the number of chunks."""
    z_weak, z_strong, mask_logits, cls_logits = _inputs(batch=4, h=8, w=16)
    loss = InstanceAwarePixelContrastLoss(num_negatives=10, chunk_size=32)
    saved = []

    def pack(tensor):
        saved.append(tensor.numel())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = loss(z_weak, z_strong, mask_logits, cls_logits)
    num_cand = 3 * 8 * 16
    assert max(saved) <= z_weak.numel() < 32 * num_cand
    out['loss_pxl'].backward()


def test_temperature_is_read_at_call_time():
    z_weak, z_strong, mask_logits, cls_logits = _inputs()
    loss = InstanceAwarePixelContrastLoss(num_negatives=5, neg_margin=None)
    idx = loss.sample_negatives(mask_logits, cls_logits, (4, 5))
    loss.temperature = 0.07
    out = loss(z_weak, z_strong, neg_indices=idx)
    ref = _naive_gather(z_weak, z_strong, idx, 0.07, None, 0.1)
    assert abs(out['loss_pxl'].item() - ref.item()) < 1e-5


def _orthogonal_case():
    """B=2, 1x2 pixels, D=2: image 0 embeds e0, image 1 embeds e1."""
    z = torch.zeros(2, 2, 1, 2)
    z[0, 0] = 1
    z[1, 1] = 1
    return z.requires_grad_(), z.detach().clone()


def test_known_loss_margin_and_fnr():
    z_weak, z_strong = _orthogonal_case()
    ids = torch.tensor([[[0, 1]], [[0, -1]]])
    loss = InstanceAwarePixelContrastLoss(
        sampler='uniform', num_negatives=2, temperature=0.5, loss_weight=1.0)
    out = loss(z_weak, z_strong, instance_ids=ids)
    # s+ = 1 / T = 2, both negatives orthogonal: hinge(0 - 0.5) = 0.
    expected = -math.log(math.exp(2) / (math.exp(2) + 2))
    assert abs(out['loss_pxl'].item() - expected) < 1e-6
    # Negatives at cosine distance 1, positives at 0.
    assert abs(out['pxl_margin'].item() - 1.0) < 1e-6
    # Anchor ids 0, 1, 0 (the -1 anchor is ignored); each sees both pixels
    # of the other image: 1 + 0 + 1 false negatives out of 6.
    assert abs(out['pxl_fnr'].item() - 1 / 3) < 1e-6
    assert 'pxl_fnr' not in loss(z_weak, z_strong)

    # Negatives equal to the positive: margin 0, no hinge: loss log(1 + R).
    same = torch.ones(2, 2, 1, 2)
    loss = InstanceAwarePixelContrastLoss(
        sampler='uniform', num_negatives=2, neg_margin=None, loss_weight=1.0)
    out = loss(same, same, instance_ids=torch.full((2, 1, 2), -1))
    assert abs(out['loss_pxl'].item() - math.log(3)) < 1e-6
    assert abs(out['pxl_margin'].item()) < 1e-6
    assert out['pxl_fnr'].item() == 0


def test_within_image_fnr_counts_same_instance():
    z_weak, z_strong = _orthogonal_case()
    loss = InstanceAwarePixelContrastLoss(
        sampler='uniform', num_negatives=3, cross_image=False)
    # Each anchor's only candidate is the other pixel of its image.
    out = loss(
        z_weak, z_strong, instance_ids=torch.tensor([[[4, 4]], [[4, 5]]]))
    assert abs(out['pxl_fnr'].item() - 0.5) < 1e-6
    # Both negatives identical to the anchor: distance 0, margin 0.
    assert abs(out['pxl_margin'].item()) < 1e-6


def test_reference_draw_and_loss():
    """The authors' draw (the reference of :mod:`mmcast.testing`) stays out
    of the anchor's image and follows ``w``; its loss and gradient equal
    mmcast's with weak keys given the same negatives, not with strong
    keys."""
    # two images; image 1's pixels 0-1 are identical to image 0's (w = eps),
    # pixels 2-3 orthogonal (w = 1): the draw of 2 takes pixels 2-3 only
    y = torch.tensor([[[1., 0.]] * 4,
                      [[1., 0.], [1., 0.], [0., 1.], [0., 1.]]])
    torch.manual_seed(0)
    idx = authors_negatives(y, 2)
    assert idx.shape == (8, 2)
    assert sorted(idx[:4].flatten().tolist()) == [6, 6, 6, 6, 7, 7, 7, 7]
    assert (idx[4:] < 4).all()  # image 1's anchors: pixels of image 0

    # the authors' negatives are weak-view keys with gradient
    z = torch.randn(2, 3, 2, 2, requires_grad=True)
    z_strong = z.detach() + 0.1 * torch.randn(2, 3, 2, 2)
    neg = torch.tensor([[4], [5], [6], [7], [0], [1], [2], [3]])
    grads = {}
    for keys in ('weak', 'strong'):
        loss = InstanceAwarePixelContrastLoss(
            sampler='fused_class', num_negatives=5, negative_keys=keys,
            draw='exact')
        loss(z, z_strong, neg_indices=neg)['loss_pxl'].backward()
        grads[keys], z.grad = z.grad, None
    authors_loss(loss, z, z_strong, neg).backward()
    torch.testing.assert_close(z.grad, grads['weak'])
    assert not torch.allclose(z.grad, grads['strong'], atol=1e-4)

# Copyright (c) mmcast contributors. All rights reserved.
"""L_pxl's negatives: the rejection draw against the exact one, weak-view
keys, and negatives from the global batch of a two-process gloo run."""
import os.path as osp

import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from mmcast.models.losses import InstanceAwarePixelContrastLoss


def _inputs(batch=4, dim=8, h=4, w=6, queries=6, classes=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    z_weak = F.normalize(torch.randn(batch, dim, h, w, generator=gen), dim=1)
    z_strong = F.normalize(
        z_weak + 0.5 * torch.randn(batch, dim, h, w, generator=gen), dim=1)
    mask_logits = 3 * torch.randn(batch, queries, 2 * h, 2 * w, generator=gen)
    cls_logits = 3 * torch.randn(batch, queries, classes + 1, generator=gen)
    ids = torch.randint(-1, 3, (batch, h, w), generator=gen)
    return z_weak.requires_grad_(), z_strong, mask_logits, cls_logits, ids


def _flat(z):
    return F.normalize(z.float(), dim=1).flatten(2).transpose(1, 2).flatten(
        0, 1)


def _spread_problem(num_cand, group=1):
    """Two 1 x (num_cand * group) images. Image 0: one prediction (all mask
    probability on query 0). Image 1: ``num_cand`` groups of ``group``
    pixels whose dissimilarity to image 0 spreads over [0, 1] (mask
    probabilities cos a, sin a on queries 0, 1, a from 0 to pi / 2). All
    anchors of image 0 make independent draws from the same weights."""
    width = num_cand * group
    mask_logits = torch.full((2, 2, 1, width), -30.0)
    mask_logits[0, 0] = 30.0
    angle = torch.linspace(0, torch.pi / 2, num_cand).repeat_interleave(group)
    mask_logits[1, 0, 0] = angle.cos().clamp(min=1e-6).log()
    mask_logits[1, 1, 0] = angle.sin().clamp(min=1e-6).log()
    return mask_logits, torch.zeros(2, 2, 3), (1, width)


def _draws(loss, problem, seed, repeats):
    """(repeats * width, R) negatives of image 0's anchors, as pixels of
    image 1."""
    mask_logits, cls_logits, size = problem
    gen = torch.Generator().manual_seed(seed)
    return torch.cat([
        loss.sample_negatives(mask_logits, cls_logits, size,
                              generator=gen)[:size[1]] - size[1]
        for _ in range(repeats)
    ])


def _inclusion(idx, num_cand):
    hits = torch.zeros(idx.size(0), num_cand, dtype=torch.bool)
    hits.scatter_(1, idx, True)
    return hits.double().mean(0)


def test_rejection_draw_is_close_to_exact_inclusion_probabilities():
    """Per-candidate inclusion probabilities (R = 20 of M = 400 candidates,
    weights spread over [eps, 1]), 4000 draws each: the with-replacement
    rejection draw against the exact Gumbel-top-k draw without replacement.
    Each estimate has a standard error of at most 0.008."""
    problem = _spread_problem(400)
    kwargs = dict(sampler='mask', num_negatives=20)
    exact_idx = _draws(
        InstanceAwarePixelContrastLoss(draw='exact', **kwargs), problem, 0, 10)
    idx = _draws(
        InstanceAwarePixelContrastLoss(draw='rejection', **kwargs), problem,
        1, 10)
    assert (idx >= 0).all() and (idx < 400).all()
    exact, rejection = _inclusion(exact_idx, 400), _inclusion(idx, 400)
    gap = (exact - rejection).abs()
    print(f'\ninclusion probabilities, exact vs rejection: max |gap| '
          f'{gap.max():.4f}, mean |gap| {gap.mean():.4f}; distinct '
          f'negatives per anchor {exact.sum():.2f} vs {rejection.sum():.2f}')
    assert gap.max() < 0.045 and gap.mean() < 0.012
    # with replacement: about R distinct negatives, a few repeated
    assert 19.0 < rejection.sum() <= 20.0 and exact.sum() == 20.0
    # the weights matter: the most dissimilar candidates are drawn far more
    assert rejection[-40:].mean() > 5 * rejection[:40].mean()


def test_rejection_draw_follows_the_weights():
    """One negative per anchor: each draw is distributed as w / sum(w) over
    8 groups of 64 pixels (chi-square against the weights)."""
    problem = _spread_problem(8, group=64)
    loss = InstanceAwarePixelContrastLoss(
        sampler='mask', num_negatives=1, draw='rejection')
    y = loss.sampling_features(*problem)
    weights = (1 + loss.eps - y[1] @ y[0, 0]).double().clamp(min=loss.eps)
    expected = weights.view(8, 64).sum(1) / weights.sum()
    groups = _draws(loss, problem, 0, 16)[:, 0] // 64  # 8192 draws
    counts = torch.bincount(groups, minlength=8).double()
    keep = expected > 1e-3
    chi2 = ((counts[keep] - 8192 * expected[keep])**2 /
            (8192 * expected[keep])).sum()
    assert chi2 < 24.3  # at most 7 dof, p = 0.001
    assert expected[0] < 1e-4 and counts[0] <= 8  # only via the fallback


@pytest.mark.parametrize('cross_image', [True, False])
def test_rejection_draw_candidates(cross_image):
    _, _, mask_logits, cls_logits, _ = _inputs(batch=3, h=5, w=6)
    loss = InstanceAwarePixelContrastLoss(
        num_negatives=8, draw='rejection', cross_image=cross_image,
        chunk_size=7)
    idx = loss.sample_negatives(mask_logits, cls_logits, (5, 6))
    anchor = torch.arange(90)
    same_image = idx // 30 == (anchor // 30)[:, None]
    assert idx.shape == (90, 8)
    if cross_image:
        assert not same_image.any()
    else:
        assert same_image.all() and not (idx == anchor[:, None]).any()


def test_rejection_draw_is_uniform_when_predictions_agree():
    """All weights eps: nothing is accepted, the fallback draws uniformly."""
    loss = InstanceAwarePixelContrastLoss(
        num_negatives=4, draw='rejection', chunk_size=4096)
    width = 2048
    draws = loss.sample_negatives(
        torch.zeros(2, 3, 1, width), torch.zeros(2, 3, 5), (1, width),
        generator=torch.Generator().manual_seed(0))[:width] - width
    counts = torch.bincount(draws.flatten() // 256, minlength=8).double()
    expected = draws.numel() / 8
    assert ((counts - expected)**2 / expected).sum() < 24.3


def test_weak_keys_get_gradient_and_match_reference():
    z_weak, z_strong, mask_logits, cls_logits, _ = _inputs()
    loss = InstanceAwarePixelContrastLoss(
        num_negatives=6, negative_keys='weak', temperature=0.2,
        chunk_size=5)
    idx = loss.sample_negatives(mask_logits, cls_logits, (4, 6))
    out = loss(z_weak, z_strong, neg_indices=idx)
    grad, = torch.autograd.grad(out['loss_pxl'], z_weak)

    anchors = _flat(z_weak)
    pos = (anchors * _flat(z_strong)).sum(-1) / 0.2
    neg = torch.einsum('nd,nrd->nr', anchors, anchors[idx]) / 0.2
    neg = (neg - 0.5).clamp(min=0)
    ref = 0.1 * (torch.cat([pos[:, None], neg], 1).logsumexp(1) - pos).mean()
    ref_grad, = torch.autograd.grad(ref, z_weak)
    torch.testing.assert_close(out['loss_pxl'], ref)
    torch.testing.assert_close(grad, ref_grad, atol=1e-6, rtol=1e-5)
    # strong keys: the keys' share of the gradient is missing
    strong = InstanceAwarePixelContrastLoss(
        num_negatives=6, negative_keys='strong', temperature=0.2)(
            z_weak, z_strong, neg_indices=idx)
    strong_grad, = torch.autograd.grad(strong['loss_pxl'], z_weak)
    assert (strong_grad - grad).abs().max() > 1e-4


def _rank_losses(rank, world, init_file, out_dir, cases):
    torch_dist.init_process_group(
        'gloo', init_method=f'file://{init_file}', rank=rank,
        world_size=world)
    z_weak, z_strong, mask_logits, cls_logits, ids = _inputs()
    part = slice(2 * rank, 2 * rank + 2)
    results = []
    for kwargs in cases:
        z_part = z_weak.detach()[part].requires_grad_()
        loss = InstanceAwarePixelContrastLoss(
            negatives_from='global', **kwargs)
        out = loss(z_part, z_strong[part], mask_logits[part],
                   cls_logits[part], ids[part], seed=7)
        idx = loss.sample_negatives(
            mask_logits[part], cls_logits[part], (4, 6), seed=7)
        out['loss_pxl'].backward()
        results.append(dict(out={k: v.detach() for k, v in out.items()},
                            idx=idx, grad=z_part.grad))
    torch.save(results, osp.join(out_dir, f'rank{rank}.pth'))
    torch_dist.destroy_process_group()


def test_global_negatives_match_one_process(tmp_path):
    """Two gloo processes with 2 images each draw the same negatives and
    compute the same loss as one process holding all 4 images."""
    cases = [
        dict(draw=draw, negative_keys=keys, num_negatives=10, chunk_size=9)
        for draw, keys in (('exact', 'strong'), ('rejection', 'weak'))
    ]
    mp.spawn(_rank_losses, args=(2, str(tmp_path / 'init'), str(tmp_path),
                                 cases), nprocs=2, join=True)
    per_rank = [torch.load(tmp_path / f'rank{r}.pth') for r in range(2)]
    z_weak, z_strong, mask_logits, cls_logits, ids = _inputs()
    for kwargs, ranks in zip(cases, zip(*per_rank)):
        loss = InstanceAwarePixelContrastLoss(**kwargs)
        out = loss(z_weak, z_strong, mask_logits, cls_logits, ids, seed=7)
        idx = loss.sample_negatives(mask_logits, cls_logits, (4, 6), seed=7)
        torch.testing.assert_close(torch.cat([r['idx'] for r in ranks]), idx)
        # rank 0's anchors draw from the 2 images that live on rank 1 too
        assert (idx[:48] >= 48).float().mean() > 0.5
        for key in ('loss_pxl', 'pxl_margin'):
            torch.testing.assert_close(
                sum(r['out'][key] for r in ranks) / 2, out[key])
        if kwargs['negative_keys'] == 'strong':  # no cross-process grads
            grad, = torch.autograd.grad(out['loss_pxl'], z_weak)
            torch.testing.assert_close(
                torch.cat([r['grad'] for r in ranks]) / 2, grad)
        # local negatives on two processes would never reach the other half
        local = loss.sample_negatives(
            mask_logits[:2], cls_logits[:2], (4, 6), seed=7)
        assert (local < 48).all()

@pytest.mark.parametrize('draw', ['exact', 'rejection'])
@pytest.mark.parametrize('negative_keys', ['strong', 'weak'])
def test_margin_and_fnr_keep_their_meaning(draw, negative_keys):
    """``pxl_margin`` and ``pxl_fnr`` computed from the drawn indices by
    their definitions, whichever draw and keys."""
    z_weak, z_strong, mask_logits, cls_logits, ids = _inputs()
    loss = InstanceAwarePixelContrastLoss(
        num_negatives=5, draw=draw, negative_keys=negative_keys)
    out = loss(z_weak, z_strong, mask_logits, cls_logits, ids, seed=3)
    idx = loss.sample_negatives(mask_logits, cls_logits, (4, 6), seed=3)
    anchors, pos_keys = _flat(z_weak).detach(), _flat(z_strong)
    keys = anchors if negative_keys == 'weak' else pos_keys
    neg_dist = 1 - torch.einsum('nd,nrd->nr', anchors, keys[idx])
    pos_dist = 1 - (anchors * pos_keys).sum(-1)
    torch.testing.assert_close(out['pxl_margin'],
                               neg_dist.mean() - pos_dist.mean())
    flat_ids = ids.flatten()
    valid = flat_ids >= 0
    same = flat_ids[idx] == flat_ids[:, None]
    torch.testing.assert_close(out['pxl_fnr'], same[valid].float().mean())

# Copyright (c) mmcast contributors. All rights reserved.
"""PhotometricStrongView: per-rank draws, exact resume, no host syncs."""
import os
import subprocess
import sys

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config

import mmcast  # noqa: F401
from mmcast.models.layers import PhotometricStrongView
from mmcast.models.layers.photometric_strong_view import (_BLUR, _FACTORS,
                                                          _GRAY, _JITTER,
                                                          _JITTER_OPS, _ORDER,
                                                          _SIGMA,
                                                          _gaussian_blur,
                                                          _grayscale)
from test_gpu_path_device import HostTransferRecorder

MEAN, STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)


def _inputs(batch=4, height=24, width=32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, 3, height, width, generator=gen) * 255
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    return (images - mean) / torch.tensor(STD).view(1, 3, 1, 1)


def _reference(view, inputs, rand):
    """The view of each image on its own, adjustments applied one by one
    (the semantics the batched ``augment`` must keep)."""
    out = []
    for b in range(len(inputs)):
        x = (inputs[b:b + 1] * view.std + view.mean) / 255
        x = x.clamp(0, 1)
        r = rand[b]
        if r[_JITTER] < view.jitter_prob:
            for op_id in r[_ORDER:_ORDER + 4].argsort().tolist():
                low, high = view.factor_ranges[op_id]
                factor = low + (high - low) * r[_FACTORS + op_id]
                x = _JITTER_OPS[op_id](x, factor.view(1))
        if r[_GRAY] < view.gray_prob:
            x = _grayscale(x).expand(-1, 3, -1, -1)
        if r[_BLUR] < view.blur_prob:
            low, high = view.sigma_range
            sigma = low + (high - low) * r[_SIGMA]
            x = _gaussian_blur(x, sigma.view(1), view.kernel_size)
        out.append((x * 255 - view.mean) / view.std)
    return torch.cat(out)


def test_batched_view_equals_per_image_reference():
    view = PhotometricStrongView(MEAN, STD, jitter_prob=0.5, gray_prob=0.5,
                                 blur_prob=0.5, seed=11)
    inputs = _inputs(batch=8)
    # (jitter, gray, blur) x (skipped, taken)
    seen = torch.zeros(3, 2, dtype=torch.bool)
    for _ in range(3):
        rand = view.draw(len(inputs), inputs.device)
        for i, (col, prob) in enumerate(((_JITTER, 0.5), (_GRAY, 0.5),
                                         (_BLUR, 0.5))):
            seen[i, 0] |= (rand[:, col] >= prob).any()
            seen[i, 1] |= (rand[:, col] < prob).any()
        ours = view.augment(inputs.clone(), rand)
        assert torch.equal(ours, _reference(view, inputs, rand))
    assert seen.all()  # every branch was taken and skipped


def test_a_call_makes_no_host_copy_or_sync():
    view = PhotometricStrongView(MEAN, STD, jitter_prob=1.0, gray_prob=0.5,
                                 blur_prob=0.5, seed=0)
    inputs = _inputs()
    with HostTransferRecorder(shape_syncs=True) as rec:
        out = view(inputs)
    assert rec.calls == []
    assert out.shape == inputs.shape and not torch.equal(out, inputs)


@pytest.mark.parametrize('seed', [5, 2**64 - 5])
def test_resume_continues_the_draws_exactly(tmp_path, seed):
    inputs = _inputs()
    uninterrupted = PhotometricStrongView(MEAN, STD, seed=seed)
    expected = [uninterrupted(inputs) for _ in range(4)]
    first = PhotometricStrongView(MEAN, STD, seed=seed)
    for _ in range(2):
        first(inputs)
    path = tmp_path / 'state.pth'
    torch.save(first.rng_state(), path)
    resumed = PhotometricStrongView(MEAN, STD, seed=123)  # another run seed
    resumed.load_rng_state(torch.load(path, weights_only=True))
    for want in expected[2:]:
        assert torch.equal(resumed(inputs), want)
    assert not torch.equal(expected[2], expected[3])


def test_distiller_checkpoint_carries_the_student_draws(repo_root, tmp_path):
    """``CASTDistiller`` saves where its student's strong view stands."""
    cfg = Config.fromfile(f'{repo_root}/configs/mmcast/distill_toy.py').model
    cfg.teacher = cfg.teacher_checkpoint = None
    cfg.student.train_cfg.num_points = 256
    inputs = _inputs()
    torch.manual_seed(0)
    running = MODELS.build(cfg)
    for _ in range(2):
        running.student.strong_view(inputs)
    path = tmp_path / 'iter_2.pth'
    state = running.state_dict()
    # MMEngine broadcasts every state_dict entry as a tensor (DDP start)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    torch.save(state, path)
    torch.manual_seed(1)  # a new process, another default seed
    resumed = MODELS.build(cfg)
    assert resumed.student.strong_view.seed != running.student.strong_view.seed
    resumed.load_state_dict(torch.load(path, weights_only=True))
    assert torch.equal(resumed.student.strong_view(inputs),
                       running.student.strong_view(inputs))
    assert resumed.student.strong_view.num_calls == 3
    # a state of another model (or version) restarts the draws, loudly
    with pytest.warns(UserWarning, match='start their draws again'):
        resumed.set_extra_state(torch.tensor([2, 1, 1, 2, 2]))
    assert resumed.student.strong_view.num_calls == 3


@pytest.mark.parametrize('seed', [-1, 2**64, 1.5, True])
def test_bad_seed_is_refused(seed):
    with pytest.raises(ValueError, match='seed'):
        PhotometricStrongView(MEAN, STD, seed=seed)


RANKS_SCRIPT = '''
import sys

import torch
import torch.distributed as dist

from mmcast.models.layers import PhotometricStrongView
from test_strong_view_ranks import MEAN, STD, _inputs

dist.init_process_group('gloo')
view = PhotometricStrongView(MEAN, STD, seed=3)  # the same seed everywhere
view(_inputs(batch=2))
out = view(_inputs(batch=2))  # the second call
gathered = [torch.zeros_like(out) for _ in range(2)]
dist.all_gather(gathered, out)
if dist.get_rank() == 0:
    torch.save(gathered, sys.argv[1])
dist.destroy_process_group()
'''


def test_two_gloo_ranks_draw_different_views(tmp_path, repo_root):
    script = tmp_path / 'ranks.py'
    script.write_text(RANKS_SCRIPT)
    out = str(tmp_path / 'views.pth')
    tests_dir = os.path.join(repo_root, 'tests')
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore',
               PYTHONPATH=os.pathsep.join(
                   [tests_dir, os.environ.get('PYTHONPATH', '')]))
    proc = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--standalone',
         '--nproc_per_node=2', str(script), out],
        cwd=repo_root, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rank0, rank1 = torch.load(out, weights_only=True)
    inputs = _inputs(batch=2)
    # same inputs, same seed: still other jitter/grayscale/blur per rank
    for b in range(2):
        assert not torch.allclose(rank0[b], rank1[b])
    # the global batch of 4 split over 2 ranks: as one process drawing 4
    single = PhotometricStrongView(MEAN, STD, seed=3)
    both = torch.cat([inputs, inputs])
    single(both)
    torch.testing.assert_close(single(both), torch.cat([rank0, rank1]),
                               rtol=0, atol=1e-5)

# Copyright (c) mmcast contributors. All rights reserved.
import pytest
import torch
import torch.nn as nn
import torchvision.transforms.functional as TF

from mmcast.models.layers import PhotometricStrongView, PixelProjectionHead
from mmcast.models.layers.photometric_strong_view import (_adjust_brightness,
                                                          _adjust_contrast,
                                                          _adjust_hue,
                                                          _adjust_saturation,
                                                          _gaussian_blur)
from mmdet.registry import MODELS

MEAN = [123.675, 116.28, 103.53]
STD = [58.395, 57.12, 57.375]


def _normalise(images):
    """(B, 3, H, W) in [0, 1] -> normalised as by the data preprocessor."""
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (images * 255 - mean) / std


def _unnormalise(inputs):
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (inputs * std + mean) / 255


def test_projection_head_authors_layout():
    head = MODELS.build(dict(type='PixelProjectionHead', in_channels=768))
    convs = [m for m in head.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(768, 128),
                                                                (128, 128),
                                                                (128, 128)]
    assert all(c.bias is None and c.kernel_size == (1, 1) for c in convs)
    layers = list(head.mlp)
    assert [type(m) for m in layers
            ] == [nn.Conv2d, nn.ReLU, nn.Conv2d, nn.ReLU, nn.Conv2d]
    out = head(torch.randn(2, 768, 3, 5))
    assert out.shape == (2, 128, 3, 5)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(2, 3, 5))


def test_projection_head_options():
    head = PixelProjectionHead(
        16, hidden_channels=8, out_channels=4, num_layers=1, bias=True)
    assert len(head.mlp) == 1 and head.mlp[0].bias is not None
    x = torch.randn(1, 16, 2, 2, requires_grad=True)
    out = head(x)
    assert out.shape == (1, 4, 2, 2)
    out.sum().backward()
    assert x.grad is not None
    # Per-pixel: permuting pixels permutes the output.
    x = torch.randn(1, 16, 1, 6)
    perm = torch.randperm(6)
    torch.testing.assert_close(head(x[..., perm]), head(x)[..., perm])
    with pytest.raises(ValueError):
        PixelProjectionHead(16, num_layers=0)


def test_jitter_ops_match_torchvision():
    images = torch.rand(3, 3, 11, 13)
    factors = torch.tensor([0.6, 1.0, 1.4])
    shifts = torch.tensor([-0.1, 0.03, 0.1])
    for i in range(3):
        one = images[i:i + 1]
        pairs = [
            (_adjust_brightness(one, factors[i:i + 1]),
             TF.adjust_brightness(images[i], factors[i].item())),
            (_adjust_contrast(one, factors[i:i + 1]),
             TF.adjust_contrast(images[i], factors[i].item())),
            (_adjust_saturation(one, factors[i:i + 1]),
             TF.adjust_saturation(images[i], factors[i].item())),
            (_adjust_hue(one, shifts[i:i + 1]),
             TF.adjust_hue(images[i], shifts[i].item())),
            (_gaussian_blur(one, 0.1 + factors[i:i + 1], 5),
             TF.gaussian_blur(images[i], [5, 5], [0.1 + factors[i].item()])),
        ]
        for ours, ref in pairs:
            torch.testing.assert_close(ours[0], ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize('batch', [1, 3, 8])
def test_strong_view_keeps_geometry(batch):
    images = torch.full((batch, 3, 32, 48), 0.1)
    images[:, :, 10:20, 30:40] = 0.9  # one bright square
    view = MODELS.build(
        dict(
            type='PhotometricStrongView',
            mean=MEAN,
            std=STD,
            jitter_prob=1.0,
            gray_prob=0.5,
            blur_prob=1.0,
            seed=batch))
    for _ in range(3):
        out = view(_normalise(images))
        assert out.shape == images.shape and out.dtype == images.dtype
        luma = _unnormalise(out).mean(dim=1)  # (B, H, W)
        inside = luma[:, 12:18, 32:38].amin(dim=(1, 2))
        outside = luma.clone()
        outside[:, 10:20, 30:40] = float('-inf')
        assert (inside > outside.amax(dim=(1, 2))).all()
        assert luma.flatten(1).argmax(dim=1).remainder(48).ge(30).all()


def test_strong_view_zero_probabilities_is_identity():
    inputs = _normalise(torch.rand(4, 3, 16, 24))
    view = PhotometricStrongView(
        MEAN, STD, jitter_prob=0.0, gray_prob=0.0, blur_prob=0.0, seed=0)
    torch.testing.assert_close(view(inputs), inputs, atol=1e-5, rtol=0)


def test_strong_view_changes_pixels_and_grayscale():
    inputs = _normalise(torch.rand(2, 3, 16, 24))
    view = PhotometricStrongView(MEAN, STD, gray_prob=1.0, seed=0)
    out = _unnormalise(view(inputs))
    torch.testing.assert_close(out[:, 0], out[:, 1], atol=1e-5, rtol=0)
    torch.testing.assert_close(out[:, 0], out[:, 2], atol=1e-5, rtol=0)
    assert (out - _unnormalise(inputs)).abs().max() > 0.01


def test_strong_view_reproducible():
    inputs = _normalise(torch.rand(8, 3, 16, 24))
    first = PhotometricStrongView(MEAN, STD, seed=7)
    second = PhotometricStrongView(MEAN, STD, seed=7)
    out = first(inputs)
    torch.testing.assert_close(out, second(inputs))
    # Image i gets the same parameters whatever the batch size.
    single = PhotometricStrongView(MEAN, STD, seed=7)(inputs[:1])
    torch.testing.assert_close(single, out[:1])
    # Successive calls and other seeds draw other parameters.
    assert not torch.allclose(first(inputs), out)
    other = PhotometricStrongView(MEAN, STD, seed=8)(inputs)
    assert not torch.allclose(other, out)
    # Without a seed: the global seed at construction (the runner's).
    torch.manual_seed(1234)
    assert PhotometricStrongView(MEAN, STD).seed == 1234


def test_strong_view_half_precision_and_no_grad():
    inputs = _normalise(torch.rand(2, 3, 8, 8)).requires_grad_()
    view = PhotometricStrongView(MEAN, STD, seed=0)
    out = view(inputs)
    assert not out.requires_grad
    assert view(inputs.detach().half()).dtype == torch.float16

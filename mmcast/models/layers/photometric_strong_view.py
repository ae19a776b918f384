# Copyright (c) mmcast contributors. All rights reserved.
"""Pixel-aligned photometric strong view of CAST's pixel-wise contrast,
and its config completed from the model's data preprocessor."""
import numbers
from typing import Mapping, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmengine.dist import get_dist_info
from torch import Tensor

# ITU-R 601-2 luma weights, as torchvision's rgb_to_grayscale.
_GRAY_WEIGHTS = (0.2989, 0.587, 0.114)
# Columns of the per-image random table drawn at each call.
_JITTER, _FACTORS, _ORDER, _GRAY, _BLUR, _SIGMA = 0, 1, 5, 9, 10, 11
_NUM_RANDOM = 12


def _grayscale(x: Tensor) -> Tensor:
    """(n, 3, H, W) RGB in [0, 1] -> (n, 1, H, W) luma."""
    r, g, b = x.unbind(dim=1)
    return (_GRAY_WEIGHTS[0] * r + _GRAY_WEIGHTS[1] * g +
            _GRAY_WEIGHTS[2] * b).unsqueeze(1)


def _blend(x: Tensor, other: Tensor, factor: Tensor) -> Tensor:
    """``factor * x + (1 - factor) * other`` clipped to [0, 1]; ``factor``
    is (n, ), ``other`` broadcasts to ``x``."""
    factor = factor.view(-1, 1, 1, 1)
    return (factor * x + (1 - factor) * other).clamp_(0, 1)


def _adjust_brightness(x: Tensor, factor: Tensor) -> Tensor:
    return _blend(x, torch.zeros_like(x[:, :1]), factor)


def _adjust_contrast(x: Tensor, factor: Tensor) -> Tensor:
    return _blend(x, _grayscale(x).mean(dim=(1, 2, 3), keepdim=True), factor)


def _adjust_saturation(x: Tensor, factor: Tensor) -> Tensor:
    return _blend(x, _grayscale(x), factor)


def _adjust_hue(x: Tensor, shift: Tensor) -> Tensor:
    """Rotate the hue of (n, 3, H, W) RGB by ``shift`` (n, ) turns."""
    max_c, _ = x.max(dim=1)
    min_c, _ = x.min(dim=1)
    chroma = max_c - min_c
    grey = chroma == 0
    safe_chroma = torch.where(grey, torch.ones_like(chroma), chroma)
    sat = chroma / torch.where(grey, torch.ones_like(max_c), max_c)
    r, g, b = x.unbind(dim=1)
    rc, gc, bc = ((max_c - c) / safe_chroma for c in (r, g, b))
    is_r = max_c == r
    is_g = (max_c == g) & ~is_r
    is_b = ~is_r & ~is_g
    hue = is_r * (bc - gc) + is_g * (2.0 + rc - bc) + is_b * (4.0 + gc - rc)
    hue = torch.fmod(hue / 6.0 + 1.0, 1.0)
    hue = torch.remainder(hue + shift.view(-1, 1, 1), 1.0)
    # HSV -> RGB: c_n = v - v * s * clip(min(k, 4 - k), 0, 1),
    # k = (n + 6 * hue) mod 6 with n = 5, 3, 1 for R, G, B.
    # (made on the device: a host list would be copied every call)
    n = torch.arange(5.0, 0.0, -2.0, device=x.device).view(1, 3, 1, 1)
    k = torch.remainder(n + 6.0 * hue.unsqueeze(1), 6.0)
    ramp = torch.minimum(k, 4.0 - k).clamp_(0, 1)
    return max_c.unsqueeze(1) * (1 - sat.unsqueeze(1) * ramp)


_JITTER_OPS = (_adjust_brightness, _adjust_contrast, _adjust_saturation,
               _adjust_hue)


def _gaussian_blur(x: Tensor, sigma: Tensor, kernel_size: int) -> Tensor:
    """Separable Gaussian blur of (n, 3, H, W) with per-image ``sigma`` (n, )
    and reflect padding, as torchvision's gaussian_blur."""
    num, channels, height, width = x.shape
    half = (kernel_size - 1) / 2
    grid = torch.linspace(-half, half, kernel_size, device=x.device)
    kernel = torch.exp(-0.5 * (grid[None] / sigma[:, None])**2)
    kernel = (kernel / kernel.sum(dim=1, keepdim=True)).repeat_interleave(
        channels, dim=0)  # (n * 3, kernel_size)
    pad = kernel_size // 2
    mode = 'reflect' if min(height, width) > pad else 'replicate'
    out = F.pad(
        x.reshape(1, num * channels, height, width), (pad, ) * 4, mode=mode)
    out = F.conv2d(out, kernel[:, None, None, :], groups=num * channels)
    out = F.conv2d(out, kernel[:, None, :, None], groups=num * channels)
    return out.view(num, channels, height, width)


@MODELS.register_module()
class PhotometricStrongView(nn.Module):
    """Photometric-only strong view of a normalised image batch.

    Pixels stay aligned: no flip, crop or any other geometric change. The
    batch (normalised by the data preprocessor, RGB) is un-normalised to
    [0, 1], augmented per image with independent random parameters and
    normalised again:

    1. with probability ``jitter_prob``: ColorJitter(brightness, contrast,
       saturation, hue) with the four adjustments in a random order per
       image, as torchvision's ColorJitter;
    2. with probability ``gray_prob``: grayscale (3 equal channels);
    3. with probability ``blur_prob``: Gaussian blur, ``kernel_size``,
       sigma uniform in ``sigma_range``, reflect padding.

    Random numbers: each call draws a (B, 12) table of uniforms on the
    inputs' device. Row b comes from its own generator seeded from
    ``(seed, call, g)``, where ``call`` counts this module's calls and
    ``g = rank * B + b`` is the image's place in the global batch: the
    processes of a distributed run draw different views even when they
    share ``seed`` (MMEngine's default ``diff_rank_seed=False``), image g
    gets the same parameters however the global batch is split, and
    ``(seed, call)`` (:meth:`rng_state`) is all a checkpoint needs to
    continue the draws exactly. ``seed`` defaults to ``torch.initial_seed()``
    at construction, i.e. the seed MMEngine's runner set before building
    the model. The augmentation applies every adjustment to the whole
    batch and selects per image with ``torch.where``: a call makes no
    host-device copy and no data-dependent synchronisation. The forward
    pass runs without gradient.

    Args:
        mean (Sequence[float]): Per-channel mean (0-255 scale, RGB) used by
            the data preprocessor.
        std (Sequence[float]): Per-channel std (0-255 scale, RGB).
        brightness (float): Brightness factor in [1 - b, 1 + b] (clipped at
            0). Defaults to 0.4.
        contrast (float): Contrast factor range, as brightness. Defaults to
            0.4.
        saturation (float): Saturation factor range, as brightness.
            Defaults to 0.4.
        hue (float): Hue shift in [-hue, hue] turns. Defaults to 0.1.
        jitter_prob (float): Probability of the colour jitter. Defaults to
            0.8.
        gray_prob (float): Probability of grayscale. Defaults to 0.2.
        blur_prob (float): Probability of the blur. Defaults to 0.5.
        kernel_size (int): Odd blur kernel size. Defaults to 5.
        sigma_range (Sequence[float]): Blur sigma range. Defaults to
            (0.1, 2.0).
        seed (int, optional): Base seed of the draws, in [0, 2**64).
    """

    def __init__(self,
                 mean: Sequence[float],
                 std: Sequence[float],
                 brightness: float = 0.4,
                 contrast: float = 0.4,
                 saturation: float = 0.4,
                 hue: float = 0.1,
                 jitter_prob: float = 0.8,
                 gray_prob: float = 0.2,
                 blur_prob: float = 0.5,
                 kernel_size: int = 5,
                 sigma_range: Sequence[float] = (0.1, 2.0),
                 seed: Optional[int] = None) -> None:
        super().__init__()
        if len(mean) != 3 or len(std) != 3:
            raise ValueError('mean and std need 3 (RGB) values')
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(
                f'kernel_size must be odd and positive, got {kernel_size}')
        if not 0 <= hue <= 0.5:
            raise ValueError(f'hue must be in [0, 0.5], got {hue}')
        if seed is not None and (not isinstance(seed, numbers.Integral)
                                 or isinstance(seed, bool)
                                 or not 0 <= seed < 2**64):
            raise ValueError(
                f'seed must be an integer in [0, 2**64), got {seed!r}')
        self.register_buffer(
            'mean',
            torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1),
            persistent=False)
        self.register_buffer(
            'std',
            torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1),
            persistent=False)
        self.factor_ranges = tuple(
            (max(0.0, 1 - v), 1 + v)
            for v in (brightness, contrast, saturation)) + ((-hue, hue), )
        self.jitter_prob = jitter_prob
        self.gray_prob = gray_prob
        self.blur_prob = blur_prob
        self.kernel_size = kernel_size
        self.sigma_range = tuple(sigma_range)
        self.seed = torch.initial_seed() if seed is None else int(seed)
        self.num_calls = 0

    def extra_repr(self) -> str:
        return (f'factor_ranges={self.factor_ranges}, '
                f'jitter_prob={self.jitter_prob}, gray_prob={self.gray_prob}, '
                f'blur_prob={self.blur_prob}, kernel_size={self.kernel_size}, '
                f'sigma_range={self.sigma_range}, seed={self.seed}')

    def rng_state(self) -> Tensor:
        """Where the draws stand: (2, ) int64 ``[seed, num_calls]`` (the
        seed's 64 bits read as a signed integer), a tensor so that it can
        sit in a ``state_dict`` (MMEngine broadcasts those as tensors)."""
        seed = self.seed - 2**64 if self.seed >= 2**63 else self.seed
        return torch.tensor([seed, self.num_calls], dtype=torch.int64)

    def load_rng_state(self, state: Tensor) -> None:
        """Continue the draws of a :meth:`rng_state`."""
        seed, num_calls = (int(v) for v in state.reshape(-1).tolist())
        self.seed = seed % 2**64
        self.num_calls = num_calls

    @torch.no_grad()
    def forward(self, inputs: Tensor) -> Tensor:
        """Make the strong view.

        The augmentation is computed in float32 with autocast disabled
        (under mixed precision the blur's convolutions would otherwise run
        in fp16/bf16), whatever the input's dtype.

        Args:
            inputs (Tensor): (B, 3, H, W) normalised RGB images.

        Returns:
            Tensor: (B, 3, H, W) normalised strong view, same dtype.
        """
        rand = self.draw(inputs.size(0), inputs.device)
        with torch.autocast(inputs.device.type, enabled=False):
            return self.augment(inputs.float(), rand).to(inputs.dtype)

    def draw(self, batch_size: int, device: torch.device) -> Tensor:
        """The next call's (B, 12) table of uniforms, on ``device``."""
        rank, _ = get_dist_info()
        rows = []
        for b in range(batch_size):
            entropy = (self.seed, self.num_calls, rank * batch_size + b)
            seed = int(np.random.SeedSequence(entropy).generate_state(
                1, np.uint64)[0])
            gen = torch.Generator(device=device).manual_seed(seed)
            rows.append(
                torch.rand(_NUM_RANDOM, generator=gen, device=device))
        self.num_calls += 1
        return torch.stack(rows)

    def augment(self, inputs: Tensor, rand: Tensor) -> Tensor:
        """The strong view of float32 (B, 3, H, W) normalised images with
        the parameters of the (B, 12) table ``rand``."""
        x = (inputs * self.std + self.mean).div_(255).clamp_(0, 1)

        def where(chosen: Tensor, new: Tensor, old: Tensor) -> Tensor:
            return torch.where(chosen.view(-1, 1, 1, 1), new, old)

        jitter = rand[:, _JITTER] < self.jitter_prob
        factors = torch.stack([
            low + (high - low) * rand[:, _FACTORS + i]
            for i, (low, high) in enumerate(self.factor_ranges)
        ],
                              dim=1)  # (B, 4)
        order = rand[:, _ORDER:_ORDER + 4].argsort(dim=1)  # (B, 4)
        for step in range(4):
            for op_id, op in enumerate(_JITTER_OPS):
                x = where(jitter & (order[:, step] == op_id),
                          op(x, factors[:, op_id]), x)

        x = where(rand[:, _GRAY] < self.gray_prob,
                  _grayscale(x).expand(-1, 3, -1, -1), x)

        low, high = self.sigma_range
        sigma = low + (high - low) * rand[:, _SIGMA]
        x = where(rand[:, _BLUR] < self.blur_prob,
                  _gaussian_blur(x, sigma, self.kernel_size), x)

        return (x * 255 - self.mean) / self.std


def complete_strong_view_cfg(cfg: Mapping,
                             data_preprocessor: nn.Module) -> dict:
    """A strong-view config whose ``mean``/``std`` default to the data
    preprocessor's: the view un-normalises what that preprocessor
    normalised.

    Args:
        cfg (Mapping): The view's config (``type`` and arguments), left
            unchanged.
        data_preprocessor (nn.Module): A normalising preprocessor (e.g.
            ``DetDataPreprocessor``) whose ``mean`` and ``std`` buffers hold
            3 values (0-255 scale, RGB), of any shape.

    Returns:
        dict: A copy of ``cfg`` with ``mean`` and ``std`` (lists of 3
        floats) where it had none.
    """
    cfg = dict(cfg)
    cfg.setdefault('mean', data_preprocessor.mean.flatten().tolist())
    cfg.setdefault('std', data_preprocessor.std.flatten().tolist())
    return cfg

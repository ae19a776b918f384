# Copyright (c) mmcast contributors. All rights reserved.
"""In-batch CutMix-style paste of square patches (SwinMTL augmentation)."""
from typing import List, Tuple

import torch
from torch import Tensor, nn

from mmseg.registry import MODELS
from mmseg.utils import SampleList

#: The per-pixel ground truths moved with the image.
PIXEL_FIELDS: Tuple[str, ...] = ('gt_sem_seg', 'gt_depth_map')


@MODELS.register_module()
class CutMixPatches(nn.Module):
    """Paste square patches between the images of a batch.

    Every image of the batch, with probability ``prob``, receives 1 to 4
    (``num_patches``) square patches; each patch has a random side of
    ``patch_ratio`` times the shorter image side and a random position, and
    comes from the same position of another random image of the batch. The
    image, ``gt_sem_seg`` and ``gt_depth_map`` are pasted alike, from the
    batch as it was before any paste. A batch of one image, or ``prob=0``,
    is left as it is.

    A batch augmentation of :class:`MultiTaskSegDataPreProcessor`, which
    calls it on the padded, normalised batch in training only.

    Args:
        prob (float): Probability that an image receives patches.
            Defaults to 0.5.
        num_patches (tuple[int, int]): Least and most patches per image.
            Defaults to (1, 4).
        patch_ratio (tuple[float, float]): Least and most patch side over the
            shorter image side, in (0, 1]. Defaults to (0.1, 0.3).
    """

    def __init__(self,
                 prob: float = 0.5,
                 num_patches: Tuple[int, int] = (1, 4),
                 patch_ratio: Tuple[float, float] = (0.1, 0.3)) -> None:
        super().__init__()
        if not 0 <= prob <= 1:
            raise ValueError(f'prob must be in [0, 1], got {prob!r}')
        if not (len(num_patches) == 2 and 1 <= num_patches[0] <= num_patches[1]
                and all(isinstance(n, int) for n in num_patches)):
            raise ValueError('num_patches must be integers (low, high) with '
                             f'1 <= low <= high, got {num_patches!r}')
        if not (len(patch_ratio) == 2
                and 0 < patch_ratio[0] <= patch_ratio[1] <= 1):
            raise ValueError('patch_ratio must be (low, high) with 0 < low <= '
                             f'high <= 1, got {patch_ratio!r}')
        self.prob = prob
        self.num_patches = tuple(num_patches)
        self.patch_ratio = tuple(patch_ratio)

    @staticmethod
    def _randint(low: int, high: int) -> int:
        """A random integer in ``[low, high]`` (torch's global generator)."""
        return int(torch.randint(low, high + 1, ()))

    def sample_patches(self, batch_size: int, height: int,
                       width: int) -> List[Tuple[int, int, int, int, int]]:
        """Draw the patches of a batch.

        Args:
            batch_size (int): Number of images, >= 2.
            height (int): Image height.
            width (int): Image width.

        Returns:
            list[tuple[int, int, int, int, int]]: ``(target, source, y, x,
            side)`` per patch: ``target[:, y:y + side, x:x + side]`` gets
            ``source[:, y:y + side, x:x + side]``, ``source != target``.
        """
        short = min(height, width)
        side_lo = max(1, round(self.patch_ratio[0] * short))
        side_hi = max(side_lo, round(self.patch_ratio[1] * short))
        patches = []
        for target in range(batch_size):
            if float(torch.rand(())) >= self.prob:
                continue
            for _ in range(self._randint(*self.num_patches)):
                source = self._randint(0, batch_size - 2)
                source += int(source >= target)
                side = self._randint(side_lo, side_hi)
                y = self._randint(0, height - side)
                x = self._randint(0, width - side)
                patches.append((target, source, y, x, side))
        return patches

    def forward(self, inputs: Tensor,
                data_samples: SampleList) -> Tuple[Tensor, SampleList]:
        """Paste patches into the batch.

        Args:
            inputs (Tensor): Images, ``(B, C, H, W)``.
            data_samples (list[SegDataSample]): Their samples; the
                ``gt_sem_seg`` and ``gt_depth_map`` present (``(1, H, W)``
                each) are pasted with the images.

        Returns:
            tuple[Tensor, list[SegDataSample]]: The new images ``(B, C, H,
            W)`` and the same samples with pasted ground truths.
        """
        batch_size, _, height, width = inputs.shape
        if self.prob == 0 or batch_size < 2:
            return inputs, data_samples
        fields = {}
        for name in PIXEL_FIELDS:
            present = [name in sample for sample in data_samples]
            if not any(present):
                continue
            if not all(present):
                raise ValueError(f'{type(self).__name__}: {name} is in '
                                 f'{sum(present)} of {len(present)} samples '
                                 'of the batch; it must be in all or none')
            maps = torch.stack([s.get(name).data for s in data_samples])
            if maps.shape[-2:] != inputs.shape[-2:]:
                raise ValueError(
                    f'{type(self).__name__}: {name} has size '
                    f'{tuple(maps.shape[-2:])}, the images '
                    f'{tuple(inputs.shape[-2:])}; pad them alike first')
            fields[name] = maps
        patches = self.sample_patches(batch_size, height, width)
        if not patches:
            return inputs, data_samples
        mixed = inputs.clone()
        mixed_fields = {name: maps.clone() for name, maps in fields.items()}
        for target, source, y, x, side in patches:
            window = (slice(None), slice(y, y + side), slice(x, x + side))
            mixed[target][window] = inputs[source][window]
            for name, maps in fields.items():
                mixed_fields[name][target][window] = maps[source][window]
        for name, maps in mixed_fields.items():
            for sample, new in zip(data_samples, maps):
                sample.get(name).data = new
        return mixed, data_samples

# Copyright (c) mmcast contributors. All rights reserved.
"""Random gamma correction of the image."""
from typing import Tuple

import numpy as np
from mmcv.transforms import BaseTransform

from mmseg.registry import TRANSFORMS


@TRANSFORMS.register_module()
class RandomGamma(BaseTransform):
    """Gamma-correct the image with a random gamma.

    ``img = 255 * (img / 255) ** gamma`` with ``gamma`` drawn uniformly from
    ``gamma_range``, with probability ``prob`` (the convention of
    albumentations' ``RandomGamma``; mmseg's ``AdjustGamma`` has one fixed
    gamma). Only the image changes, so depth and labels need nothing.

    Required Keys:

    - img (np.ndarray): uint8 or float, values in [0, 255].

    Modified Keys:

    - img (same dtype)

    Args:
        gamma_range (tuple[float, float]): Range of gamma, ``0 < low <=
            high``. Defaults to (0.8, 1.2).
        prob (float): Probability to apply it. Defaults to 0.5.
    """

    def __init__(self,
                 gamma_range: Tuple[float, float] = (0.8, 1.2),
                 prob: float = 0.5) -> None:
        super().__init__()
        low, high = gamma_range
        if not 0 < low <= high:
            raise ValueError(f'gamma_range must be (low, high) with 0 < low '
                             f'<= high, got {gamma_range!r}')
        if not 0 <= prob <= 1:
            raise ValueError(f'prob must be in [0, 1], got {prob!r}')
        self.gamma_range = (float(low), float(high))
        self.prob = prob

    def transform(self, results: dict) -> dict:
        """Apply a random gamma to ``results['img']``.

        Args:
            results (dict): Result dict with ``img``.

        Returns:
            dict: ``results`` with the corrected ``img``.
        """
        if np.random.rand() >= self.prob:
            return results
        gamma = np.random.uniform(*self.gamma_range)
        img = results['img']
        if img.dtype == np.uint8:
            table = np.rint(255.0 * (np.arange(256) / 255.0)**gamma)
            results['img'] = table.astype(np.uint8)[img]
        else:
            results['img'] = (255.0 * (np.clip(img, 0, 255) / 255.0)**
                              gamma).astype(img.dtype)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(gamma_range={self.gamma_range}, '
                f'prob={self.prob})')

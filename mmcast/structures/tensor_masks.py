# Copyright (c) mmcast contributors. All rights reserved.
"""Instance masks kept as a device tensor, for pseudo-labels made in a step."""
from typing import Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor


class TensorMasks:
    """The part of MMDet's ``BitmapMasks`` API that Mask2Former's loss uses.

    Teacher predictions are bool tensors on the device; ``BitmapMasks``
    would need a device→host round trip per step. Mask2Former's target
    preprocessing only calls ``to_tensor``, ``len`` and indexing.

    Args:
        masks (Tensor): (N, H, W) masks, already in the student's padded
            input frame.
    """

    def __init__(self, masks: Tensor) -> None:
        if masks.ndim != 3:
            raise ValueError(f'TensorMasks expects (N, H, W), got {tuple(masks.shape)}')
        self.masks = masks.bool()

    @property
    def height(self) -> int:
        return self.masks.shape[1]

    @property
    def width(self) -> int:
        return self.masks.shape[2]

    def __len__(self) -> int:
        return self.masks.shape[0]

    def __getitem__(self, index: Union[int, slice, Tensor, np.ndarray]) -> 'TensorMasks':
        if isinstance(index, int):
            return TensorMasks(self.masks[index:index + 1])
        return TensorMasks(self.masks[torch.as_tensor(index)] if isinstance(
            index, np.ndarray) else self.masks[index])

    def pad(self, out_shape: Tuple[int, int], pad_val: int = 0) -> 'TensorMasks':
        """Pad bottom/right to ``out_shape`` (h, w), like ``BitmapMasks.pad``."""
        padded = self.masks.new_full((len(self), *out_shape), bool(pad_val))
        padded[:, :self.height, :self.width] = self.masks
        return TensorMasks(padded)

    def to_tensor(self,
                  dtype: torch.dtype,
                  device: Optional[Union[str, torch.device]] = None) -> Tensor:
        """The masks as a tensor of ``dtype`` on ``device``."""
        return self.masks.to(dtype=dtype, device=device or self.masks.device)

# Copyright (c) mmcast contributors. All rights reserved.
"""MMDetection's Swin windows merged back without a float batch size, for
the static predict (:mod:`mmcast.deploy.static_predict`).

``ShiftWindowMSA.window_reverse`` computes the batch size as
``int(windows.shape[0] / (H * W / window_size / window_size))``: a float
division of the batch size, which ``torch.export`` can only specialise, so
the Swin-L teacher's predict exports at one batch size alone.
:class:`StaticShiftWindowMSA` lets ``view`` infer it, the same tensor.
:func:`use_static_swin` switches a model's modules in place.
"""
from mmdet.models.backbones.swin import ShiftWindowMSA
from torch import Tensor, nn

from mmcast.utils.module_switch import switch_modules


class StaticShiftWindowMSA(ShiftWindowMSA):
    """``ShiftWindowMSA`` whose windows are merged back with the batch size
    left to ``view``."""

    def window_reverse(self, windows: Tensor, H: int, W: int) -> Tensor:
        """(B × n_windows, w, w, C) windows → the (B, H, W, C) map."""
        size, channels = self.window_size, windows.shape[-1]
        x = windows.view(-1, H // size, W // size, size, size, channels)
        return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(
            -1, H, W, channels)


def use_static_swin(model: nn.Module) -> int:
    """Switch every ``ShiftWindowMSA`` of ``model`` (in place, same
    parameters) to :class:`StaticShiftWindowMSA`.

    Returns:
        int: The number of modules switched.
    """
    return len(switch_modules(model, ShiftWindowMSA, StaticShiftWindowMSA))

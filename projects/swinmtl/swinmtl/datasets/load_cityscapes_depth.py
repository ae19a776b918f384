# Copyright (c) mmcast contributors. All rights reserved.
"""Metric depth from a Cityscapes disparity map and its camera file."""
import json
from typing import Optional, Tuple

import cv2
import mmengine.fileio as fileio
import numpy as np
from mmcv.transforms import BaseTransform

from mmseg.registry import TRANSFORMS


@TRANSFORMS.register_module()
class LoadCityscapesDepth(BaseTransform):
    """Load a Cityscapes disparity map and turn it into metric depth.

    Cityscapes stores disparity as a 16-bit PNG: a pixel value ``p > 0``
    means the disparity ``d = (p - 1) / 256`` pixels, ``p = 0`` means no
    measurement. With the stereo baseline ``b`` (``extrinsic.baseline``, in
    metres) and the focal length ``fx`` (``intrinsic.fx``, in pixels) of the
    sample's ``*_camera.json``, the depth is ``b * fx / d`` metres where
    ``d > 0`` and 0 (invalid) elsewhere, ``p = 1`` (``d = 0``) included.

    As mmseg's ``LoadDepthAnnotation``, it writes ``gt_depth_map`` and adds
    it to ``seg_fields``, so that geometric transforms move it with the image
    and the labels, and ``PackSegInputs`` packs it.

    Required Keys:

    - disparity_path (str)
    - camera_path (str)
    - seg_fields (list[str])

    Added Keys:

    - gt_depth_map (np.ndarray): float32 ``(H, W)``, metres, 0 = invalid.
    - depth_rescale_factor (float): 1.0 (the map is already in metres).

    Args:
        max_depth (float, optional): Depths above it are marked invalid (0);
            a disparity of a few 1/256 px gives depths of kilometres. None
            keeps all. Defaults to None.
        backend_args (dict, optional): Arguments of the mmengine file
            backend. Defaults to None.
    """

    def __init__(self,
                 max_depth: Optional[float] = None,
                 backend_args: Optional[dict] = None) -> None:
        super().__init__()
        if max_depth is not None and not max_depth > 0:
            raise ValueError(f'max_depth must be positive, got {max_depth!r}')
        self.max_depth = max_depth
        self.backend_args = backend_args.copy() if backend_args else None

    def _get(self, path: str, what: str) -> bytes:
        try:
            return fileio.get(path, backend_args=self.backend_args)
        except OSError as err:  # FileNotFoundError, PermissionError...
            raise FileNotFoundError(
                f'cannot read the Cityscapes {what} {path}: {err}') from err

    def load_camera(self, path: str) -> Tuple[float, float]:
        """Read ``(baseline, fx)`` from a Cityscapes camera file.

        Args:
            path (str): Path of a ``*_camera.json``.

        Returns:
            tuple[float, float]: The baseline in metres and the horizontal
            focal length in pixels.
        """
        try:
            camera = json.loads(self._get(path, 'camera file'))
            baseline = float(camera['extrinsic']['baseline'])
            fx = float(camera['intrinsic']['fx'])
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(
                f'Cityscapes camera file {path} must be JSON with numbers '
                f'extrinsic.baseline and intrinsic.fx: {err!r}') from err
        if not (baseline > 0 and fx > 0):
            raise ValueError(f'Cityscapes camera file {path} has a '
                             f'non-positive baseline {baseline} or fx {fx}')
        return baseline, fx

    def load_disparity(self, path: str) -> np.ndarray:
        """Read a Cityscapes disparity PNG.

        Args:
            path (str): Path of a ``*_disparity.png``.

        Returns:
            np.ndarray: The raw 16-bit values ``p``, uint16 ``(H, W)``.
        """
        raw = np.frombuffer(self._get(path, 'disparity map'), dtype=np.uint8)
        disparity = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED)
        if disparity is None or disparity.ndim != 2 or \
                disparity.dtype != np.uint16:
            got = 'undecodable data' if disparity is None else \
                f'{disparity.dtype} {disparity.shape}'
            raise ValueError(f'Cityscapes disparity map {path} must be a '
                             f'single-channel 16-bit PNG, got {got}')
        return disparity

    def transform(self, results: dict) -> dict:
        """Compute ``gt_depth_map`` from the sample's disparity and camera.

        Args:
            results (dict): Result dict with ``disparity_path``,
                ``camera_path`` and ``seg_fields``.

        Returns:
            dict: ``results`` with ``gt_depth_map`` and
            ``depth_rescale_factor``.
        """
        baseline, fx = self.load_camera(results['camera_path'])
        raw = self.load_disparity(results['disparity_path'])
        disparity = (raw.astype(np.float64) - 1.0) / 256.0
        valid = disparity > 0  # p = 0 (no measurement) and p = 1 (d = 0)
        depth = np.zeros(raw.shape, dtype=np.float32)
        depth[valid] = baseline * fx / disparity[valid]
        if self.max_depth is not None:
            depth[depth > self.max_depth] = 0.0
        results['gt_depth_map'] = depth
        results['seg_fields'].append('gt_depth_map')
        results['depth_rescale_factor'] = 1.0
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(max_depth={self.max_depth}, '
                f'backend_args={self.backend_args})')

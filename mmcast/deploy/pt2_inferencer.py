# Copyright (c) mmcast contributors. All rights reserved.
"""Instance segmentation with a ``.pt2`` package (AOTInductor).

:class:`PT2Inferencer` runs a package written by
:func:`mmcast.deploy.export_pt2` the way :class:`.ONNXInferencer` runs an
ONNX file, with the same inputs, predictions and files
(:class:`.BaseDeployInferencer`): each image is loaded and resized as the
test pipeline did, put top-left on the package's canvas, and the package
returns the kept instances (scores, labels, masks, boxes) computed on the
device; the host only drops scores under the threshold, unpacks the masks
of the others (packed 8 pixels a byte; a package with bool masks, e.g. one
written before, is read as well), crops them to the image and resizes them
to the original shape (:func:`mmcast.deploy.finish_instances`).

A package holds compiled code: load only packages you trust, and give
``sha256`` (published beside the file) to have it checked before loading.
"""
from typing import Iterator, List, Optional, Tuple

import numpy as np
import torch
from mmdet.structures import DetDataSample

from .base_inferencer import BaseDeployInferencer, InputType
from .metadata import DeployError
from .pt2_package import load_pt2
from .static_predict import finish_instances


class PT2Inferencer(BaseDeployInferencer):
    """Run an mmcast ``.pt2`` package.

    Args:
        model_file (str): The ``.pt2`` file.
        device (str): Where the package runs (the device it was exported
            for: ``'cpu'`` or ``'cuda[:i]'``). Defaults to ``'cpu'``.
        score_thr (float): Minimum score of a kept instance (the drawing
            threshold as well). Defaults to 0.3.
        batch_size (int): Images per call. Defaults to 1.
        sha256 (str, optional): The package file's sha256, checked before
            it is loaded.

    Raises:
        FileNotFoundError: Naming a missing package.
        DeployError: Naming a package with another sha256, or without
            mmcast's metadata.
    """

    def __init__(self,
                 model_file: str,
                 device: str = 'cpu',
                 score_thr: float = 0.3,
                 batch_size: int = 1,
                 sha256: Optional[str] = None) -> None:
        self.device = torch.device(device)
        index = self.device.index if self.device.index is not None else -1
        self.package, meta = load_pt2(model_file, sha256, index)
        if meta['device'] != self.device.type:
            raise DeployError(f'{model_file}: exported for '
                              f'{meta["device"]}, asked to run on '
                              f'{self.device.type}')
        if not 1 <= batch_size <= meta['max_batch']:
            raise DeployError(f'{model_file}: batch_size must be in [1, '
                              f'{meta["max_batch"]}], got {batch_size}')
        super().__init__(model_file, meta, score_thr, batch_size)

    def pad_batch(self, images: List[np.ndarray]
                  ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Resized BGR images → the package's inputs: uint8 (B, H, W, 3)
        with each image top-left on the canvas, and their sizes (B, 2)."""
        height, width = self.meta['input_size']
        canvas = np.zeros((len(images), height, width, 3), np.uint8)
        for out, img in zip(canvas, images):
            if img.shape[0] > height or img.shape[1] > width:
                raise DeployError(
                    f'{self.model_file}: takes {height}x{width} inputs but '
                    f'an image is {img.shape[0]}x{img.shape[1]} after '
                    'resizing; export with a larger input size')
            out[:img.shape[0], :img.shape[1]] = img
        sizes = torch.tensor([img.shape[:2] for img in images])
        return (torch.from_numpy(canvas).to(self.device),
                sizes.to(self.device))

    def forward(self, images: torch.Tensor, sizes: torch.Tensor
                ) -> Tuple[torch.Tensor, ...]:
        """``scores`` (B, K), ``labels`` (B, K), ``masks`` (uint8
        (B, K, H, ceil(W / 8)) packed, or bool (B, K, H, W): the package's
        ``mask_format``), ``boxes`` (B, K, 4) on the canvas, ``left_out``
        (B, Q) (the objects the cap left out, see
        :meth:`~mmcast.deploy.StaticMask2FormerPredictor.postprocess`)."""
        with torch.no_grad():
            return tuple(self.package(images, sizes))

    def _run(self, items: List[InputType], score_thr: float
             ) -> Iterator[Tuple[InputType, np.ndarray, DetDataSample]]:
        """Each input, its loaded image and its prediction, by batches."""
        for start in range(0, len(items), self.batch_size):
            chunk = items[start:start + self.batch_size]
            originals = [self.load_image(i) for i in chunk]
            resized = [self.resize(img) for img in originals]
            images, sizes = self.pad_batch([img for img, _ in resized])
            scores, labels, masks, boxes, left_out = self.forward(
                images, sizes)
            for i, (item, ori, (img, factor)) in enumerate(
                    zip(chunk, originals, resized)):
                meta = dict(
                    ori_shape=ori.shape[:2], img_shape=img.shape[:2],
                    pad_shape=tuple(self.meta['input_size']),
                    scale_factor=factor,
                    batch_input_shape=tuple(self.meta['input_size']))
                if isinstance(item, str):
                    meta['img_path'] = item
                sample = DetDataSample(metainfo=meta)
                sample.pred_instances = finish_instances(
                    scores[i], labels[i], masks[i], img.shape[:2],
                    ori.shape[:2], score_thr, boxes[i]).cpu()
                sample.pred_instances.set_metainfo(dict(
                    max_per_image=int(scores.shape[1]),
                    num_over_cap=int((left_out[i] >= score_thr).sum())))
                yield item, ori, sample

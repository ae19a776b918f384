# Copyright (c) mmcast contributors. All rights reserved.
"""Instance segmentation with an exported student on ONNX Runtime.

:class:`ONNXInferencer` runs a model written by
:func:`mmcast.deploy.export_onnx` the way MMDetection's ``DetInferencer``
runs the PyTorch model (inputs, predictions and files of
:class:`.BaseDeployInferencer`): it pads the batch of resized images like
the data preprocessor (to a multiple of ``pad_size_divisor``, or to the
model's fixed input shape), runs the graph and post-processes its logits
with :func:`mmcast.models.seg_heads.lean_instance_results`, the function
the eager ``CASTMask2Former.predict`` uses.
"""
import os.path as osp
from typing import Any, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmdet.structures import DetDataSample

from mmcast.models.seg_heads import lean_instance_results
from .base_inferencer import BaseDeployInferencer, InputType
from .metadata import INPUT_NAME, OUTPUT_NAMES, DeployError, decode_metadata


class ONNXInferencer(BaseDeployInferencer):
    """Run an exported mmcast Mask2Former with ONNX Runtime.

    Args:
        model_file (str): The ``.onnx`` file.
        providers (list, optional): ONNX Runtime execution providers, e.g.
            ``['CUDAExecutionProvider', 'CPUExecutionProvider']`` or
            ``['TensorrtExecutionProvider', 'CUDAExecutionProvider',
            'CPUExecutionProvider']``. Defaults to CPU.
        score_thr (float): Minimum score of a kept instance (the drawing
            threshold as well). Defaults to 0.3.
        batch_size (int): Images per ONNX Runtime call. Defaults to 1.
        session_options (onnxruntime.SessionOptions, optional): Passed on.

    Raises:
        FileNotFoundError: Naming a missing model file.
        DeployError: Naming a file without mmcast's metadata.
    """

    def __init__(self,
                 model_file: str,
                 providers: Optional[Sequence[Any]] = None,
                 score_thr: float = 0.3,
                 batch_size: int = 1,
                 session_options: Any = None) -> None:
        if not osp.isfile(model_file):
            raise FileNotFoundError(f'ONNX model not found: {model_file}')
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise ImportError('ONNXInferencer needs onnxruntime (pip '
                              'install onnxruntime or onnxruntime-gpu)') from e
        try:
            self.session = ort.InferenceSession(
                model_file, sess_options=session_options,
                providers=list(providers or ['CPUExecutionProvider']))
        except Exception as e:  # noqa: BLE001 - ORT raises its own types
            raise DeployError(f'{model_file}: ONNX Runtime cannot load it '
                              f'({str(e).splitlines()[0][:300]})') from e
        meta = decode_metadata(
            self.session.get_modelmeta().custom_metadata_map, model_file)
        super().__init__(model_file, meta, score_thr, batch_size)

    def pad_batch(self, images: List[np.ndarray]) -> np.ndarray:
        """Resized BGR images → the float32 input (B, 3, H, W): padded
        bottom/right with ``pad_value`` to a multiple of
        ``pad_size_divisor`` (or to the model's fixed input shape)."""
        fixed = self.meta['input_shape']
        div = max(1, self.meta['pad_size_divisor'])
        height = max(i.shape[0] for i in images)
        width = max(i.shape[1] for i in images)
        shape = (-(-height // div) * div, -(-width // div) * div)
        if fixed:
            if height > fixed[0] or width > fixed[1]:
                raise DeployError(
                    f'{self.model_file}: takes {fixed[0]}x{fixed[1]} inputs '
                    f'but an image is {height}x{width} after resizing; '
                    'export with a larger or a dynamic input shape')
            shape = tuple(fixed)
        pad = np.asarray(self.meta['pad_value'], np.float32)
        batch = np.empty((len(images), 3, *shape), np.float32)
        batch[:] = pad[:, None, None]
        for out, img in zip(batch, images):
            out[:, :img.shape[0], :img.shape[1]] = img.transpose(2, 0, 1)
        return batch

    # ------------------------------------------------------------ predict
    def forward(self, batch: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """``cls_logits`` (B, Q, C + 1), ``mask_logits`` (B, Q, h, w)."""
        cls_logits, mask_logits = self.session.run(
            list(OUTPUT_NAMES), {INPUT_NAME: batch})
        return cls_logits, mask_logits

    def _run(self, items: List[InputType], score_thr: float
             ) -> Iterator[Tuple[InputType, np.ndarray, DetDataSample]]:
        """Each input, its loaded image and its prediction, by batches."""
        for start in range(0, len(items), self.batch_size):
            chunk = items[start:start + self.batch_size]
            originals = [self.load_image(i) for i in chunk]
            resized = [self.resize(img) for img in originals]
            batch = self.pad_batch([img for img, _ in resized])
            cls_logits, mask_logits = self.forward(batch)
            for i, (item, ori, (img, factor)) in enumerate(
                    zip(chunk, originals, resized)):
                meta = dict(
                    ori_shape=ori.shape[:2], img_shape=img.shape[:2],
                    pad_shape=batch.shape[2:], scale_factor=factor,
                    batch_input_shape=batch.shape[2:])
                if isinstance(item, str):
                    meta['img_path'] = item
                sample = DetDataSample(metainfo=meta)
                sample.pred_instances = lean_instance_results(
                    torch.from_numpy(cls_logits[i]),
                    torch.from_numpy(mask_logits[i]),
                    self.meta['num_things_classes'],
                    batch_input_shape=batch.shape[2:],
                    img_shape=img.shape[:2], ori_shape=ori.shape[:2],
                    max_per_image=self.meta['max_per_image'],
                    score_thr=score_thr)
                yield item, ori, sample

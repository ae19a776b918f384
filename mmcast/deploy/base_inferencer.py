# Copyright (c) mmcast contributors. All rights reserved.
"""What the inferencers of an exported student share, whatever runs it.

:class:`BaseDeployInferencer` reads its inputs as MMDetection's
``DetInferencer`` does: each image is loaded and resized as the test
pipeline did (mmcv ``imfrombytes`` / ``imrescale`` / ``imresize``, from the
settings stored with the export, see :mod:`.metadata`). Its predictions
and files have ``DetInferencer``'s format (``predictions`` with COCO RLE
masks, ``<out_dir>/vis/<image name>`` and
``<out_dir>/preds/<image stem>.json``). A subclass runs the exported graph
on batches of resized images (``_run``): :class:`.ONNXInferencer` with
ONNX Runtime, :class:`.PT2Inferencer` with an AOTInductor package.
"""
import os
import os.path as osp
import uuid
from abc import ABCMeta, abstractmethod
from typing import (Any, Dict, Iterator, List, Optional, Sequence, Tuple,
                    Union)

import cv2
import mmcv
import numpy as np
from mmdet.structures import DetDataSample
from mmdet.structures.mask import encode_mask_results

from mmcast.utils.atomic_io import atomic_dump_json, atomic_open
from .metadata import DeployError

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif',
                  '.tiff', '.webp')
InputType = Union[str, np.ndarray]
InputsType = Union[InputType, Sequence[InputType]]


class BaseDeployInferencer(metaclass=ABCMeta):
    """Inputs, outputs and drawing of an exported mmcast Mask2Former.

    Args:
        model_file (str): The exported file, for messages.
        meta (dict): Its runtime settings (:mod:`.metadata`): the classes
            and palette, the image loading and resizing.
        score_thr (float): Minimum score of a kept instance (the drawing
            threshold as well).
        batch_size (int): Images per call of the exported graph.
    """

    def __init__(self, model_file: str, meta: Dict[str, Any],
                 score_thr: float, batch_size: int) -> None:
        self.model_file = model_file
        self.meta = meta
        self.score_thr = float(score_thr)
        self.batch_size = int(batch_size)
        self.dataset_meta = dict(classes=tuple(meta['classes']))
        if meta.get('palette'):
            self.dataset_meta['palette'] = [tuple(c) for c in meta['palette']]
        self._visualizer = None

    # ------------------------------------------------------------ inputs
    def list_inputs(self, inputs: InputsType) -> List[InputType]:
        """Paths and arrays, alone or in a list; a directory stands for its
        images (sorted by name)."""
        items = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        listed = []
        for item in items:
            if not (isinstance(item, str) and osp.isdir(item)):
                listed.append(item)
                continue
            names = sorted(f for f in os.listdir(item)
                           if f.lower().endswith(IMG_EXTENSIONS))
            if not names:
                raise DeployError(
                    f'{item}: no image in this directory (looked for '
                    f'{", ".join(IMG_EXTENSIONS)})')
            listed += [osp.join(item, f) for f in names]
        return listed

    def load_image(self, image: InputType) -> np.ndarray:
        """An image path as the pipeline's ``LoadImageFromFile`` reads it
        (BGR uint8); an array is taken as such (BGR, like DetInferencer)."""
        if isinstance(image, np.ndarray):
            img = image
        elif isinstance(image, str):
            if not osp.isfile(image):
                raise FileNotFoundError(f'image not found: {image}')
            load = self.meta['load_image']
            with open(image, 'rb') as f:
                img = mmcv.imfrombytes(f.read(), flag=load['color_type'],
                                       backend=load['imdecode_backend'])
            if img is None:
                raise DeployError(f'{image}: not a readable image')
        else:
            raise DeployError(f'unsupported input {type(image).__name__}: '
                              'pass a path, a directory or an array')
        if img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        return img

    def resize(self, img: np.ndarray) -> Tuple[np.ndarray, Tuple]:
        """Resize as the test pipeline's ``Resize``; also the (w, h) scale
        factor."""
        resize = self.meta['resize']
        if not resize:
            return img, (1., 1.)
        h, w = img.shape[:2]
        scale = resize['scale'] or (
            int(w * float(resize['scale_factor'][0]) + 0.5),
            int(h * float(resize['scale_factor'][1]) + 0.5))
        kwargs = dict(interpolation=resize['interpolation'],
                      backend=resize['backend'])
        if resize['keep_ratio']:
            out = mmcv.imrescale(img, tuple(scale), **kwargs)
        else:
            out = mmcv.imresize(img, tuple(scale), **kwargs)
        return out, (out.shape[1] / w, out.shape[0] / h)

    # ------------------------------------------------------------ predict
    @abstractmethod
    def _run(self, items: List[InputType], score_thr: float
             ) -> Iterator[Tuple[InputType, np.ndarray, DetDataSample]]:
        """Each input, its loaded image and its prediction, by batches."""

    def predict(self,
                inputs: InputsType,
                score_thr: Optional[float] = None) -> List[DetDataSample]:
        """Raw predictions: a ``DetDataSample`` per image whose
        ``pred_instances`` (``scores`` (n,), ``labels`` (n,), ``bboxes``
        (n, 4), bool ``masks`` (n, H_o, W_o)) are in the original image
        shape, as ``DetInferencer(..., return_datasamples=True)`` gives.

        Args:
            inputs: A path, a directory, a BGR array or a list of those.
            score_thr (float, optional): Overrides ``self.score_thr``.
        """
        thr = self.score_thr if score_thr is None else float(score_thr)
        return [s for _, _, s in self._run(self.list_inputs(inputs), thr)]

    # ------------------------------------------------------------ outputs
    @staticmethod
    def pred2dict(sample: DetDataSample) -> Dict[str, list]:
        """``labels``, ``scores``, ``bboxes`` and COCO RLE ``masks``, as
        ``DetInferencer.pred2dict``; and the cap: ``max_per_image`` (the
        instances kept per image at most) and ``num_over_cap`` (the objects
        above the score threshold it left out; 0 when it left out none)."""
        pred = sample.pred_instances.numpy()
        masks = encode_mask_results(pred.masks)
        for mask in masks:
            if isinstance(mask['counts'], bytes):
                mask['counts'] = mask['counts'].decode()
        meta = sample.pred_instances.metainfo
        return dict(labels=pred.labels.tolist(), scores=pred.scores.tolist(),
                    bboxes=pred.bboxes.tolist(), masks=masks,
                    max_per_image=int(meta.get('max_per_image', 0)),
                    num_over_cap=int(meta.get('num_over_cap', 0)))

    @staticmethod
    def summary(results: dict, score_thr: float, out_dir: str) -> List[str]:
        """The lines a command line prints after :meth:`__call__`: images
        and instances found, and the images whose cap left out objects."""
        preds = results['predictions']
        lines = [f'{len(preds)} image(s), '
                 f'{sum(len(p["labels"]) for p in preds)} instance(s) with '
                 f'score >= {score_thr}; results in {out_dir}']
        if results['num_capped']:
            cap = max(p['max_per_image'] for p in preds)
            left_out = sum(p['num_over_cap'] for p in preds)
            lines.append(
                f'{results["num_capped"]} image(s) hit the model\'s cap of '
                f'{cap} instances per image, which left out {left_out} more '
                f'with score >= {score_thr} ("num_over_cap" in their '
                'preds/*.json): the model\'s capacity '
                '(docs/en/user_guides/deployment.md)')
        return lines

    @property
    def visualizer(self):
        """MMDetection's ``DetLocalVisualizer`` with the model's classes."""
        if self._visualizer is None:
            from mmdet.visualization import DetLocalVisualizer
            self._visualizer = DetLocalVisualizer(
                name=f'mmcast_onnx_{uuid.uuid4().hex}')
            self._visualizer.dataset_meta = self.dataset_meta
        return self._visualizer

    def visualize(self, image: np.ndarray, sample: DetDataSample,
                  name: str, pred_score_thr: float) -> np.ndarray:
        """The predictions drawn on a BGR image (returned as RGB)."""
        self.visualizer.add_datasample(
            name, image[..., ::-1].copy(), sample, draw_gt=False,
            pred_score_thr=pred_score_thr)
        return self.visualizer.get_image()

    def __call__(self,
                 inputs: InputsType,
                 out_dir: Optional[str] = None,
                 return_vis: bool = False,
                 pred_score_thr: Optional[float] = None,
                 no_save_vis: bool = False,
                 no_save_pred: bool = False,
                 return_datasamples: bool = False) -> Dict[str, list]:
        """Predict, and draw and save like ``DetInferencer.__call__``.

        Args:
            inputs: A path, a directory, a BGR array or a list of those.
            out_dir (str, optional): Writes ``vis/<image name>`` (arrays:
                ``vis/<index:08d>.jpg``) and ``preds/<image stem>.json``.
            return_vis (bool): Return the drawn images (RGB).
            pred_score_thr (float, optional): Drawing threshold; defaults
                to ``score_thr``.
            no_save_vis, no_save_pred (bool): Skip writing those files.
            return_datasamples (bool): ``predictions`` as
                ``DetDataSample`` instead of dicts.

        Returns:
            dict: ``predictions`` (a dict or sample per image),
            ``visualization`` (drawn RGB images if ``return_vis``, else
            empty) and ``num_capped`` (the images whose cap left out objects
            above the score threshold).
        """
        items = self.list_inputs(inputs)
        draw_thr = self.score_thr if pred_score_thr is None else \
            pred_score_thr
        save_vis = bool(out_dir) and not no_save_vis
        save_pred = bool(out_dir) and not no_save_pred
        results = dict(predictions=[], visualization=[], num_capped=0)
        for index, (item, image, sample) in enumerate(
                self._run(items, self.score_thr)):
            name = osp.basename(item) if isinstance(item, str) else \
                f'{index:08d}.jpg'
            pred = self.pred2dict(sample)
            if save_pred:
                atomic_dump_json(pred, osp.join(
                    out_dir, 'preds', osp.splitext(name)[0] + '.json'))
            if save_vis or return_vis:
                drawn = self.visualize(image, sample, name, draw_thr)
                if save_vis:
                    self._write_image(drawn, osp.join(out_dir, 'vis', name))
                if return_vis:
                    results['visualization'].append(drawn)
            results['predictions'].append(
                sample if return_datasamples else pred)
            results['num_capped'] += bool(pred['num_over_cap'])
        return results

    @staticmethod
    def _write_image(rgb: np.ndarray, path: str) -> None:
        """Encode by the file's extension, write atomically."""
        ok, data = cv2.imencode(osp.splitext(path)[1] or '.jpg',
                                np.ascontiguousarray(rgb[..., ::-1]))
        if not ok:
            raise DeployError(f'{path}: cannot encode an image of this type')
        with atomic_open(path, 'wb') as f:
            f.write(data.tobytes())

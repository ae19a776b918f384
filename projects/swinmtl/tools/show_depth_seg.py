# Copyright (c) mmcast contributors. All rights reserved.
"""Pictures of SwinMTL's depth and segmentation predictions.

For a config and a checkpoint, writes one PNG per image with the panels,
left to right::

    input | depth (prediction) | depth (ground truth) | segmentation
    (prediction) | segmentation (ground truth)

The ground-truth panels are there when the image comes with ground truth:
the first ``--num`` samples of the config's test (or ``--split val``) dataset
do, images given with ``--images`` (run through the config's test pipeline
without its annotation loaders) do not. Depth is coloured on a log scale
(near = bright, magma), over the 2nd to 98th percentile of the valid
ground-truth depth (of the prediction without ground truth) of that image;
invalid ground truth (no depth) is black. Classes are drawn in the dataset's
palette; ignored pixels (255) are black. Every panel is scaled to
``--panel-width`` (nearest neighbour for depth and classes). Headless
(OpenCV only). Examples::

    python projects/swinmtl/tools/show_depth_seg.py \\
        projects/swinmtl/configs/swinmtl_swinv2-tiny_toy.py \\
        work_dirs/swinmtl_swinv2-tiny_toy/iter_1000.pth \\
        --num 8 --out-dir work_dirs/swinmtl_swinv2-tiny_toy/pictures
    python projects/swinmtl/tools/show_depth_seg.py \\
        projects/swinmtl/configs/swinmtl_swinv2-b_cityscapes.py ckpt.pth \\
        --images demo/street.png --out-dir pictures
"""
import argparse
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import mmcv
import numpy as np
import torch
from mmengine.config import Config, DictAction
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint

# the repository root, from which the configs import the project's package
# (custom_imports 'projects.swinmtl.swinmtl'), wherever the tool runs from
REPO_ROOT = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

# The layout of a picture (pixels): a title strip above the panels, white
# gaps between them.
HEADER = 18
GAP = 4
# Loaders of ground truth, left out of the pipeline for --images.
GT_LOADERS = ('LoadAnnotations', 'LoadDepthAnnotation', 'LoadCityscapesDepth')
IGNORE_INDEX = 255


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='SwinMTL config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out-dir', required=True,
                        help='folder for the PNGs (<image stem>.png)')
    parser.add_argument('--images', nargs='+',
                        help='image files to predict (no ground truth); '
                        'default: --num samples of the dataset')
    parser.add_argument('--num', type=int, default=4,
                        help='number of dataset samples (first ones)')
    parser.add_argument('--split', choices=('test', 'val'), default='test',
                        help="the config's test_dataloader or val_dataloader")
    parser.add_argument('--panel-width', type=int, default=384,
                        help='every panel is scaled to this width')
    parser.add_argument('--device', default='cpu')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, xxx=yyy')
    args = parser.parse_args(argv)
    if args.num < 1:
        parser.error(f'--num must be positive, got {args.num}')
    if args.panel_width < 16:
        parser.error(f'--panel-width must be >= 16, got {args.panel_width}')
    return args


def build_model(cfg: Config, checkpoint: str, device: str) -> torch.nn.Module:
    """The config's model with the checkpoint's weights, in eval mode.

    ``dataset_meta`` (classes, palette) comes from the checkpoint when it
    has it. The backbone's ``init_cfg`` is not applied: the checkpoint holds
    all weights.
    """
    from mmseg.registry import MODELS
    model = MODELS.build(cfg.model)
    ckpt = load_checkpoint(model, checkpoint, map_location='cpu')
    model.dataset_meta = ckpt.get('meta', {}).get('dataset_meta')
    return model.to(device).eval()


def colour_depth(depth: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Colour a depth map on a log scale.

    Args:
        depth (np.ndarray): Depth in metres ``(H, W)``; values <= 0 or not
            finite are invalid.
        lo (float): Depth drawn brightest (> 0).
        hi (float): Depth drawn darkest (> ``lo``).

    Returns:
        np.ndarray: BGR uint8 ``(H, W, 3)``, invalid pixels black.
    """
    valid = np.isfinite(depth) & (depth > 0)
    log_d = np.log(np.clip(np.where(valid, depth, hi), lo, hi))
    t = (np.log(hi) - log_d) / (np.log(hi) - np.log(lo))  # near = 1
    image = cv2.applyColorMap(
        np.rint(t * 255).astype(np.uint8), cv2.COLORMAP_MAGMA)
    image[~valid] = 0
    return image


def depth_range(depth: np.ndarray) -> Tuple[float, float]:
    """The 2nd and 98th percentiles of the valid (> 0) depths of a map, a
    range of positive width; (1, 2) without any valid depth."""
    valid = depth[np.isfinite(depth) & (depth > 0)]
    if valid.size == 0:
        return 1.0, 2.0
    lo, hi = np.percentile(valid, [2, 98])
    lo = max(float(lo), 1e-6)
    return lo, max(float(hi), lo * 1.01)


def colour_labels(labels: np.ndarray,
                  palette: Sequence[Sequence[int]]) -> np.ndarray:
    """Colour a label map (RGB palette) as BGR; ignored and unknown labels
    black.

    Args:
        labels (np.ndarray): Class ids ``(H, W)``.
        palette (Sequence[Sequence[int]]): RGB colour per class.

    Returns:
        np.ndarray: BGR uint8 ``(H, W, 3)``.
    """
    table = np.zeros((256, 3), dtype=np.uint8)
    table[:len(palette)] = np.asarray(palette, dtype=np.uint8)[:, ::-1]
    table[IGNORE_INDEX] = 0
    return table[np.clip(labels, 0, 255).astype(np.int64)]


def _scaled(image: np.ndarray, width: int, nearest: bool) -> np.ndarray:
    height = max(1, round(image.shape[0] * width / image.shape[1]))
    if image.shape[:2] == (height, width):
        return image
    return cv2.resize(
        image, (width, height),
        interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)


def compose(panels: Sequence[Tuple[str, np.ndarray]]) -> np.ndarray:
    """Put equally sized BGR panels side by side under their titles.

    Panel ``i`` lies at rows ``HEADER:``, columns ``i * (W + GAP)`` to
    ``i * (W + GAP) + W``.

    Args:
        panels (Sequence[tuple[str, np.ndarray]]): ``(title, (H, W, 3))``.

    Returns:
        np.ndarray: The picture, BGR uint8 ``(HEADER + H, n W + (n - 1) GAP,
        3)``.
    """
    height, width = panels[0][1].shape[:2]
    total = len(panels) * width + (len(panels) - 1) * GAP
    picture = np.full((HEADER + height, total, 3), 255, dtype=np.uint8)
    for i, (title, panel) in enumerate(panels):
        left = i * (width + GAP)
        picture[HEADER:, left:left + width] = panel
        cv2.putText(picture, title, (left + 2, HEADER - 5),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return picture


def render(sample, palette: Sequence[Sequence[int]],
           panel_width: int) -> np.ndarray:
    """The picture of one predicted sample.

    Args:
        sample (SegDataSample): With ``pred_depth_map``, ``pred_sem_seg``
            and ``img_path``; ``gt_depth_map`` and ``gt_sem_seg`` if known.
        palette (Sequence[Sequence[int]]): RGB colour per class.
        panel_width (int): Width of every panel.

    Returns:
        np.ndarray: The BGR picture (:func:`compose`).
    """
    image = mmcv.imread(sample.img_path)  # BGR, as loaded
    pred_depth = sample.pred_depth_map.data[0].cpu().numpy()
    pred_seg = sample.pred_sem_seg.data[0].cpu().numpy()
    height, width = pred_depth.shape
    if image.shape[:2] != (height, width):
        image = cv2.resize(image, (width, height))
    gt_depth = sample.gt_depth_map.data[0].cpu().numpy() \
        if 'gt_depth_map' in sample else None
    gt_seg = sample.gt_sem_seg.data[0].cpu().numpy() \
        if 'gt_sem_seg' in sample else None
    lo, hi = depth_range(gt_depth if gt_depth is not None else pred_depth)
    panels = [('input', _scaled(image, panel_width, False)),
              ('depth', _scaled(colour_depth(pred_depth, lo, hi),
                                panel_width, True))]
    if gt_depth is not None:
        panels.append(('depth GT', _scaled(colour_depth(gt_depth, lo, hi),
                                           panel_width, True)))
    panels.append(('segmentation',
                   _scaled(colour_labels(pred_seg, palette), panel_width,
                           True)))
    if gt_seg is not None:
        panels.append(('segmentation GT',
                       _scaled(colour_labels(gt_seg, palette), panel_width,
                               True)))
    return compose(panels)


def _palette(meta: Optional[Dict], num_classes: int) -> List[List[int]]:
    """The dataset's palette, or a fixed random one of ``num_classes``."""
    if meta and meta.get('palette') and len(meta['palette']) >= num_classes:
        return [list(c) for c in meta['palette']]
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (num_classes, 3)).tolist()


def _inputs(cfg: Config, args: argparse.Namespace):
    """Yield ``(packed sample, dataset metainfo or None)`` to predict."""
    from mmseg.registry import DATASETS
    dataset_cfg = cfg[f'{args.split}_dataloader'].dataset
    if args.images:
        pipeline = Compose([
            step for step in dataset_cfg.pipeline
            if step['type'] not in GT_LOADERS
        ])
        for path in args.images:
            if not osp.isfile(path):
                raise FileNotFoundError(f'--images: no file {path}')
            yield pipeline(dict(img_path=path)), None
        return
    dataset = DATASETS.build(dataset_cfg)
    if len(dataset) == 0:
        raise ValueError(f'the {args.split} dataset of {args.config} is '
                         'empty')
    for index in range(min(args.num, len(dataset))):
        yield dataset[index], dataset.metainfo


def main(argv: Optional[List[str]] = None) -> List[str]:
    """Write the pictures; returns their paths."""
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model = build_model(cfg, args.checkpoint, args.device)
    os.makedirs(args.out_dir, exist_ok=True)
    written = []
    for packed, metainfo in _inputs(cfg, args):
        with torch.no_grad():
            sample = model.test_step(pseudo_collate([packed]))[0]
        palette = _palette(model.dataset_meta or metainfo, model.num_classes)
        picture = render(sample, palette, args.panel_width)
        stem = osp.splitext(osp.basename(sample.img_path))[0]
        path = osp.join(args.out_dir, f'{stem}.png')
        if path in written:
            path = osp.join(args.out_dir, f'{stem}_{len(written)}.png')
        if not cv2.imwrite(path, picture):
            raise OSError(f'could not write {path}')
        written.append(path)
        print(path)
    return written


if __name__ == '__main__':
    main()

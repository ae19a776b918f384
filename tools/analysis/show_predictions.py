# Copyright (c) mmcast contributors. All rights reserved.
"""Students' predictions next to the teacher's pseudo-labels and the GT.

Reads a ``tools/cast_pipeline.py`` work dir and writes one PNG: a row per
image, a panel per source, drawn with MMDetection's ``DetLocalVisualizer``:

* ``ground truth``;
* ``teacher pseudo-labels``: the offline pseudo-labels the stage-2 student
  learned from (``seed<k>/pseudo_labels/stage2.json``, or
  ``--pseudo-labels``), when the image is in them;
* one panel per student stage (default: those of the seed among the
  labels-only baseline, the CAST student after stage 3 and the Guided
  Distillation student): the stage's last checkpoint, run through
  ``mmdet.apis.inference_detector`` with the stage's own config (the copy
  in its work dir). A ``CASTDistiller`` / ``GuidedDistiller`` stage shows
  the part it predicts with (its student).

The images: with pseudo-labels, the first ``--num-images`` unlabeled train
images (D_u) that have ground-truth instances (their GT comes from the
config's ``unlabeled_pool_dataset``, all train images with annotations);
without, or with ``--split val``, validation images (no pseudo-label
panel). Images are scaled to ``--panel-width`` before drawing, so that
labels stay readable on small images. Example::

    python tools/analysis/show_predictions.py work_dirs/cast_toy --seed 0 \\
        --out work_dirs/cast_toy/figures/predictions_seed0.png
"""
import argparse
import copy
import glob
import os.path as osp
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config

from mmcast.apis.pipeline.stage_graph import stage_graph

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_STAGES = ('supervised_student', 'finetune', 'guided_distillation')
# the stage whose pseudo-labels the students learned from (its config has
# the semi-supervised datasets), and their file in a seed's folder
PSEUDO_STAGE = 'distill'
PSEUDO_LABELS = osp.join(
    'pseudo_labels', f'{stage_graph()[PSEUDO_STAGE].pseudo_labels}.json')
# The layout of the picture (pixels): a title strip above the panels, and
# white gaps between them.
HEADER = 36
GAP = 8
# (top, left, height, width) of a panel in the picture.
Box = Tuple[int, int, int, int]


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work_dir', help='the --work-dir of cast_pipeline.py')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--stages', nargs='+',
        help='stage folders whose last checkpoint predicts (default: those '
        f'present of {", ".join(DEFAULT_STAGES)})')
    parser.add_argument(
        '--pseudo-labels',
        help=f'pseudo-label json (default: seed<k>/{PSEUDO_LABELS} if any)')
    parser.add_argument('--split', choices=('auto', 'unlabeled', 'val'),
                        default='auto',
                        help='unlabeled: D_u images (needs pseudo-labels); '
                        'val: validation images; auto: unlabeled when there '
                        'are pseudo-labels')
    parser.add_argument('--num-images', type=int, default=3)
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='predictions below this score are not drawn')
    parser.add_argument('--panel-width', type=int, default=576,
                        help='images are scaled to this width')
    parser.add_argument('--data-root',
                        help='the data root, if not the configs\' one '
                        '(relative paths there are from the repository)')
    parser.add_argument('--device',
                        default='cuda:0' if torch.cuda.is_available() else 'cpu')
    parser.add_argument(
        '--out', help='the PNG (default: <work_dir>/figures/'
        'predictions_seed<k>.png)')
    return parser.parse_args(argv)


# -- what to show ---------------------------------------------------------------
def stage_config(stage_dir: str) -> str:
    """The config a stage ran with: MMEngine's copy in its work dir.

    Raises:
        FileNotFoundError: naming the folder, unless it has one ``*.py``.
    """
    configs = sorted(glob.glob(osp.join(stage_dir, '*.py')))
    if len(configs) != 1:
        raise FileNotFoundError(
            f'{stage_dir}: expected the one config MMEngine copies into a '
            f'work dir, found {len(configs)} *.py')
    return configs[0]


def stage_model_files(stage_dir: str) -> Tuple[str, str]:
    """The config a stage ran with and its last checkpoint.

    Raises:
        FileNotFoundError: naming the folder, if either is missing.
    """
    from mmcast.utils.stage_state import last_checkpoint

    config = stage_config(stage_dir)
    checkpoint = last_checkpoint(stage_dir)  # also in a copied work dir
    if checkpoint is None:
        raise FileNotFoundError(
            f'{stage_dir}: no checkpoint (last_checkpoint missing or points '
            'to a missing file); has the stage finished?')
    return config, checkpoint


def _data_root(path: str, override: Optional[str] = None) -> str:
    """A config's data root, or ``override``: relative ones are from the
    repository (the pipeline's working directory)."""
    if override is not None:
        return override
    return path if not path or osp.isabs(path) else osp.join(REPO_ROOT, path)


def dataset_cfg(cfg: Config, key: str, data_root: Optional[str],
                scale: float) -> dict:
    """A dataset of a stage config, with absolute paths and a pipeline that
    loads the image and its instances and scales both by ``scale``.

    Args:
        cfg (Config): A stage config.
        key (str): ``'val'`` (its test dataset), ``'pool'``
            (``unlabeled_pool_dataset``: all train images with GT) or
            ``'unlabeled'`` (``unlabeled_dataset``: D_u).
        data_root (str, optional): Replaces the config's data root.
        scale (float): Resize factor.
    """
    source = dict(val=cfg.test_dataloader.dataset,
                  pool=cfg.get('unlabeled_pool_dataset'),
                  unlabeled=cfg.get('unlabeled_dataset'))[key]
    if source is None:
        raise KeyError(f'{cfg.filename}: no {key}_dataset (a semi-supervised '
                       'stage config has it)')
    ds = copy.deepcopy(source)
    ds['data_root'] = _data_root(ds.get('data_root', ''), data_root)
    ds['test_mode'] = True
    ds.pop('filter_cfg', None)
    ds['pipeline'] = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
        dict(type='Resize', scale_factor=scale, keep_ratio=True),
        dict(type='PackDetInputs',
             meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                        'scale_factor')),
    ]
    return ds


def build_model(config: str, checkpoint: str, device: str,
                dataset_meta: dict):
    """A stage's model for inference: the detector that its ``predict``
    runs (the detector itself, or the student of a ``CASTDistiller`` /
    ``GuidedDistiller``), loaded by :func:`mmcast.deploy.loading.load_student`
    with the classes (and palette) of ``dataset_meta``."""
    from mmengine.model import revert_sync_batchnorm

    from mmcast.deploy.loading import load_student, student_part
    from mmcast.utils.config_reading import read_config

    cfg = read_config(config)
    cfg.model, prefix = student_part(cfg.model)
    model, _ = load_student(cfg.model, checkpoint, prefix)
    model = revert_sync_batchnorm(model)
    model.cfg = cfg  # inference_detector reads the test pipeline there
    model.dataset_meta = dict(dataset_meta)
    return model.to(device).eval()


# -- drawing ------------------------------------------------------------------
def _item_to_rgb_and_instances(item: dict):
    """An image (H, W, 3) RGB uint8 and its ``gt_instances`` (numpy masks)
    from a packed dataset item, as MMDetection's ``browse_dataset`` does."""
    from mmdet.structures.bbox import BaseBoxes
    from mmdet.structures.mask import BitmapMasks, PolygonMasks

    img = item['inputs'].permute(1, 2, 0).numpy()[..., ::-1].copy()
    sample = item['data_samples']
    inst = sample.gt_instances
    if isinstance(inst.get('bboxes'), BaseBoxes):
        inst.bboxes = inst.bboxes.tensor
    masks = inst.get('masks')
    if isinstance(masks, (BitmapMasks, PolygonMasks)):
        inst.masks = torch.from_numpy(
            masks.to_ndarray().astype(bool)).reshape(-1, *img.shape[:2])
    return img, sample


def scale_predictions(pred, size: Tuple[int, int], scale_factor) -> None:
    """Scale ``pred_instances`` (original image size) to the drawn image:
    masks (N, H, W) to ``size`` (nearest), boxes (N, 4) by ``scale_factor``
    (w, h)."""
    inst = pred.pred_instances
    if 'masks' in inst and len(inst):
        inst.masks = F.interpolate(inst.masks[None].float(), size=size,
                                   mode='nearest')[0].bool()
    elif 'masks' in inst:
        inst.masks = inst.masks.new_zeros((0, *size))
    if 'bboxes' in inst:
        sw, sh = scale_factor
        inst.bboxes = inst.bboxes * inst.bboxes.new_tensor([sw, sh, sw, sh])


def draw_panel(vis, img: np.ndarray, sample, field: str,
               score_thr: float) -> np.ndarray:
    """``img`` (H, W, 3) RGB with the instances of ``sample.<field>``
    (``gt_instances`` or ``pred_instances``) drawn by ``vis``."""
    with warnings.catch_warnings():  # boxes touching the border
        warnings.simplefilter('ignore', UserWarning)
        vis.add_datasample('panel', img, data_sample=sample.cpu(),
                           draw_gt=field == 'gt_instances',
                           draw_pred=field == 'pred_instances', show=False,
                           pred_score_thr=score_thr)
    return vis.get_image()


def compose_grid(rows: Sequence[Sequence[Optional[np.ndarray]]],
                 titles: Sequence[str]) -> Tuple[np.ndarray, List[List[Optional[Box]]]]:
    """Panels (H, W, 3) RGB on a white sheet, a title above each column.

    Args:
        rows: One list per image, one panel (or None: left blank) per
            column.
        titles: One per column.

    Returns:
        tuple: The sheet (H', W', 3) uint8 and the box of every panel.
    """
    ncols = len(titles)
    widths = [max((r[c].shape[1] for r in rows if r[c] is not None), default=0)
              for c in range(ncols)]
    heights = [max(p.shape[0] for p in r if p is not None) for r in rows]
    sheet = np.full((HEADER + sum(heights) + GAP * len(rows),
                     sum(widths) + GAP * (ncols + 1), 3), 255, np.uint8)
    lefts = [GAP + sum(widths[:c]) + GAP * c for c in range(ncols)]
    for left, width, title in zip(lefts, widths, titles):
        font_scale = 0.6
        while font_scale > 0.3 and cv2.getTextSize(
                title, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)[0][0] > width:
            font_scale -= 0.05
        cv2.putText(sheet, title, (left, HEADER - 12), cv2.FONT_HERSHEY_SIMPLEX,
                    font_scale, (0, 0, 0), 1, cv2.LINE_AA)
    boxes: List[List[Optional[Box]]] = []
    top = HEADER
    for row, height in zip(rows, heights):
        boxes.append([])
        for panel, left in zip(row, lefts):
            if panel is None:
                boxes[-1].append(None)
                continue
            h, w = panel.shape[:2]
            sheet[top:top + h, left:left + w] = panel
            boxes[-1].append((top, left, h, w))
        top += height + GAP
    return sheet, boxes


def write_png(path: str, rgb: np.ndarray) -> None:
    """Write (H, W, 3) RGB as PNG, atomically."""
    from mmcast.utils.atomic_io import atomic_open
    ok, buf = cv2.imencode('.png', np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise RuntimeError(f'cannot encode {path} as PNG')
    with atomic_open(path, 'wb') as f:
        f.write(buf.tobytes())


# -- main -------------------------------------------------------------------------
def pick_images(gt_dataset, candidates: Optional[Sequence[str]],
                num: int) -> List[int]:
    """Indices of the first ``num`` images of ``gt_dataset`` with ground
    truth instances, among ``candidates`` (image paths) if given."""
    wanted = None if candidates is None else {osp.normpath(p) for p in candidates}
    picked = []
    for i in range(len(gt_dataset)):
        info = gt_dataset.get_data_info(i)
        if wanted is not None and osp.normpath(info['img_path']) not in wanted:
            continue
        if any(not inst.get('ignore_flag', 0) for inst in info['instances']):
            picked.append(i)
            if len(picked) == num:
                break
    return picked


def main(argv: Optional[List[str]] = None) -> Dict:
    """Write the picture; return its path, the images and panel boxes."""
    from mmdet.apis import inference_detector
    from mmdet.registry import DATASETS
    from mmdet.utils import register_all_modules
    from mmdet.visualization import DetLocalVisualizer

    import mmcast  # noqa: F401  (registers mmcast modules)

    args = parse_args(argv)
    if args.num_images < 1 or args.panel_width < 1:
        raise SystemExit('--num-images and --panel-width must be positive')
    register_all_modules(init_default_scope=True)
    seed_dir = osp.join(args.work_dir, f'seed{args.seed}')
    if not osp.isdir(seed_dir):
        raise SystemExit(f'{seed_dir}: no such folder (is {args.work_dir} a '
                         'cast_pipeline.py work dir, with this --seed?)')
    stages = args.stages or [s for s in DEFAULT_STAGES
                             if osp.isdir(osp.join(seed_dir, s))]
    if not stages:
        raise SystemExit(f'{seed_dir}: none of the stages '
                         f'{", ".join(DEFAULT_STAGES)}; give --stages')
    try:
        models = {s: stage_model_files(osp.join(seed_dir, s)) for s in stages}
    except FileNotFoundError as e:
        raise SystemExit(str(e)) from e
    pseudo = args.pseudo_labels or osp.join(seed_dir, PSEUDO_LABELS)
    has_pseudo = osp.isfile(pseudo)
    if args.pseudo_labels and not has_pseudo:
        raise SystemExit(f'{pseudo}: no such pseudo-label file')
    split = args.split if args.split != 'auto' else (
        'unlabeled' if has_pseudo else 'val')
    if split == 'unlabeled' and not has_pseudo:
        raise SystemExit(f'--split unlabeled: no pseudo-labels ({pseudo})')

    # The dataset definitions: from the first config that has them (the
    # distill stage's has the semi-supervised ones).
    configs = [Config.fromfile(c) for c, _ in models.values()]
    distill_dir = osp.join(seed_dir, PSEUDO_STAGE)
    if split == 'unlabeled' and osp.isdir(distill_dir):
        configs.append(Config.fromfile(stage_config(distill_dir)))
    needed = ('unlabeled_pool_dataset', 'unlabeled_dataset') \
        if split == 'unlabeled' else ()
    cfg = next((c for c in configs if all(k in c for k in needed)), None)
    if cfg is None:
        raise SystemExit(f'no config of {", ".join(stages)} (or distill) in '
                         f'{seed_dir} defines {" and ".join(needed)}')
    gt_key = 'pool' if split == 'unlabeled' else 'val'

    def build(key: str, scale: float, ann_file: Optional[str] = None):
        ds = dataset_cfg(cfg, key, args.data_root, scale)
        if ann_file is not None:
            ds['ann_file'] = osp.abspath(ann_file)
        return DATASETS.build(ds)

    gt_dataset = build(gt_key, 1.0)
    candidates = None
    if split == 'unlabeled':
        pseudo_dataset = build('unlabeled', 1.0, pseudo)
        candidates = [pseudo_dataset.get_data_info(i)['img_path']
                      for i in range(len(pseudo_dataset))]
    picked = pick_images(gt_dataset, candidates, args.num_images)
    if not picked:
        raise SystemExit(f'no {split} image with ground truth instances '
                         f'in {gt_dataset.ann_file}')
    scale = args.panel_width / gt_dataset.get_data_info(picked[0])['width']
    gt_dataset = build(gt_key, scale)
    if split == 'unlabeled':
        pseudo_dataset = build('unlabeled', scale, pseudo)
        pseudo_index = {
            osp.normpath(pseudo_dataset.get_data_info(i)['img_path']): i
            for i in range(len(pseudo_dataset))
        }

    vis = DetLocalVisualizer(name=f'mmcast_show_predictions_{id(args)}')
    vis.dataset_meta = dict(
        classes=gt_dataset.metainfo['classes'],
        palette=gt_dataset.metainfo.get('palette') or 'random')
    titles = ['ground truth']
    if split == 'unlabeled':
        titles.append(f'teacher pseudo-labels ({osp.basename(pseudo)})')
    graph = stage_graph()
    titles += [graph[s].title if s in graph else s for s in stages]

    rows = [[] for _ in picked]
    images = []
    for r, idx in enumerate(picked):
        img, sample = _item_to_rgb_and_instances(gt_dataset[idx])
        images.append(sample.img_path)
        rows[r].append(draw_panel(vis, img, sample, 'gt_instances', 0.0))
        if split == 'unlabeled':
            _, pl_sample = _item_to_rgb_and_instances(
                pseudo_dataset[pseudo_index[osp.normpath(sample.img_path)]])
            rows[r].append(draw_panel(vis, img, pl_sample, 'gt_instances', 0.0))
    for stage in stages:
        config, checkpoint = models[stage]
        print(f'[{stage}] {checkpoint}', flush=True)
        model = build_model(config, checkpoint, args.device, vis.dataset_meta)
        for r, idx in enumerate(picked):
            img, sample = _item_to_rgb_and_instances(gt_dataset[idx])
            with torch.no_grad():
                pred = inference_detector(model, sample.img_path)
            scale_predictions(pred, img.shape[:2], sample.scale_factor)
            rows[r].append(draw_panel(vis, img, pred, 'pred_instances',
                                      args.score_thr))
        del model
    sheet, boxes = compose_grid(rows, titles)
    out = args.out or osp.join(args.work_dir, 'figures',
                               f'predictions_seed{args.seed}.png')
    write_png(out, sheet)
    print(f'{out}: {len(picked)} {split} images × {len(titles)} panels '
          f'({", ".join(titles)})', flush=True)
    for path in images:
        print(f'  {path}')
    return dict(out=out, images=images, titles=titles, boxes=boxes,
                scale=scale)


if __name__ == '__main__':
    main()

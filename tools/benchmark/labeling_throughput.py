# Copyright (c) mmcast contributors. All rights reserved.
"""Pseudo-labelling throughput for ``tools/benchmark/inference.py
--labeling``: ``label_unlabeled_set`` of a teacher on synthetic images,
at several batch sizes, side by side.

Teachers (random weights): the toy Mask2Former teacher config with
MMDetection's fusion head and with the lean one, and the tiny box-prompted
teacher (Grounding-DINO + SAM 2 at toy size, written into
``--assets-dir``). The labeller writes the same file at every batch size
(``tests/test_batched_labeling.py``); only the speed differs.
"""
import argparse
import copy
import json
import os
import os.path as osp
import time
from typing import Dict, List, Tuple

import torch
from mmengine.config import Config
from teacher_throughput import dataset_cfg

from mmdet.registry import DATASETS, MODELS
from real_size_step import CONFIG_DIR


def stock_head(model_cfg: Config) -> None:
    """MMDetection's own fusion head (``max_per_image`` within the pairs)."""
    fusion = model_cfg.panoptic_fusion_head
    fusion.type = 'MaskFormerFusionHead'
    pairs = model_cfg.panoptic_head.num_queries * fusion.num_things_classes
    model_cfg.test_cfg.max_per_image = min(model_cfg.test_cfg.max_per_image,
                                           pairs)


def _labeling_dataset(config: str, args, tmp: str) -> Tuple[dict, Config]:
    """A teacher config's test dataset on ``--labeling-images`` synthetic
    images at the first shape (written once), the image size kept."""
    import cv2
    import numpy as np
    height, width = args.shapes[0]
    ann = osp.join(tmp, 'unlabeled.json')
    cfg = Config.fromfile(osp.join(CONFIG_DIR, config))
    ds = dataset_cfg(cfg, argparse.Namespace(
        data_root=tmp, img_prefix='images/', unlabeled_ann=ann,
        num_images=args.labeling_images))
    if not osp.exists(ann):
        rng = np.random.default_rng(0)
        os.makedirs(osp.join(tmp, 'images'), exist_ok=True)
        images = []
        for i in range(args.labeling_images):
            name = f'{i:04d}.png'
            cv2.imwrite(osp.join(tmp, 'images', name),
                        rng.integers(0, 255, (height, width, 3), np.uint8))
            images.append(dict(id=i, file_name=name, height=height,
                               width=width))
        classes = DATASETS.get(ds['type']).METAINFO['classes']
        with open(ann, 'w') as f:
            json.dump(dict(images=images, annotations=[], categories=[
                dict(id=i + 1, name=n) for i, n in enumerate(classes)]), f)
    for transform in ds['pipeline']:  # keep the image size
        if transform['type'] == 'Resize':
            transform['scale'] = (width, height)
    return ds, cfg


def labeling_throughput(args, tmp: str) -> List[Dict]:
    """``label_unlabeled_set`` on synthetic images at the first shape, at
    each ``--labeling-batch-sizes``: the toy Mask2Former teacher config
    (random weights) with the stock and the lean fusion head, and the tiny
    box-prompted teacher (Grounding-DINO + SAM 2, random weights), keeping
    detections scored above ``--labeling-score-thr``."""
    from mmcast.models.teachers.frozen_teacher import build_frozen_teacher
    from mmcast.models.teachers.labeling_teacher import LabelingTeacher
    from mmcast.pseudo_labels import label_unlabeled_set
    from mmcast.toy.tiny_teachers import build_tiny_teacher_assets
    assets = build_tiny_teacher_assets(
        osp.join(args.assets_dir, 'tiny_teachers'))
    os.environ['MMCAST_TINY_TEACHERS'] = assets['root']
    rows = []
    for teacher in ('Mask2Former toy, stock head', 'Mask2Former toy, lean',
                    'box-prompted tiny (Grounding-DINO + SAM 2)'):
        boxes = teacher.startswith('box')
        ds, cfg = _labeling_dataset(
            'toy/teacher_gdino-tiny_sam2-tiny_toy.py' if boxes else
            'adapt_teacher_toy.py', args, tmp)
        model_cfg = copy.deepcopy(cfg.model)
        if teacher.endswith('stock head'):
            stock_head(model_cfg)
        torch.manual_seed(0)
        model = (build_frozen_teacher(model_cfg, assets['teacher_checkpoint'])
                 if boxes else MODELS.build(model_cfg))
        model = model.to(args.device).eval()
        for batch_size in args.labeling_batch_sizes:
            out_file = osp.join(tmp, f'pseudo_{len(rows)}.json')
            if args.device.startswith('cuda'):
                torch.cuda.synchronize()
            start = time.perf_counter()
            with LabelingTeacher(model).labeling(
                    args.labeling_score_thr) as labeling:  # as the job labels
                label_unlabeled_set(
                    labeling, ds, out_file, batch_size=batch_size, rank=0,
                    world_size=1,
                    filter_cfg=dict(score_thr=args.labeling_score_thr),
                    progress=False)
            if args.device.startswith('cuda'):
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
            with open(out_file, encoding='utf-8') as f:
                num_labels = len(json.load(f)['annotations'])
            rows.append(dict(
                teacher=teacher, batch=batch_size,
                images_per_s=args.labeling_images / seconds,
                pseudo_labels_per_image=num_labels / args.labeling_images))
    return rows

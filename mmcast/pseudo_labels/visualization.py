# Copyright (c) mmcast contributors. All rights reserved.
"""Overlay images of pseudo-labels (people like looking at them)."""
import os
import os.path as osp
import warnings
from typing import List, Optional

import mmcv
import numpy as np
import pycocotools.mask as mask_util
import torch
from mmengine.structures import InstanceData


def save_pseudo_label_overlays(pseudo_label_file: str,
                               img_root: str,
                               out_dir: str,
                               num_images: int = 4,
                               classes: Optional[List[str]] = None,
                               palette: Optional[list] = None) -> List[str]:
    """Draw the pseudo-labels of the first ``num_images`` images.

    Args:
        pseudo_label_file (str): The pseudo-label COCO json.
        img_root (str): Folder the json's ``file_name`` s are relative to.
        out_dir (str): Where the PNGs go (created).
        num_images (int): How many images (skipped ones are passed over).
        classes (list[str], optional): Class names in label order; default
            the json's category names.
        palette (list, optional): One RGB tuple per class.

    Returns:
        list[str]: The files written.
    """
    from mmdet.structures import DetDataSample
    from mmdet.visualization import DetLocalVisualizer
    from pycocotools.coco import COCO

    if num_images <= 0:
        return []
    coco = COCO(pseudo_label_file)
    cats = coco.loadCats(coco.getCatIds())
    if classes is None:
        classes = [c['name'] for c in cats]
    name_to_label = {n: i for i, n in enumerate(classes)}
    cat_to_label = {c['id']: name_to_label.get(c['name'], i)
                    for i, c in enumerate(cats)}
    if palette is None or len(palette) < len(classes):
        palette = 'random'
    vis = DetLocalVisualizer(name=f'mmcast_pseudo_label_vis_{id(coco)}')
    vis.dataset_meta = dict(classes=tuple(classes), palette=palette)
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for img_id in coco.getImgIds():
        if len(written) >= num_images:
            break
        info = coco.loadImgs([img_id])[0]
        if info.get('mmcast_skipped'):
            continue
        path = osp.join(img_root, info['file_name'])
        try:
            img = mmcv.imread(path, channel_order='rgb')
        except Exception:  # noqa: BLE001
            img = None
        if img is None:
            continue
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[img_id]))
        h, w = img.shape[:2]
        inst = InstanceData()
        if anns:
            masks = np.stack([mask_util.decode(a['segmentation'])
                              for a in anns]).astype(bool)
            boxes = np.array([[a['bbox'][0], a['bbox'][1],
                               a['bbox'][0] + a['bbox'][2],
                               a['bbox'][1] + a['bbox'][3]] for a in anns],
                             dtype=np.float32)
        else:
            masks = np.zeros((0, h, w), bool)
            boxes = np.zeros((0, 4), np.float32)
        inst.masks = torch.from_numpy(masks)
        inst.bboxes = torch.from_numpy(boxes)
        inst.labels = torch.tensor(
            [cat_to_label[a['category_id']] for a in anns], dtype=torch.long)
        inst.scores = torch.tensor([a.get('score', 1.0) for a in anns],
                                   dtype=torch.float32)
        sample = DetDataSample()
        sample.pred_instances = inst
        out_file = osp.join(
            out_dir, osp.splitext(osp.basename(info['file_name']))[0] + '.png')
        with warnings.catch_warnings():  # boxes touching the border
            warnings.simplefilter('ignore', UserWarning)
            vis.add_datasample(
                osp.basename(path), img, data_sample=sample, draw_gt=False,
                show=False, pred_score_thr=0.0, out_file=out_file)
        written.append(out_file)
    return written

# Copyright (c) mmcast contributors. All rights reserved.
"""The unlabeled set as the labeller reads it: built from a config, images
that fail to load skipped (and counted), and the checks that refuse a set
with too many unreadable images."""
import copy
import json
import os.path as osp
from typing import List, Optional, Sequence, Tuple, Union

from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope
from torch.utils.data import Dataset

DEFAULT_MAX_UNREADABLE = 0.05


class UnreadableImagesError(RuntimeError):
    """More images of the unlabeled set cannot be read than allowed."""


def check_unreadable(unreadable: Sequence[str], num_images: int,
                     max_unreadable: Optional[float], folder: str,
                     ann_file: str) -> None:
    """Raise when more than ``max_unreadable`` of the images are unreadable.

    Args:
        unreadable (Sequence[str]): The paths that cannot be read.
        num_images (int): The number of images of the set.
        max_unreadable (float, optional): The fraction allowed (skipped and
            counted); ``None`` allows any number.
        folder (str): The image folder, for the message.
        ann_file (str): The annotation file listing the images.

    Raises:
        UnreadableImagesError: naming the folder and the first such file.
    """
    if max_unreadable is None or not unreadable or \
            len(unreadable) <= max_unreadable * num_images:
        return
    raise UnreadableImagesError(
        f'{len(unreadable)} of {num_images} images listed in {ann_file} '
        f'cannot be read (more than {max_unreadable:.0%}), e.g. '
        f'{unreadable[0]}: is {folder} the image folder of that annotation '
        'file? No pseudo-labels were written')


def build_labeling_dataset(dataset: Union[dict, Dataset]):
    """A test-mode MMDet dataset from a config (or the dataset itself)."""
    if not isinstance(dataset, dict):
        if hasattr(dataset, 'full_init'):
            dataset.full_init()
        return dataset
    from mmdet.registry import DATASETS
    cfg = copy.deepcopy(dict(dataset))
    cfg['test_mode'] = True
    # one pass, images only: skip mmengine's serialisation (and its
    # gc.collect(), slow in a process that imported the whole stack)
    cfg.setdefault('serialize_data', False)
    scope = None if DefaultScope.get_current_instance() is not None \
        else 'mmdet'
    with DefaultScope.overwrite_default_scope(scope):
        ds = DATASETS.build(cfg)
    if hasattr(ds, 'full_init'):
        ds.full_init()
    return ds


class SafeLoadDataset(Dataset):
    """The pipeline of ``dataset[idx]`` for the ``indices`` to label; a
    failure becomes a record (``idx``, ``error``) instead of ``data``.

    ``cv2``/``mmcv`` errors on a corrupt or missing image would otherwise
    kill the whole labeling run (and, with workers, the DataLoader).
    """

    def __init__(self, dataset, indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict:
        idx = self.indices[i]
        try:
            if hasattr(self.dataset, 'prepare_data'):
                data = self.dataset.prepare_data(idx)
            else:
                data = self.dataset[idx]
            if data is None:
                raise RuntimeError('the test pipeline returned None')
            return dict(idx=idx, data=data)
        except Exception as e:  # noqa: BLE001 - any load error skips it
            return dict(idx=idx, error=f'{type(e).__name__}: {e}')


def collate_labeling_batch(batch: List[dict]) -> dict:
    """A batch of :class:`SafeLoadDataset` items: ``indices`` and ``data``
    (``pseudo_collate``, ``None`` when none loaded) of the images that
    loaded, ``failed`` ``(index, error)`` of those that did not."""
    ok = [b for b in batch if 'data' in b]
    return dict(
        indices=[b['idx'] for b in ok],
        data=pseudo_collate([b['data'] for b in ok]) if ok else None,
        failed=[(b['idx'], b['error']) for b in batch if 'error' in b])


def image_table(dataset) -> Tuple[list, list]:
    """Image ids and paths of every dataset index."""
    ids, paths = [], []
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        ids.append(info['img_id'])
        paths.append(info.get('img_path'))
    if len(set(ids)) != len(ids):
        raise ValueError('the unlabeled dataset has duplicate image ids')
    return ids, paths


def image_source(dataset) -> Tuple[str, str]:
    """The image folder and the annotation file of ``dataset``."""
    prefix = getattr(dataset, 'data_prefix', None) or {}
    return prefix.get('img', ''), getattr(dataset, 'ann_file', '')


def check_images_exist(dataset: Union[dict, Dataset],
                       max_unreadable: Optional[float]) -> None:
    """Fail before any labeling when too many image files are missing.

    Args:
        dataset (dict | Dataset): The unlabeled set (config or built).
        max_unreadable (float, optional): See :func:`check_unreadable`.

    Raises:
        UnreadableImagesError: naming the image folder and the first
            missing file.
    """
    dataset = build_labeling_dataset(dataset)
    _, paths = image_table(dataset)
    missing = [
        p for p in paths
        if isinstance(p, str) and '://' not in p and not osp.isfile(p)
    ]
    check_unreadable(missing, len(paths), max_unreadable,
                     *image_source(dataset))


def category_ids(dataset) -> List[int]:
    """COCO category id of each class index of ``dataset`` (its
    ``cat_ids``; empty when it has none)."""
    return [int(c) for c in getattr(dataset, 'cat_ids', None) or []]


def load_unlabeled_json(dataset) -> Optional[dict]:
    """The COCO json ``dataset`` reads (``None`` without a local one)."""
    ann_file = getattr(dataset, 'ann_file', None)
    if not ann_file or not osp.isfile(ann_file):
        return None
    with open(ann_file, encoding='utf-8') as f:
        coco = json.load(f)
    if not isinstance(coco, dict) or 'images' not in coco:
        raise ValueError(f'{ann_file} is not a COCO json with "images"')
    return coco

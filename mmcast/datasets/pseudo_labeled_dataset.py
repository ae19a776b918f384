# Copyright (c) mmcast contributors. All rights reserved.
"""The unlabeled set read with the teacher's offline pseudo-labels.

MMEngine's Runner builds the train dataloader (and this dataset) before any
hook runs, and :class:`~mmcast.engine.hooks.PseudoLabelHook` writes the
pseudo-label file only in ``before_train``. So the dataset can be built
before the file exists: it then lists the images of ``unlabeled_ann_file``
with no instance (never its ground truth, if it has any), which fixes the
dataset length, and :meth:`PseudoLabeledDataset.reload` reads the
pseudo-labels once they are written. The image list, its order and so the
length never change between the two, so samplers built on the first stay
valid.
"""
import copy
import logging
import os.path as osp
from typing import List, Optional

from mmengine.fileio import get_local_path
from mmengine.logging import print_log
from mmengine.utils import is_abs

from mmdet.datasets import CocoDataset
from mmdet.datasets.api_wrappers import COCO
from mmdet.registry import DATASETS

from mmcast.pseudo_labels.coco_pseudo_labels import (SKIPPED_IMAGE_KEY,
                                                     read_header)
from mmcast.utils.file_hashing import file_sha256


@DATASETS.register_module()
class PseudoLabeledDataset(CocoDataset):
    """COCO-format dataset over pseudo-labels of the unlabeled set.

    Works for any class list (Cityscapes, ADE20K, COCO): give
    ``metainfo=dict(classes=...)`` (and a palette if wanted); the
    categories of the pseudo-label json are matched by name like in
    ``CocoDataset``.

    Args:
        ann_file (str): The pseudo-label json (written by
            :func:`~mmcast.pseudo_labels.label_unlabeled_set`); joined with
            ``data_root`` if relative. It need not exist yet.
        unlabeled_ann_file (str): The unlabeled set's COCO json (joined with
            ``data_root`` if relative). Used while ``ann_file`` is missing or
            was made from another unlabeled set (its header's
            ``unlabeled_sha256`` differs).
        filter_cfg (dict, optional): Only ``min_size`` is honoured:
            images without pseudo-labels are always kept (their queries all
            learn no-object), so ``filter_empty_gt=True`` is turned off.
        **kwargs: As :class:`mmdet.datasets.CocoDataset`.

    Images the labeler could not read (``mmcast_skipped`` in the json) are
    kept in the index but never served: in training, MMEngine's
    ``BaseDataset.__getitem__`` draws another image instead.

    Attributes:
        pseudo_labels_loaded (bool): Whether the last (re)load read
            ``ann_file``.
        pseudo_label_header (dict | None): Its mmcast header.
    """

    def __init__(self,
                 *args,
                 unlabeled_ann_file: str,
                 filter_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        if not unlabeled_ann_file:
            raise ValueError('PseudoLabeledDataset needs unlabeled_ann_file')
        self.unlabeled_ann_file = unlabeled_ann_file
        filter_cfg = copy.deepcopy(filter_cfg) if filter_cfg else None
        if filter_cfg and filter_cfg.get('filter_empty_gt', False):
            print_log(
                'PseudoLabeledDataset keeps images without pseudo-labels; '
                'filter_empty_gt=True is ignored', logger='current',
                level=logging.WARNING)
            filter_cfg['filter_empty_gt'] = False
        self.pseudo_labels_loaded = False
        self.pseudo_label_header = None
        self._img_id_order = None
        super().__init__(*args, filter_cfg=filter_cfg, **kwargs)

    def _join_prefix(self):
        super()._join_prefix()
        if not is_abs(self.unlabeled_ann_file) and self.data_root:
            self.unlabeled_ann_file = osp.join(self.data_root,
                                               self.unlabeled_ann_file)

    # ------------------------------------------------------------------
    def pseudo_labels_ready(self) -> bool:
        """Whether ``ann_file`` exists and belongs to ``unlabeled_ann_file``.

        A json without an mmcast header (made elsewhere) is trusted.
        """
        if not osp.isfile(self.ann_file):
            return False
        try:
            header = read_header(self.ann_file)
        except (OSError, ValueError) as e:
            print_log(f'cannot read {self.ann_file}: {e}', logger='current',
                      level=logging.WARNING)
            return False
        self.pseudo_label_header = header
        if header is None or not header.get('unlabeled_sha256'):
            return True
        if not osp.isfile(self.unlabeled_ann_file):
            return True  # nothing to compare with
        if header['unlabeled_sha256'] != file_sha256(self.unlabeled_ann_file):
            print_log(
                f'{self.ann_file} was made from another unlabeled set than '
                f'{self.unlabeled_ann_file}; ignored until relabeled',
                logger='current', level=logging.WARNING)
            return False
        return True

    def load_data_list(self) -> List[dict]:
        if self.pseudo_labels_ready():
            self.pseudo_labels_loaded = True
            data_list = super().load_data_list()
        else:
            self.pseudo_labels_loaded = False
            self.pseudo_label_header = None
            print_log(
                f'pseudo-label file {self.ann_file} is missing or stale: '
                f'the {self.unlabeled_ann_file} images are loaded without '
                'annotations until PseudoLabelHook (or tools/pseudo_label.py) '
                'writes it', logger='current', level=logging.WARNING)
            data_list = self._load_images_only()
        return self._keep_order(data_list)

    def _load_images_only(self) -> List[dict]:
        with get_local_path(
                self.unlabeled_ann_file,
                backend_args=self.backend_args) as local_path:
            coco = COCO(local_path)
        # index the images and categories only: the unlabeled json may
        # carry ground truth that must never reach the student
        dataset = {k: v for k, v in coco.dataset.items() if k != 'annotations'}
        coco = COCO()
        coco.dataset = dataset
        coco.createIndex()
        self.cat_ids = coco.get_cat_ids(cat_names=self.metainfo['classes'])
        self.cat2label = {cat_id: i for i, cat_id in enumerate(self.cat_ids)}
        self.cat_img_map = {cat_id: [] for cat_id in self.cat_ids}
        data_list = []
        for img_id in coco.get_img_ids():
            raw_img_info = coco.load_imgs([img_id])[0]
            raw_img_info['img_id'] = img_id
            data_list.append(
                self.parse_data_info(
                    dict(raw_ann_info=[], raw_img_info=raw_img_info)))
        return data_list

    def _keep_order(self, data_list: List[dict]) -> List[dict]:
        """Same images in the same order as the first load, or an error."""
        ids = [d['img_id'] for d in data_list]
        if self._img_id_order is None:
            self._img_id_order = ids
            return data_list
        if ids == self._img_id_order:
            return data_list
        if sorted(map(str, ids)) != sorted(map(str, self._img_id_order)):
            raise RuntimeError(
                f'{self.ann_file} does not list the same images as when the '
                f'dataset was built ({len(ids)} vs '
                f'{len(self._img_id_order)}): it was made from another '
                'unlabeled set')
        by_id = {d['img_id']: d for d in data_list}
        return [by_id[i] for i in self._img_id_order]

    def parse_data_info(self, raw_data_info: dict) -> dict:
        data_info = super().parse_data_info(raw_data_info)
        data_info[SKIPPED_IMAGE_KEY] = bool(
            raw_data_info['raw_img_info'].get(SKIPPED_IMAGE_KEY, False))
        return data_info

    def prepare_data(self, idx: int):
        """``None`` for an image the labeler could not read."""
        data_info = self.get_data_info(idx)
        if data_info.get(SKIPPED_IMAGE_KEY, False):
            return None
        return self.pipeline(data_info)

    def reload(self) -> bool:
        """Re-read ``ann_file`` (after the hook wrote it).

        The image list and order stay those of the first load. Returns
        whether the pseudo-labels are now loaded.
        """
        self._fully_initialized = False
        self.full_init()
        return self.pseudo_labels_loaded

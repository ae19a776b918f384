# Copyright (c) mmcast contributors. All rights reserved.
"""NYU Depth V2 with depth maps and 40-class semantic labels."""
import os.path as osp
import re
from typing import List

from mmseg.datasets import NYUDataset
from mmseg.registry import DATASETS

#: The 40 NYUv2 classes of Gupta et al. (CVPR 2013), in label order 1..40.
NYU40_CLASSES = ('wall', 'floor', 'cabinet', 'bed', 'chair', 'sofa', 'table',
                 'door', 'window', 'bookshelf', 'picture', 'counter',
                 'blinds', 'desk', 'shelves', 'curtain', 'dresser', 'pillow',
                 'mirror', 'floor mat', 'clothes', 'ceiling', 'books',
                 'refridgerator', 'television', 'paper', 'towel',
                 'shower curtain', 'box', 'whiteboard', 'person',
                 'night stand', 'toilet', 'sink', 'lamp', 'bathtub', 'bag',
                 'otherstructure', 'otherfurniture', 'otherprop')
#: The scene categories of mmseg's :class:`NYUDataset` (``category_id``).
NYU_SCENES = NYUDataset.METAINFO['classes']


@DATASETS.register_module()
class NYUDepthSegDataset(NYUDataset):
    """NYU Depth V2 for joint depth estimation and semantic segmentation.

    mmseg 1.2.2's :class:`NYUDataset` loads depth only (its ``classes`` are
    27 scene categories). This subclass adds a semantic label map per image
    from a parallel folder, 40 classes (:data:`NYU40_CLASSES`)::

        <data_root>/images/<split>/<name>.jpg        RGB
        <data_root>/annotations/<split>/<name>.png   uint16 depth, mm
        <data_root>/labels40/<split>/<name>.png      uint8 label, 0 = void

    The label PNGs hold the NYUv2 40-class ids as distributed (1..40, 0 =
    unlabelled); with the default ``reduce_zero_label=True`` they load as
    train ids 0..39 and 255 = ignore. Every image needs a label file, so the
    images are the 1449 densely labelled frames (795 train / 654 test), not
    the raw-sequence frames of mmseg's depth-only layout (its
    ``tools/dataset_converters/nyu.py``). Load depth with mmseg's
    ``LoadDepthAnnotation(depth_rescale_factor=1e-3)`` (mm to m), labels with
    ``LoadAnnotations``.

    Args:
        data_prefix (dict): Folders of the images (``img_path``), depth maps
            (``depth_map_path``) and labels (``seg_map_path``), relative to
            ``data_root``. Defaults to ``images``, ``annotations`` and
            ``labels40``.
        label_suffix (str): Suffix of label maps. Defaults to ``'.png'``.
        reduce_zero_label (bool): Whether label 0 is void. Defaults to True.
        **kwargs: Other arguments of :class:`NYUDataset` (``img_suffix``,
            ``depth_map_suffix``, ``pipeline``, ``test_mode``...).
    """
    METAINFO = dict(classes=NYU40_CLASSES)

    def __init__(self,
                 data_prefix: dict = dict(
                     img_path='images',
                     depth_map_path='annotations',
                     seg_map_path='labels40'),
                 label_suffix: str = '.png',
                 reduce_zero_label: bool = True,
                 **kwargs) -> None:
        for key in ('img_path', 'depth_map_path', 'seg_map_path'):
            if key not in data_prefix:
                raise KeyError(f'data_prefix of {type(self).__name__} needs '
                               f'{key!r}, got {data_prefix}')
        self.label_suffix = label_suffix
        super().__init__(
            data_prefix=data_prefix,
            reduce_zero_label=reduce_zero_label,
            **kwargs)

    def _get_category_id_from_filename(self, image_fname: str) -> int:
        """The scene category id of a NYU file name (``'bedroom_0001.jpg'``
        is ``'bedroom'``) in :data:`NYU_SCENES`, -1 if there is none."""
        match = re.match(r'(.+?)_?\d', osp.basename(image_fname))
        if match is None or match.group(1) not in NYU_SCENES:
            return -1
        return NYU_SCENES.index(match.group(1))

    def load_data_list(self) -> List[dict]:
        """Load the image and depth paths as :class:`NYUDataset` does and add
        the label path and the label settings to every sample.

        Returns:
            list[dict]: Data infos with ``img_path``, ``depth_map_path``,
            ``seg_map_path``, ``label_map``, ``reduce_zero_label``,
            ``seg_fields`` and ``category_id``.
        """
        data_list = super().load_data_list()
        img_dir = self.data_prefix['img_path']
        seg_dir = self.data_prefix['seg_map_path']
        for info in data_list:
            name = osp.relpath(info['img_path'],
                               img_dir)[:-len(self.img_suffix)]
            info['seg_map_path'] = osp.join(seg_dir, name + self.label_suffix)
            info['label_map'] = self.label_map
            info['reduce_zero_label'] = self.reduce_zero_label
        return data_list

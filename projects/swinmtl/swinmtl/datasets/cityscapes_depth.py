# Copyright (c) mmcast contributors. All rights reserved.
"""Cityscapes with semantic labels, stereo disparity and camera files."""
import os.path as osp
from typing import List

from mmseg.datasets import CityscapesDataset
from mmseg.registry import DATASETS


@DATASETS.register_module()
class CityscapesDepthSegDataset(CityscapesDataset):
    """Cityscapes for joint depth estimation and semantic segmentation.

    The semantic part is mmseg's :class:`CityscapesDataset` as it is (the 19
    ``*_gtFine_labelTrainIds.png`` train ids, 255 = ignore, made by mmseg's
    ``tools/dataset_converters/cityscapes.py``). Every sample also gets the
    path of its stereo disparity map and of its camera file, from which
    :class:`LoadCityscapesDepth` computes metric depth::

        <data_root>/leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png
        <data_root>/gtFine/<split>/<city>/<stem>_gtFine_labelTrainIds.png
        <data_root>/disparity/<split>/<city>/<stem>_disparity.png
        <data_root>/camera/<split>/<city>/<stem>_camera.json

    The disparity map goes to the key ``disparity_path`` (not
    ``depth_map_path``): a disparity PNG read by mmseg's
    ``LoadDepthAnnotation`` would silently be taken as a depth map, whereas
    with its own key that mistake fails with a ``KeyError``.

    Args:
        data_prefix (dict): Folders of the images (``img_path``), train-id
            maps (``seg_map_path``), disparity maps (``disparity_path``) and
            camera files (``camera_path``), relative to ``data_root``.
            Defaults to the train split.
        disparity_suffix (str): Suffix of disparity maps. Defaults to
            ``'_disparity.png'``.
        camera_suffix (str): Suffix of camera files. Defaults to
            ``'_camera.json'``.
        **kwargs: Other arguments of :class:`CityscapesDataset`
            (``ann_file``, ``pipeline``, ``test_mode``...).
    """

    def __init__(self,
                 data_prefix: dict = dict(
                     img_path='leftImg8bit/train',
                     seg_map_path='gtFine/train',
                     disparity_path='disparity/train',
                     camera_path='camera/train'),
                 disparity_suffix: str = '_disparity.png',
                 camera_suffix: str = '_camera.json',
                 **kwargs) -> None:
        for key in ('img_path', 'disparity_path', 'camera_path'):
            if key not in data_prefix:
                raise KeyError(f'data_prefix of {type(self).__name__} needs '
                               f'{key!r}, got {data_prefix}')
        self.disparity_suffix = disparity_suffix
        self.camera_suffix = camera_suffix
        super().__init__(data_prefix=data_prefix, **kwargs)

    def load_data_list(self) -> List[dict]:
        """Load the image and label paths as :class:`CityscapesDataset` does
        and add ``disparity_path`` and ``camera_path`` to every sample.

        Returns:
            list[dict]: Data infos with ``img_path``, ``seg_map_path``,
            ``disparity_path``, ``camera_path``, ``label_map``,
            ``reduce_zero_label`` and ``seg_fields``.
        """
        data_list = super().load_data_list()
        img_dir = self.data_prefix['img_path']
        disparity_dir = self.data_prefix['disparity_path']
        camera_dir = self.data_prefix['camera_path']
        for info in data_list:
            # '<city>/<stem>', e.g. 'aachen/aachen_000000_000019'
            name = osp.relpath(info['img_path'],
                               img_dir)[:-len(self.img_suffix)]
            info['disparity_path'] = osp.join(disparity_dir,
                                              name + self.disparity_suffix)
            info['camera_path'] = osp.join(camera_dir,
                                           name + self.camera_suffix)
        return data_list

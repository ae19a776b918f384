# Copyright (c) mmcast contributors. All rights reserved.
"""The toy depth + segmentation dataset written by ``toy_depth_scenes``."""
from mmseg.registry import DATASETS
from .nyu_depth_seg import NYUDepthSegDataset
from .toy_depth_scenes import TOY_DEPTH_CLASSES, TOY_DEPTH_PALETTE


@DATASETS.register_module()
class ToyDepthSegDataset(NYUDepthSegDataset):
    """The toy scenes of :func:`make_toy_depth_dataset`.

    :class:`NYUDepthSegDataset` with the toy classes (ground, sky, box, ball,
    pole; no void label) and the toy layout: PNG images, depth in
    millimetres (load it with ``LoadDepthAnnotation(depth_rescale_factor=
    1e-3)``), labels in ``labels/``.

    Args:
        data_prefix (dict): Folders of the images, depth maps and labels.
            Defaults to the train split.
        img_suffix (str): Suffix of images. Defaults to ``'.png'``.
        reduce_zero_label (bool): Whether label 0 is void. Defaults to False.
        **kwargs: Other arguments of :class:`NYUDepthSegDataset`.
    """
    METAINFO = dict(classes=TOY_DEPTH_CLASSES, palette=TOY_DEPTH_PALETTE)

    def __init__(self,
                 data_prefix: dict = dict(
                     img_path='images/train',
                     depth_map_path='annotations/train',
                     seg_map_path='labels/train'),
                 img_suffix: str = '.png',
                 reduce_zero_label: bool = False,
                 **kwargs) -> None:
        super().__init__(
            data_prefix=data_prefix,
            img_suffix=img_suffix,
            reduce_zero_label=reduce_zero_label,
            **kwargs)

# Copyright (c) mmcast contributors. All rights reserved.
"""SwinMTL data: depth + segmentation datasets and transforms, registered in
MMSegmentation's registries."""
from .cityscapes_depth import CityscapesDepthSegDataset
from .load_cityscapes_depth import LoadCityscapesDepth
from .nyu_depth_seg import NYU40_CLASSES, NYUDepthSegDataset
from .random_gamma import RandomGamma
from .toy_depth_dataset import ToyDepthSegDataset
from .toy_depth_scenes import (TOY_DEPTH_CLASSES, ToyCamera, ToyDepthObject,
                               ToyDepthScene, make_toy_depth_dataset,
                               render_toy_depth_scene)

__all__ = [
    'CityscapesDepthSegDataset', 'LoadCityscapesDepth', 'NYU40_CLASSES',
    'NYUDepthSegDataset', 'RandomGamma', 'ToyDepthSegDataset',
    'TOY_DEPTH_CLASSES', 'ToyCamera', 'ToyDepthObject', 'ToyDepthScene',
    'make_toy_depth_dataset', 'render_toy_depth_scene'
]

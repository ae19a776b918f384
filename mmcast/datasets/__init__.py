# Copyright (c) mmcast contributors. All rights reserved.
from .pseudo_labeled_dataset import PseudoLabeledDataset
from .semi_split import split_coco, write_split

__all__ = ['split_coco', 'write_split', 'PseudoLabeledDataset']

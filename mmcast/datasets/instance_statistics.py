# Copyright (c) mmcast contributors. All rights reserved.
"""Instances per image of COCO annotation files, and the capacity they ask.

A Mask2Former finds at most as many instances in an image as it has queries
(the Hungarian matching gives each ground-truth mask one query, so the
masks beyond them are never a training target), and every later step keeps
at most its own number: the fusion head's ``test_cfg.max_per_image``, the
pseudo-label filter's ``max_per_image``, the evaluator's maximum
detections. :func:`instance_statistics` counts the instances of each image
of an annotation file (max, 99th percentile, mean); :func:`capacity_for`
turns the 99th percentile into the capacity a run needs: the next multiple
of :data:`CAPACITY_STEP` at or above :data:`CAPACITY_MARGIN` × the 99th
percentile, and at least a given floor (the configs' own).
"""
import json
import math
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

# The capacity is this many times the 99th percentile of instances per
# image, rounded up to a multiple of CAPACITY_STEP.
CAPACITY_MARGIN = 1.25
CAPACITY_STEP = 10


@dataclass(frozen=True)
class InstanceStatistics:
    """Instances per image of one annotation file.

    Args:
        ann_file (str): The COCO json.
        num_images (int): Its images (those without an instance count 0).
        max (int): The most instances of an image.
        p99 (int): The 99th percentile: the fewest instances that at least
            99 % of the images do not exceed.
        mean (float): Instances per image on average.
        counts (np.ndarray): The instances of each image (num_images, ).
    """
    ann_file: str
    num_images: int
    max: int
    p99: int
    mean: float
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, int),
                               repr=False, compare=False)

    def describe(self) -> str:
        """One line: ``<file>: <n> images, instances per image: max ...``."""
        return (f'{self.ann_file}: {self.num_images} images, instances per '
                f'image: max {self.max}, 99th percentile {self.p99}, mean '
                f'{self.mean:.1f}')


def instance_counts(coco: dict,
                    classes: Optional[Sequence[str]] = None) -> np.ndarray:
    """Instances of each image of a COCO dict (int64 ``(num_images, )``,
    in the order of ``images``).

    Crowd annotations (``iscrowd`` 1) are regions, not instances, and are
    not counted; with ``classes``, only the annotations of the categories
    of those names (what ``CocoDataset`` loads with these classes).
    """
    index = {img['id']: i for i, img in enumerate(coco.get('images') or [])}
    wanted = None
    if classes is not None:
        wanted = {c['id'] for c in coco.get('categories') or []
                  if c.get('name') in set(classes)}
    # (a duplicate image id counts once, at its last image: the preflight
    # refuses such a file)
    counts = np.zeros(len(coco.get('images') or []), dtype=np.int64)
    for ann in coco.get('annotations') or []:
        if ann.get('iscrowd', 0) or ann.get('image_id') not in index:
            continue
        if wanted is not None and ann.get('category_id') not in wanted:
            continue
        counts[index[ann['image_id']]] += 1
    return counts


def instance_statistics(ann_file: str,
                        classes: Optional[Sequence[str]] = None
                        ) -> InstanceStatistics:
    """Instances per image of ``ann_file`` (see :func:`instance_counts`).

    Raises:
        FileNotFoundError: Naming a missing file.
        ValueError: Naming a file that is no COCO json.
    """
    try:
        with open(ann_file, encoding='utf-8') as f:
            coco = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f'annotation file not found: {ann_file}')
    except ValueError as e:
        raise ValueError(f'{ann_file}: not valid json ({e})') from e
    if not isinstance(coco, dict) or not isinstance(coco.get('images'),
                                                    list):
        raise ValueError(f'{ann_file}: not a COCO annotation file (no '
                         '"images" list)')
    counts = instance_counts(coco, classes)
    if not len(counts):
        return InstanceStatistics(ann_file, 0, 0, 0, 0.0, counts)
    return InstanceStatistics(
        ann_file=ann_file,
        num_images=len(counts),
        max=int(counts.max()),
        p99=int(np.percentile(counts, 99, method='inverted_cdf')),
        mean=float(counts.mean()),
        counts=counts)


def capacity_for(p99: int, at_least: int = 1) -> int:
    """The capacity for data whose 99th percentile of instances per image
    is ``p99``: the next multiple of :data:`CAPACITY_STEP` at or above
    :data:`CAPACITY_MARGIN` × ``p99``, and at least ``at_least``."""
    needed = math.ceil(CAPACITY_MARGIN * p99 / CAPACITY_STEP) * CAPACITY_STEP
    return max(int(needed), int(at_least))

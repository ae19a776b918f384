# Copyright (c) mmcast contributors. All rights reserved.
"""Every toy world (``mmcast/toy``) writes the data it wrote when the
digests below were recorded: the toy results of the research log stay
reproducible. (The package's imports: ``tests/test_package_structure.py``.)
"""
import hashlib
import os
import os.path as osp

import cv2
import pytest

from mmcast.toy.worlds import WORLDS, make_toy_dataset

# SHA-256 of each world's tiny dataset (see _digest), recorded from the
# generator as it was before it moved into this package: a change of one
# pixel or annotation of any world shows here.
DIGESTS = {
    ('streets', 'target'):
    '523b6b5172ebf5fa87836684917467bba8c633f1867e34a4dba580c727a0a236',
    ('streets', 'source'):
    'cf9e9e1a3cbef63a5add8473bc6d97147cb977e5983572aca93c6125525bb629',
    ('tabletop', 'target'):
    '617603f9e66a7bd61484e2739f0549d25036bef41aaf9965f8fba1a35e6ea0b3',
    ('tabletop', 'source'):
    '65966f116d3af7d4be9325fffd45ccf1402b3fc097f743d5089e41ba4a642d72',
    ('cells', 'target'):
    '420d2b4520cd513b3c2397004e7eb885865974c8cf506551d956589c03ea0df7',
    ('cells', 'source'):
    '91fbee159fe06b9c4ad6ce37da51867747870989060effb273d4169e18668937',
}


def _digest(root: str) -> str:
    """SHA-256 over every file of a dataset in path order: a PNG by its
    decoded pixels (so that another zlib still gives the same digest), any
    other file by its bytes."""
    sha = hashlib.sha256()
    paths = sorted(
        osp.relpath(osp.join(d, f), root) for d, _, files in os.walk(root)
        for f in files)
    for rel in paths:
        sha.update(rel.encode())
        if rel.endswith('.png'):
            pixels = cv2.imread(osp.join(root, rel), cv2.IMREAD_UNCHANGED)
            sha.update(f'{pixels.dtype}{pixels.shape}'.encode())
            sha.update(pixels.tobytes())
        else:
            with open(osp.join(root, rel), 'rb') as f:
                sha.update(f.read())
    return sha.hexdigest()


@pytest.mark.parametrize('world, style', list(DIGESTS))
def test_every_world_writes_the_data_it_wrote_before(world, style, tmp_path):
    assert world in WORLDS
    make_toy_dataset(str(tmp_path), num_train=3, num_val=2, num_test=1,
                     height=64, width=96, seed=5, style=style,
                     max_instances=40 if world == 'cells' else None,
                     show_progress=False, world=world)
    assert _digest(str(tmp_path)) == DIGESTS[(world, style)]

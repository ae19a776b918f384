# Copyright (c) mmcast contributors. All rights reserved.
"""Batched offline labelling writes the batch-1 file byte for byte.

``tools/pseudo_label.py`` labels the 8 toy train images with each kind of
teacher at batch 1 and at batch 4 (one forward of the detector, or of
SAM's image encoder, for 4 images; the prompts per image): the toy
Mask2Former teacher, the tiny box-prompted teacher (Grounding-DINO +
SAM 2) and the tiny concept-prompted teacher (SAM 3), random weights. The
file holds no time stamp, so the two files must be equal byte for byte.

Where the kernels themselves depend on the batch size the last bits of a
score may too: oneDNN picks another algorithm for some of the ResNet's
convolutions at batch 4 than at batch 1 (1e-6 apart), which can move a
score across the 5th-decimal rounding of the file. The Mask2Former
teacher's byte-for-byte check therefore runs with PyTorch's own
convolutions (``torch.backends.mkldnn`` off, batch-invariant on the CPU);
with oneDNN its file has the same images, masks and labels and scores
one rounding step (1e-5) apart. The two VFM teachers are checked with
the default kernels.
"""
import contextlib
import json
import os.path as osp

import pytest
import torch

from conftest import REPO_ROOT, load_script

TEACHERS = {
    'mask2former': 'configs/mmcast/adapt_teacher_toy.py',
    'box-prompted': 'configs/mmcast/toy/teacher_gdino-tiny_sam2-tiny_toy.py',
    'concept-prompted': 'configs/mmcast/toy/teacher_sam3-tiny_toy.py',
}


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    """Each teacher's checkpoint (the tiny VFM teachers' assets)."""
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from mmcast.toy.tiny_sam3 import build_tiny_sam3_assets
    from mmcast.toy.tiny_teachers import build_tiny_teacher_assets
    root = str(tmp_path_factory.mktemp('tiny'))
    boxes = build_tiny_teacher_assets(root)
    concepts = build_tiny_sam3_assets(root)
    cfg = Config.fromfile(osp.join(REPO_ROOT, TEACHERS['mask2former']))
    with DefaultScope.overwrite_default_scope('mmdet'):
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
        model.init_weights()
    mask2former = osp.join(root, 'mask2former_toy.pth')
    torch.save(dict(state_dict=model.state_dict()), mask2former)
    return dict(root=root, mask2former=mask2former,
                **{'box-prompted': boxes['teacher_checkpoint'],
                   'concept-prompted': concepts['teacher_checkpoint']})


@pytest.mark.parametrize('teacher', list(TEACHERS))
def test_batch_4_writes_the_batch_1_file(teacher, checkpoints,
                                         toy_data_root, tmp_path,
                                         monkeypatch):
    files = _label_at_batch_1_and_4(teacher, checkpoints, toy_data_root,
                                    tmp_path, monkeypatch,
                                    invariant_convs=teacher == 'mask2former')
    assert b'"annotations": []' not in files[0]  # it found instances
    assert files[0] == files[1]


def test_batch_4_with_onednn_convolutions_differs_only_in_last_bits(
        checkpoints, toy_data_root, tmp_path, monkeypatch):
    one, four = [json.loads(f) for f in _label_at_batch_1_and_4(
        'mask2former', checkpoints, toy_data_root, tmp_path, monkeypatch)]
    assert one['images'] == four['images'] and one['annotations']
    assert len(one['annotations']) == len(four['annotations'])
    for a, b in zip(one['annotations'], four['annotations']):
        assert abs(a.pop('score') - b.pop('score')) <= 1.5e-5  # 1 digit
        assert a == b


def _label_at_batch_1_and_4(teacher, checkpoints, toy_data_root, tmp_path,
                            monkeypatch, invariant_convs=False):
    """The bytes of ``tools/pseudo_label.py``'s file at batch 1 and 4."""
    monkeypatch.setenv('MMCAST_TINY_TEACHERS', checkpoints['root'])
    tool = load_script(osp.join(REPO_ROOT, 'tools', 'pseudo_label.py'))
    files = []
    for batch_size in (1, 4):
        out = tmp_path / f'batch{batch_size}' / 'pseudo.json'
        with (torch.backends.mkldnn.flags(enabled=False) if invariant_convs
              else contextlib.nullcontext()):
            rc = tool.main([
                osp.join(REPO_ROOT, TEACHERS[teacher]), checkpoints[teacher],
                '--unlabeled-ann', osp.join(
                    toy_data_root, 'annotations',
                    'instancesonly_filtered_gtFine_train.json'),
                '--data-root', toy_data_root + '/', '--img-prefix',
                'leftImg8bit/train/', '--out', str(out), '--batch-size',
                str(batch_size), '--score-thr', '0.05', '--vis-num', '0'])
        assert rc == 0
        files.append(out.read_bytes())
    return files


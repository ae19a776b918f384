# Copyright (c) mmcast contributors. All rights reserved.
"""SwinMTL data: Cityscapes depth from disparity, the toy depth scenes, the
joint pipeline, the CutMix-style patch paste and the data preprocessor."""
import json
import os
import os.path as osp
import re

import cv2
import numpy as np
import pytest
import torch
from mmengine.dataset import Compose
from mmengine.registry import DefaultScope
from mmengine.structures import PixelData

from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from projects.swinmtl.swinmtl.datasets import (TOY_DEPTH_CLASSES,
                                               CityscapesDepthSegDataset,
                                               LoadCityscapesDepth,
                                               NYUDepthSegDataset, RandomGamma,
                                               ToyCamera, ToyDepthSegDataset,
                                               make_toy_depth_dataset,
                                               render_toy_depth_scene)
from projects.swinmtl.swinmtl.datasets.toy_depth_scenes import (DEPTH_SCALE,
                                                                toy_depth_rng)
from projects.swinmtl.swinmtl.models import (CutMixPatches,
                                             MultiTaskSegDataPreProcessor)

TOY = dict(num_train=6, num_val=3, height=64, width=96, seed=0)


@pytest.fixture(autouse=True)
def mmseg_scope():
    """Build pipelines in mmseg's registry, as ``mim train mmseg`` does."""
    with DefaultScope.overwrite_default_scope('mmseg'):
        yield


@pytest.fixture(scope='module')
def toy_root(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp('toy_depth'))
    make_toy_depth_dataset(root, **TOY)
    return root


# --------------------------------------------------------------------------
# Cityscapes: depth from disparity and camera file
# --------------------------------------------------------------------------

CITY, STEM = 'toyburg', 'toyburg_000000_000019'
# baseline 0.2 m, fx 2000 px: depth = 400 / d, d = (p - 1) / 256
RAW = np.array([[0, 1, 257], [513, 2, 25601]], dtype=np.uint16)
# p = 0 and p = 1 (d = 0) invalid; d = 1, 2, 1/256, 100 px
EXPECTED = np.array([[0.0, 0.0, 400.0], [200.0, 102400.0, 4.0]],
                    dtype=np.float32)


def _cityscapes_tree(root: str, camera=None) -> dict:
    """A one-image Cityscapes train split with disparity and camera."""
    paths = dict(
        img=osp.join(root, 'leftImg8bit', 'train', CITY,
                     f'{STEM}_leftImg8bit.png'),
        seg=osp.join(root, 'gtFine', 'train', CITY,
                     f'{STEM}_gtFine_labelTrainIds.png'),
        disparity=osp.join(root, 'disparity', 'train', CITY,
                           f'{STEM}_disparity.png'),
        camera=osp.join(root, 'camera', 'train', CITY, f'{STEM}_camera.json'))
    for path in paths.values():
        os.makedirs(osp.dirname(path), exist_ok=True)
    cv2.imwrite(paths['img'], np.full((2, 3, 3), 100, np.uint8))
    cv2.imwrite(paths['seg'], np.array([[0, 13, 255], [2, 10, 18]], np.uint8))
    cv2.imwrite(paths['disparity'], RAW)
    if camera is None:
        camera = dict(
            extrinsic=dict(baseline=0.2, pitch=0.0, x=1.7, y=0.1, z=1.2),
            intrinsic=dict(fx=2000.0, fy=2000.0, u0=1.5, v0=1.0))
    with open(paths['camera'], 'w') as f:
        json.dump(camera, f)
    return paths


def test_cityscapes_disparity_to_depth(tmp_path):
    paths = _cityscapes_tree(str(tmp_path))
    dataset = CityscapesDepthSegDataset(
        data_root=str(tmp_path),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations'),
            dict(type='LoadCityscapesDepth'),
            dict(type='PackSegInputs')
        ])
    assert len(dataset) == 1
    info = dataset.get_data_info(0)
    assert info['img_path'] == paths['img']
    assert info['seg_map_path'] == paths['seg']
    assert info['disparity_path'] == paths['disparity']
    assert info['camera_path'] == paths['camera']
    sample = dataset[0]['data_samples']
    depth = sample.gt_depth_map.data
    assert depth.dtype == torch.float32 and depth.shape == (1, 2, 3)
    np.testing.assert_allclose(depth[0].numpy(), EXPECTED, rtol=1e-6)
    assert torch.isfinite(depth).all()
    assert sample.gt_sem_seg.data[0].tolist() == [[0, 13, 255], [2, 10, 18]]

    capped = LoadCityscapesDepth(max_depth=300.0)(
        dict(info, seg_fields=[]))
    np.testing.assert_allclose(capped['gt_depth_map'],
                               [[0, 0, 0], [200, 0, 4]], rtol=1e-6)
    assert capped['seg_fields'] == ['gt_depth_map']


def test_cityscapes_bad_camera_or_disparity(tmp_path):
    paths = _cityscapes_tree(str(tmp_path))
    load = LoadCityscapesDepth()
    results = dict(
        disparity_path=paths['disparity'],
        camera_path=paths['camera'],
        seg_fields=[])
    os.remove(paths['camera'])
    with pytest.raises(FileNotFoundError, match=re.escape(paths['camera'])):
        load(dict(results))
    _cityscapes_tree(str(tmp_path), camera=dict(extrinsic={}, intrinsic={}))
    with pytest.raises(ValueError,
                       match=re.escape(paths['camera']) + '.*baseline'):
        load(dict(results))
    _cityscapes_tree(str(tmp_path))
    cv2.imwrite(paths['disparity'], RAW.astype(np.uint8))
    with pytest.raises(ValueError,
                       match=re.escape(paths['disparity']) + '.*16-bit'):
        load(dict(results))


# --------------------------------------------------------------------------
# toy depth scenes
# --------------------------------------------------------------------------


def test_toy_scene_geometry():
    height, width = 64, 96
    camera = ToyCamera.for_image(height, width)
    overlaps = 0
    for index in range(40):
        scene = render_toy_depth_scene(height, width,
                                       toy_depth_rng(7, 'train', index))
        labels, depth_mm = scene.labels, scene.depth_mm
        assert scene.image.shape == (height, width, 3)
        assert labels.max() < len(TOY_DEPTH_CLASSES)
        sky = labels == TOY_DEPTH_CLASSES.index('sky')
        assert (depth_mm[sky] == 0).all() and (depth_mm[~sky] > 0).all()
        # the ground has the depth of its row: h * f / (y + 0.5 - horizon)
        ground = labels == TOY_DEPTH_CLASSES.index('ground')
        rows = np.nonzero(ground)[0]
        expected = np.rint(
            np.minimum(camera.height * camera.focal /
                       (rows + 0.5 - camera.horizon), 50.0) * DEPTH_SCALE)
        assert (depth_mm[ground] == expected).all()
        assert 1 <= len(scene.objects) <= 4
        for i, obj in enumerate(scene.objects):
            # one known, constant depth on the visible part
            assert (depth_mm[obj.visible] == round(obj.depth *
                                                   DEPTH_SCALE)).all()
            assert (labels[obj.visible] == obj.class_id).all()
            for nearer in scene.objects[i + 1:]:
                assert nearer.depth <= obj.depth  # drawn far to near
                both = obj.mask & nearer.mask
                if nearer.depth < obj.depth and both.any():
                    overlaps += 1
                    assert not (obj.visible & both).any()
                    assert (depth_mm[both] <= round(nearer.depth *
                                                    DEPTH_SCALE)).all()
    assert overlaps > 0


def test_toy_dataset_files(tmp_path, toy_root):
    stems = make_toy_depth_dataset(str(tmp_path / 'a'), **TOY)
    assert stems == {
        'train': [f'toy_{i:06d}' for i in range(6)],
        'val': [f'toy_{i:06d}' for i in range(3)]
    }
    for folder in ('images', 'annotations', 'labels'):
        for split, names in stems.items():
            for name in names:
                a = osp.join(tmp_path, 'a', folder, split, f'{name}.png')
                b = osp.join(toy_root, folder, split, f'{name}.png')
                with open(a, 'rb') as fa, open(b, 'rb') as fb:
                    assert fa.read() == fb.read(), a  # same seed: same bytes
    depth = cv2.imread(
        osp.join(toy_root, 'annotations', 'train', 'toy_000000.png'),
        cv2.IMREAD_UNCHANGED)
    assert depth.dtype == np.uint16 and depth.shape == (64, 96)
    other = render_toy_depth_scene(64, 96, toy_depth_rng(1, 'train', 0))
    assert not np.array_equal(other.depth_mm, depth)
    # a smaller rerun removes the files it does not write
    make_toy_depth_dataset(str(tmp_path / 'a'), **dict(TOY, num_train=2))
    assert sorted(os.listdir(tmp_path / 'a' / 'labels' / 'train')) == [
        'toy_000000.png', 'toy_000001.png'
    ]
    os.makedirs(tmp_path / 'foreign' / 'images')
    with pytest.raises(FileExistsError, match='foreign'):
        make_toy_depth_dataset(str(tmp_path / 'foreign'), **TOY)


def _depth_m(path: str) -> np.ndarray:
    """A toy depth PNG in metres, as ``LoadDepthAnnotation(1e-3)`` makes it
    (a float32 product, not a division)."""
    depth = cv2.imread(path, cv2.IMREAD_UNCHANGED).astype(np.float32)
    depth *= 1e-3
    return depth


def _find_offset(crop: np.ndarray, full: np.ndarray) -> tuple:
    """The unique (y, x) where ``crop`` lies in ``full``."""
    h, w = crop.shape[:2]
    found = [(y, x) for y in range(full.shape[0] - h + 1)
             for x in range(full.shape[1] - w + 1)
             if np.array_equal(full[y:y + h, x:x + w], crop)]
    assert len(found) == 1, found
    return found[0]


def test_toy_pipeline_flip_crop(toy_root):
    dataset = ToyDepthSegDataset(
        data_root=toy_root,
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations'),
            dict(type='LoadDepthAnnotation', depth_rescale_factor=1e-3),
            dict(type='RandomFlip', prob=1.0),
            dict(type='RandomCrop', crop_size=(40, 56)),
            dict(type='PackSegInputs')
        ])
    assert len(dataset) == TOY['num_train']
    assert dataset.metainfo['classes'] == TOY_DEPTH_CLASSES
    np.random.seed(0)
    for index in (0, 3):
        packed = dataset[index]
        sample = packed['data_samples']
        assert packed['inputs'].shape == (3, 40, 56)
        assert sample.gt_sem_seg.data.shape == (1, 40, 56)
        assert sample.gt_depth_map.data.shape == (1, 40, 56)
        assert sample.gt_depth_map.data.dtype == torch.float32
        assert sample.flip and sample.flip_direction == 'horizontal'
        info = dataset.get_data_info(index)
        image = cv2.imread(info['img_path'])  # BGR, as LoadImageFromFile
        labels = cv2.imread(info['seg_map_path'], cv2.IMREAD_UNCHANGED)
        depth = _depth_m(info['depth_map_path'])
        # the noisy image fixes the crop offset in the flipped original;
        # labels and depth must be the same crop of their flipped originals
        y, x = _find_offset(packed['inputs'].permute(1, 2, 0).numpy(),
                            image[:, ::-1])
        window = (slice(y, y + 40), slice(x, x + 56))
        assert np.array_equal(sample.gt_sem_seg.data[0].numpy(),
                              labels[:, ::-1][window])
        assert np.array_equal(sample.gt_depth_map.data[0].numpy(),
                              depth[:, ::-1][window])
        # a pixel: output (0, 0) is input (y, W - 1 - x)
        assert sample.gt_depth_map.data[0, 0, 0] == depth[y, 95 - x]
        assert sample.gt_sem_seg.data[0, 0, 0] == labels[y, 95 - x]


def test_resize_moves_depth_in_mmseg_scope(toy_root):
    """mmcv's RandomResize builds its ``Resize`` in the default scope: with
    ``default_scope='mmseg'`` (as in ``mim train mmseg``; the autouse
    fixture) it is mmseg's, which resizes every ``seg_fields`` entry
    (nearest), depth included; mmcv's own resizes ``gt_seg_map`` only."""
    dataset = ToyDepthSegDataset(data_root=toy_root)
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations'),
        dict(type='LoadDepthAnnotation', depth_rescale_factor=1e-3),
        dict(
            type='RandomResize',
            scale=(96, 64),
            ratio_range=(0.5, 0.5),
            keep_ratio=True)
    ]
    results = Compose(pipeline)(dataset.get_data_info(1))
    assert results['img'].shape[:2] == (32, 48)
    assert results['gt_seg_map'].shape == (32, 48)
    assert results['gt_depth_map'].shape == (32, 48)
    depth = _depth_m(dataset.get_data_info(1)['depth_map_path'])
    assert set(np.unique(results['gt_depth_map'])) <= set(np.unique(depth))


def test_nyu_depth_seg_labels(toy_root):
    dataset = NYUDepthSegDataset(
        data_root=toy_root,
        data_prefix=dict(
            img_path='images/val',
            depth_map_path='annotations/val',
            seg_map_path='labels/val'),
        img_suffix='.png',
        pipeline=[dict(type='LoadAnnotations')])
    assert len(dataset.metainfo['classes']) == 40
    info = dataset.get_data_info(0)
    assert info['seg_map_path'] == osp.join(toy_root, 'labels', 'val',
                                            'toy_000000.png')
    assert info['depth_map_path'] == osp.join(toy_root, 'annotations', 'val',
                                              'toy_000000.png')
    raw = cv2.imread(info['seg_map_path'], cv2.IMREAD_UNCHANGED)
    loaded = dataset[0]['gt_seg_map']  # reduce_zero_label: 0 -> 255
    assert (loaded[raw == 0] == 255).all()
    assert (loaded[raw > 0] == raw[raw > 0] - 1).all()
    assert dataset._get_category_id_from_filename('living_room_0012.jpg') \
        == 2


def test_random_gamma():
    img = np.array([[[0, 64, 255]]], dtype=np.uint8)
    out = RandomGamma(gamma_range=(2.0, 2.0), prob=1.0)(dict(img=img))['img']
    assert out.dtype == np.uint8
    assert out.tolist() == [[[0, 16, 255]]]  # 255 * (64 / 255) ** 2 = 16.06
    same = RandomGamma(prob=0.0)(dict(img=img))['img']
    assert same is img
    with pytest.raises(ValueError, match='gamma_range'):
        RandomGamma(gamma_range=(0.0, 1.0))


# --------------------------------------------------------------------------
# CutMix-style patches and the data preprocessor
# --------------------------------------------------------------------------

B, H, W = 3, 20, 24


def _coded_batch():
    """Images whose value codes (image, position); depth and labels of
    their own pattern."""
    code = (torch.arange(B)[:, None, None] * 1000 +
            torch.arange(H * W).view(1, H, W)).float()  # (B, H, W)
    inputs = torch.stack([code, code + 0.25, code + 0.5], dim=1)
    labels = (torch.arange(B)[:, None, None] * 37 +
              torch.arange(H)[None, :, None] * 5 +
              torch.arange(W)[None, None, :] * 3) % 250
    samples = []
    for i in range(B):
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=labels[i][None].long())
        sample.gt_depth_map = PixelData(data=code[i][None] / 100 + 0.01)
        samples.append(sample)
    return inputs, labels, code, samples


def test_cutmix_pastes_same_source_and_place():
    inputs, labels, code, samples = _coded_batch()
    cutmix = CutMixPatches(
        prob=1.0, num_patches=(1, 4), patch_ratio=(0.2, 0.5))
    torch.manual_seed(3)
    patches = cutmix.sample_patches(B, H, W)
    torch.manual_seed(3)
    out, samples = cutmix(inputs, samples)
    assert out.shape == inputs.shape
    assert {p[0] for p in patches} == set(range(B))  # prob 1: every image
    expected_source = torch.arange(B)[:, None, None].repeat(1, H, W)
    for target, source, y, x, side in patches:
        assert source != target
        assert 1 <= side <= H
        expected_source[target, y:y + side, x:x + side] = source
    source = torch.div(out[:, 0], 1000, rounding_mode='floor').long()
    assert torch.equal(source, expected_source)
    # the same place: the position code is the pixel's own
    assert torch.equal(out[:, 0] % 1000, code[0][None].expand(B, H, W))
    assert torch.equal(out[:, 1] - out[:, 0], torch.full((B, H, W), 0.25))
    # depth and labels come from the same source image, same place
    depth = torch.stack([s.gt_depth_map.data[0] for s in samples])
    seg = torch.stack([s.gt_sem_seg.data[0] for s in samples])
    assert torch.allclose(depth, out[:, 0] / 100 + 0.01)
    assert torch.equal(seg, labels.gather(0, source))
    assert (source != torch.arange(B)[:, None, None]).any(dim=(1, 2)).all()


def test_cutmix_identity():
    inputs, labels, code, samples = _coded_batch()
    out, samples = CutMixPatches(prob=0.0)(inputs, samples)
    assert out is inputs
    assert torch.equal(
        torch.stack([s.gt_sem_seg.data[0] for s in samples]), labels)
    one, _ = CutMixPatches(prob=1.0)(inputs[:1], samples[:1])
    assert torch.equal(one, inputs[:1])
    with pytest.raises(ValueError, match='num_patches'):
        CutMixPatches(num_patches=(0, 4))
    del samples[1].gt_depth_map
    with pytest.raises(ValueError, match='gt_depth_map'):
        CutMixPatches(prob=1.0)(inputs, samples)


def _sample(height: int, width: int, seed: int) -> SegDataSample:
    gen = torch.Generator().manual_seed(seed)
    sample = SegDataSample()
    sample.gt_sem_seg = PixelData(
        data=torch.randint(0, 5, (1, height, width), generator=gen))
    sample.gt_depth_map = PixelData(
        data=torch.rand((1, height, width), generator=gen) * 10 + 0.5)
    return sample


def test_preprocessor_pads_depth_with_zero():
    preprocessor = MODELS.build(
        dict(
            type='MultiTaskSegDataPreProcessor',
            mean=[0.0, 0.0, 0.0],
            std=[1.0, 1.0, 1.0],
            size_divisor=16,
            pad_val=-1,
            seg_pad_val=255,
            batch_augments=[dict(type='CutMixPatches', prob=0.0)]))
    assert isinstance(preprocessor, MultiTaskSegDataPreProcessor)
    assert isinstance(preprocessor.joint_batch_augments[0], CutMixPatches)
    sizes = [(20, 30), (28, 22)]
    samples = [_sample(h, w, i) for i, (h, w) in enumerate(sizes)]
    originals = [(s.gt_sem_seg.data.clone(), s.gt_depth_map.data.clone())
                 for s in samples]
    inputs = [torch.full((3, h, w), 7, dtype=torch.uint8) for h, w in sizes]
    out = preprocessor(dict(inputs=inputs, data_samples=samples), True)
    assert out['inputs'].shape == (2, 3, 32, 32)
    for (h, w), sample, (seg, depth) in zip(sizes, out['data_samples'],
                                            originals):
        for name, original, pad in (('gt_sem_seg', seg, 255),
                                    ('gt_depth_map', depth, 0)):
            data = sample.get(name).data
            assert data.shape == (1, 32, 32)
            assert torch.equal(data[:, :h, :w], original)
            pad_mask = torch.ones(32, 32, dtype=torch.bool)
            pad_mask[:h, :w] = False
            assert (data[0][pad_mask] == pad).all(), name
        image = out['inputs'][sizes.index((h, w))]
        assert (image[:, :h, :w] == 7).all() and (image[:, h:, :] == -1).all()


def test_preprocessor_augments_in_training_only():
    preprocessor = MODELS.build(
        dict(
            type='MultiTaskSegDataPreProcessor',
            size=(16, 16),
            batch_augments=[
                dict(type='CutMixPatches', prob=1.0, patch_ratio=(0.5, 0.5))
            ]))
    inputs = [torch.full((3, 16, 16), i, dtype=torch.uint8) for i in range(2)]

    def batch():
        return dict(
            inputs=[x.clone() for x in inputs],
            data_samples=[_sample(16, 16, i) for i in range(2)])

    torch.manual_seed(0)
    trained = preprocessor(batch(), True)
    for i, sample in enumerate(trained['data_samples']):
        pasted = trained['inputs'][i, 0] != i
        assert pasted.sum() >= 64  # at least one 8 x 8 patch
        other = _sample(16, 16, 1 - i)
        assert torch.equal(sample.gt_depth_map.data[0][pasted],
                           other.gt_depth_map.data[0][pasted])
    tested = preprocessor(batch(), False)
    assert torch.equal(tested['inputs'], torch.stack(inputs).float())
    assert torch.equal(tested['data_samples'][0].gt_depth_map.data,
                       _sample(16, 16, 0).gt_depth_map.data)



def test_toy_batch_end_to_end(toy_root):
    """Dataset, train pipeline, collate and preprocessor with CutMix, as a
    toy training config would chain them."""
    from mmengine.dataset import pseudo_collate
    dataset = ToyDepthSegDataset(
        data_root=toy_root,
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations'),
            dict(type='LoadDepthAnnotation', depth_rescale_factor=1e-3),
            dict(
                type='RandomResize',
                scale=(96, 64),
                ratio_range=(0.75, 1.25),
                keep_ratio=True),
            dict(type='RandomCrop', crop_size=(48, 48)),
            dict(type='RandomFlip', prob=0.5),
            dict(type='PhotoMetricDistortion'),
            dict(type='RandomGamma'),
            dict(type='PackSegInputs')
        ])
    preprocessor = MODELS.build(
        dict(
            type='MultiTaskSegDataPreProcessor',
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            bgr_to_rgb=True,
            size=(48, 48),
            batch_augments=[dict(type='CutMixPatches', prob=1.0)]))
    np.random.seed(1)
    torch.manual_seed(1)
    batch = preprocessor(pseudo_collate([dataset[i] for i in range(4)]),
                         True)
    assert batch['inputs'].shape == (4, 3, 48, 48)
    for sample in batch['data_samples']:
        seg, depth = sample.gt_sem_seg.data, sample.gt_depth_map.data
        assert seg.shape == depth.shape == (1, 48, 48)
        assert depth.dtype == torch.float32 and seg.dtype == torch.int64
        # sky (label 1) and only sky has no depth; nothing is ignored
        assert torch.equal(depth == 0, seg == 1)
        assert depth.max() <= 50.001 and seg.max() < len(TOY_DEPTH_CLASSES)

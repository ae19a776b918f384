# Copyright (c) mmcast contributors. All rights reserved.
"""VFM teachers: box-prompted Grounding-DINO + SAM 2, ensembles, fusion.

Everything runs offline on tiny, randomly initialised but real models
(mmdet's GroundingDINO with a 1-layer BERT, a shrunk SAM2Base) written by
``mmcast.toy.tiny_teachers``.
"""
import copy
import os.path as osp

import numpy as np
import pytest
import torch


import mmcast  # noqa: E402,F401
from mmdet.models.detectors.base import BaseDetector  # noqa: E402
from mmdet.registry import MODELS  # noqa: E402
from mmdet.structures import DetDataSample  # noqa: E402
from mmdet.utils import register_all_modules  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.dataset import Compose, pseudo_collate  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402
from mmengine.runner import load_checkpoint  # noqa: E402
from mmengine.structures import InstanceData  # noqa: E402

from mmcast.models.teachers import (BoxPromptedTeacher,  # noqa: E402
                                    TeacherEnsemble, fuse_instances)
from mmcast.models.teachers.teacher_ensemble import mask_iou  # noqa: E402
from mmcast.models.teachers.utils import build_label_mapping  # noqa: E402
from mmcast.toy.tiny_teachers import (  # noqa: E402
    CITYSCAPES_CLASSES, build_tiny_teacher_assets,
    tiny_box_prompted_teacher_cfg)

register_all_modules(init_default_scope=False)

IMAGE_SHAPES = [(120, 250), (97, 203)]  # (h, w), deliberately odd sizes
TEST_PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(192, 96), keep_ratio=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor')),
]


@pytest.fixture(scope='module', autouse=True)
def _mmdet_scope():
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield


@pytest.fixture(scope='module')
def assets(tmp_path_factory):
    return build_tiny_teacher_assets(str(tmp_path_factory.mktemp('tiny')))


def _batch(root, shapes) -> dict:
    """A test batch of images of the (h, w) ``shapes``, written to ``root``."""
    import cv2
    pipeline = Compose(TEST_PIPELINE)
    samples = []
    for i, (h, w) in enumerate(shapes):
        rng = np.random.RandomState(i)
        img = np.full((h, w, 3), 90, np.uint8)
        img[h // 4:3 * h // 4, w // 5:w // 2] = (40, 60, 200)
        img += rng.randint(0, 20, img.shape).astype(np.uint8)
        path = str(root / f'img{i}.png')
        cv2.imwrite(path, img)
        samples.append(pipeline(dict(img_path=path, img_id=i)))
    return pseudo_collate(samples)


@pytest.fixture(scope='module')
def batch(tmp_path_factory):
    return _batch(tmp_path_factory.mktemp('imgs'), IMAGE_SHAPES)


def build_teacher(assets, ckpt=True, **kwargs):
    cfg = tiny_box_prompted_teacher_cfg(assets['root'], **kwargs)
    model = MODELS.build(cfg)
    if ckpt:
        load_checkpoint(
            model, assets['teacher_checkpoint'], map_location='cpu',
            logger='silent')
    return model.eval()


def run(model, batch):
    return model.test_step(copy.deepcopy(batch))


def first_image(batch):
    return {k: v[:1] for k, v in batch.items()}


# ---------------------------------------------------------------------------
# BoxPromptedTeacher


def test_box_prompted_teacher_predict(assets, batch):
    teacher = build_teacher(assets)
    assert isinstance(teacher, BoxPromptedTeacher)
    assert isinstance(teacher, BaseDetector)
    assert teacher.text_prompted
    outs = run(teacher, batch)
    assert len(outs) == 2
    for out, (h, w) in zip(outs, IMAGE_SHAPES):
        pred = out.pred_instances
        assert tuple(out.ori_shape) == (h, w)
        n = len(pred)
        assert 0 < n <= 20  # calibrated tiny detector: scores above 0.3
        assert pred.masks.shape == (n, h, w)
        assert pred.masks.dtype == torch.bool
        assert pred.labels.dtype == torch.long
        assert ((pred.labels >= 0) & (pred.labels < 8)).all()
        assert (pred.scores > 0.3).all()
        assert pred.bboxes.shape == (n, 4)
        assert (pred.bboxes[:, 0::2] <= w).all()
        assert (pred.bboxes[:, 1::2] <= h).all()
        assert (pred.bboxes >= 0).all()
        assert pred.masks.any()  # SAM 2 produced some foreground
    # deterministic
    again = run(teacher, batch)
    for a, b in zip(outs, again):
        assert torch.equal(a.pred_instances.masks, b.pred_instances.masks)


def test_labels_follow_dataset_class_order(assets, batch):
    """Same detector and prompt; only the dataset's class order differs."""
    ref = run(build_teacher(assets), batch)
    reordered = tuple(reversed(CITYSCAPES_CLASSES))
    teacher = build_teacher(
        assets, classes=reordered, detector_classes=CITYSCAPES_CLASSES)
    outs = run(teacher, batch)
    for a, b in zip(ref, outs):
        pa, pb = a.pred_instances, b.pred_instances
        assert torch.equal(pa.scores, pb.scores)
        assert torch.equal(pa.masks, pb.masks)
        assert torch.equal(pb.labels, 7 - pa.labels)
        names_a = [CITYSCAPES_CLASSES[i] for i in pa.labels]
        names_b = [reordered[i] for i in pb.labels]
        assert names_a == names_b


def test_class_name_map_drops_unmapped(assets, batch):
    # the detector is prompted with the map's keys, in that order
    cmap = {'car': 'car', 'person': 'person', 'bus': 'bus'}
    teacher = build_teacher(assets, class_name_map=cmap)
    assert teacher.detector_classes == ('car', 'person', 'bus')
    assert teacher.label_mapping == [2, 0, 4]
    for out in run(teacher, batch):
        assert set(out.pred_instances.labels.tolist()) <= {0, 2, 4}


def test_chunked_prompt_runs_image_by_image(assets, batch):
    """Long class lists: mmdet's chunked prompt, batch of 2 images."""
    cfg = tiny_box_prompted_teacher_cfg(assets['root'])
    cfg['detector']['test_cfg']['chunked_size'] = 3
    teacher = MODELS.build(cfg)
    load_checkpoint(teacher, assets['teacher_checkpoint'], map_location='cpu',
                    logger='silent')
    for out, (h, w) in zip(run(teacher.eval(), batch), IMAGE_SHAPES):
        pred = out.pred_instances
        assert pred.masks.shape[1:] == (h, w)
        assert ((pred.labels >= 0) & (pred.labels < 8)).all()
        assert len(pred) > 0


def _sam2_calls(teacher) -> dict:
    """Counts of SAM 2's image-encoder and mask-decoder calls, updated as
    the teacher runs."""
    calls = dict(encoder=0, decoder=0)
    for part, name in ((teacher.sam2_model.image_encoder, 'encoder'),
                       (teacher.sam2_model.sam_mask_decoder, 'decoder')):
        part.register_forward_hook(
            lambda *_, name=name: calls.__setitem__(name, calls[name] + 1))
    return calls


@pytest.mark.parametrize('box_batch_size', [64, 3])
def test_sam2_prompts_a_batch_at_once_as_each_image_alone(
        assets, tmp_path, box_batch_size):
    """The boxes of every image of a batch go through one SAM 2 encoder
    call and one mask-decoder call (``box_batch_size`` boxes at a time).
    Given the same boxes, each image gets the masks it gets alone, bit for
    bit; end to end, images of one size (a dataset's) get the masks and
    labels a pseudo-label file holds, bit for bit, and the detector's boxes
    (SAM 2's prompts) and scores within float rounding of its batched
    convolutions (bit for bit on some CPUs, a last-bit difference on
    others)."""
    teacher = build_teacher(assets)
    teacher.box_batch_size = box_batch_size
    calls = _sam2_calls(teacher)
    batch = _batch(tmp_path, [IMAGE_SHAPES[0]] * 3)
    together = run(teacher, batch)
    boxes = [out.pred_instances.bboxes for out in together]
    num_boxes = sum(len(b) for b in boxes)
    assert num_boxes > box_batch_size or box_batch_size == 64
    assert calls == dict(encoder=1, decoder=-(-num_boxes // box_batch_size))
    for i, out in enumerate(together):
        (alone, ) = run(teacher, {k: v[i:i + 1] for k, v in batch.items()})
        for key in ('masks', 'labels'):
            assert torch.equal(out.pred_instances[key],
                               alone.pred_instances[key]), (i, key)
        assert torch.allclose(out.pred_instances.scores,
                              alone.pred_instances.scores, rtol=0, atol=1e-6)
        assert torch.allclose(out.pred_instances.bboxes,
                              alone.pred_instances.bboxes, atol=1e-3)

    images = [np.asarray(torch.randint(0, 256, (h, w, 3), dtype=torch.uint8,
                                       generator=torch.Generator().manual_seed(
                                           i)))
              for i, (h, w) in enumerate(IMAGE_SHAPES + [(64, 80)])]
    shapes = [image.shape[:2] for image in images]
    masks = teacher.segment_boxes(teacher.embed_images(images), shapes,
                                  boxes)
    for image, shape, image_boxes, got in zip(images, shapes, boxes, masks):
        (want, ) = teacher.segment_boxes(teacher.embed_images([image]),
                                         [shape], [image_boxes])
        assert got.shape == (len(image_boxes), *shape)
        assert torch.equal(got, want)


def test_image_from_inputs_matches_shapes(assets, batch):
    teacher = build_teacher(assets, image_source='inputs')
    for out, (h, w) in zip(run(teacher, batch), IMAGE_SHAPES):
        assert out.pred_instances.masks.shape[1:] == (h, w)


def test_no_detection_gives_empty_masks(assets, batch):
    teacher = build_teacher(assets, score_thr=1.1)
    for out, (h, w) in zip(run(teacher, batch), IMAGE_SHAPES):
        assert len(out.pred_instances) == 0
        assert out.pred_instances.masks.shape == (0, h, w)


def test_loss_trains_the_detector_only(assets, batch):
    teacher = build_teacher(assets)
    teacher.train()
    data = copy.deepcopy(batch)
    for ds in data['data_samples']:
        h, w = ds.img_shape
        # a 'rider' (dataset label 1) and a 'car' (2)
        ds.gt_instances = InstanceData(
            bboxes=torch.tensor([[2., 3., w / 2, h / 2], [w / 3, 5., w - 1,
                                                          h - 2]]),
            labels=torch.tensor([1, 2]))
    data = teacher.data_preprocessor(data, True)
    losses = teacher.loss(data['inputs'], data['data_samples'])
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    assert teacher.detector.bbox_head.cls_branches[0].bias.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.sam2_model.parameters())
    assert not teacher.sam2_model.training


def test_tiny_checkpoint_is_finite(assets):
    state = torch.load(assets['teacher_checkpoint'],
                       map_location='cpu')['state_dict']
    for k, v in state.items():
        if v.is_floating_point():
            assert torch.isfinite(v).all() and v.abs().max() < 1e4, k


def test_sam2_checkpoint_is_loaded(assets):
    teacher = build_teacher(assets, ckpt=False)
    ref = torch.load(assets['sam2_checkpoint'], map_location='cpu')['model']
    own = teacher.sam2_model.state_dict()
    assert set(ref) == set(own)
    assert all(torch.equal(ref[k], own[k]) for k in ref)
    assert not any(p.requires_grad for p in teacher.sam2_model.parameters())
    teacher.train()
    assert not teacher.sam2_model.training


def test_detector_only_checkpoint_loads_into_teacher(assets, tmp_path):
    source = build_teacher(assets)
    det_ckpt = str(tmp_path / 'gdino.pth')
    torch.save({'state_dict': source.detector.state_dict()}, det_ckpt)
    teacher = build_teacher(assets, ckpt=False)
    sam_before = copy.deepcopy(teacher.sam2_model.state_dict())
    load_checkpoint(teacher, det_ckpt, map_location='cpu', strict=True,
                    logger='silent')
    for k, v in source.detector.state_dict().items():
        assert torch.equal(teacher.detector.state_dict()[k], v), k
    for k, v in sam_before.items():
        assert torch.equal(teacher.sam2_model.state_dict()[k], v), k
    # the same through `detector_checkpoint`
    t2 = build_teacher(assets, ckpt=False, detector_checkpoint=det_ckpt)
    for k, v in source.detector.state_dict().items():
        assert torch.equal(t2.detector.state_dict()[k], v), k


def test_missing_bert_dir_is_a_clear_error(assets, tmp_path):
    missing = str(tmp_path / 'no-bert-here')
    cfg = tiny_box_prompted_teacher_cfg(assets['root'])
    cfg['detector']['language_model']['name'] = missing
    with pytest.raises(FileNotFoundError) as err:
        MODELS.build(cfg)
    assert missing in str(err.value)
    assert 'huggingface-cli download bert-base-uncased' in str(err.value)


def test_missing_sam2_checkpoint_is_a_clear_error(assets, tmp_path):
    missing = str(tmp_path / 'sam2.1_hiera_large.pt')
    cfg = tiny_box_prompted_teacher_cfg(
        assets['root'], sam2_checkpoint=missing)
    with pytest.raises(FileNotFoundError) as err:
        MODELS.build(cfg)
    assert missing in str(err.value)
    assert 'sam2.1_hiera_large.pt' in str(err.value)


def test_real_size_config_reports_missing_local_files(repo_root, tmp_path):
    cfg = Config.fromfile(
        osp.join(repo_root, 'configs/mmcast/teachers/'
                 'grounding_dino_sam2_cityscapes.py'))
    assert cfg.model.detector_cfg_options['language_model.name'] == \
        'checkpoints/bert-base-uncased'
    missing = str(tmp_path / 'bert-base-uncased')
    cfg.model.detector_cfg_options['language_model.name'] = missing
    with pytest.raises(FileNotFoundError, match=missing):
        MODELS.build(cfg.model)


# ---------------------------------------------------------------------------
# fusion


def _inst(boxes, labels, scores, shape=(20, 30)):
    """Instances with box-shaped masks."""
    h, w = shape
    masks = torch.zeros((len(boxes), h, w), dtype=torch.bool)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        masks[i, y1:y2, x1:x2] = True
    return InstanceData(
        bboxes=torch.tensor(boxes, dtype=torch.float).reshape(-1, 4),
        labels=torch.tensor(labels, dtype=torch.long),
        scores=torch.tensor(scores, dtype=torch.float),
        masks=masks)


def test_mask_iou():
    a = _inst([(0, 0, 10, 10), (0, 0, 5, 10)], [0, 0], [1, 1])
    iou = mask_iou(a.masks, a.masks, chunk=7)
    assert torch.allclose(iou, torch.tensor([[1., .5], [.5, 1.]]))


def test_fuse_mask_nms():
    m1 = _inst([(0, 0, 10, 10), (20, 10, 30, 20)], [0, 1], [0.9, 0.8])
    # duplicate of m1[0] (IoU 0.8), same box but another class, disjoint one
    m2 = _inst([(0, 0, 10, 8), (0, 0, 10, 10), (12, 0, 18, 6)], [0, 2, 0],
               [0.95, 0.7, 0.6])
    out = fuse_instances([m1, m2], type='mask_nms', iou_thr=0.5)
    assert len(out) == 4
    assert out.scores.tolist() == pytest.approx([0.95, 0.8, 0.7, 0.6])
    assert out.labels.tolist() == [0, 1, 2, 0]
    # the kept duplicate is the higher-scoring one, unchanged
    assert torch.equal(out.masks[0], m2.masks[0])
    assert out.bboxes[0].tolist() == [0, 0, 10, 8]


def test_fuse_weighted():
    m1 = _inst([(0, 0, 10, 10)], [0], [0.6])
    m2 = _inst([(0, 0, 10, 8), (20, 10, 30, 20)], [0, 0], [0.9, 0.5])
    m3 = _inst([(0, 0, 8, 10)], [0], [0.3])
    out = fuse_instances([m1, m2, m3], type='weighted', iou_thr=0.5)
    assert len(out) == 2  # one cluster of three, one lone instance
    assert out.scores.tolist() == pytest.approx([0.6, 0.5])
    # weights .6/.9/.3 of 1.8: pixels covered by m1+m2 (1.5) or m1+m3
    # (0.9, = half) or all three are kept; m2+m3 without m1 cannot happen
    expected = torch.zeros(20, 30, dtype=torch.bool)
    expected[0:10, 0:10] = True
    expected[8:10, 8:10] = False  # only m1 (0.6/1.8 < .5)
    assert torch.equal(out.masks[0], expected)
    assert out.bboxes[0].tolist() == [0, 0, 10, 10]
    assert out.bboxes[1].tolist() == [20, 10, 30, 20]  # lone: unchanged
    mx = fuse_instances([m1, m2, m3], type='weighted', score_agg='max')
    assert mx.scores.tolist() == pytest.approx([0.9, 0.5])


def test_fuse_empty_and_max_per_img():
    empty = _inst([], [], [])
    out = fuse_instances([empty, empty])
    assert len(out) == 0 and out.masks.shape == (0, 20, 30)
    m = _inst([(0, 0, 5, 5), (10, 0, 15, 5), (20, 0, 25, 5)], [0, 0, 1],
              [0.5, 0.9, 0.7])
    out = fuse_instances([m, empty], max_per_img=2)
    assert out.scores.tolist() == pytest.approx([0.9, 0.7])
    with pytest.raises(ValueError):
        fuse_instances([m], type='wbf')


def test_label_mapping():
    src = ('person', 'bicycle', 'car', 'dog')
    dst = ('person', 'rider', 'car', 'bicycle')
    assert build_label_mapping(src, dst) == [0, 3, 2, -1]
    assert build_label_mapping(src, dst, {'car': 'car', 'dog': None}) == \
        [-1, -1, 2, -1]
    with pytest.raises(ValueError, match='not dataset classes'):
        build_label_mapping(src, dst, {'car': 'truck'})


# ---------------------------------------------------------------------------
# TeacherEnsemble


@MODELS.register_module(force=True)
class _FixedTeacher(BaseDetector):
    """Returns given instances (its own label order) for every image."""

    def __init__(self, boxes, labels, scores, classes=None,
                 data_preprocessor=None):
        super().__init__(data_preprocessor=data_preprocessor)
        self.boxes, self.labels, self.scores = boxes, labels, scores
        if classes is not None:
            self.classes = tuple(classes)

    def predict(self, batch_inputs, batch_data_samples, rescale=True):
        for ds in batch_data_samples:
            ds.pred_instances = _inst(self.boxes, self.labels, self.scores,
                                      ds.ori_shape)
        return batch_data_samples

    def loss(self, *args):
        raise NotImplementedError

    def _forward(self, *args):
        raise NotImplementedError

    def extract_feat(self, *args):
        raise NotImplementedError


def _fixed_batch():
    sample = DetDataSample(
        metainfo=dict(ori_shape=(20, 30), img_shape=(20, 30),
                      scale_factor=(1., 1.)))
    return dict(inputs=[torch.zeros(3, 20, 30, dtype=torch.uint8)],
                data_samples=[sample])


def test_ensemble_fuses_and_maps_classes():
    dataset_classes = ('person', 'rider', 'car')
    coco_like = dict(
        model=dict(
            type='_FixedTeacher',
            # car duplicate of member 1's car, a dog (unmapped), a person
            boxes=[(0, 0, 10, 10), (20, 0, 30, 10), (0, 12, 10, 20)],
            labels=[2, 5, 0],
            scores=[0.6, 0.99, 0.4]),
        classes=('person', 'bicycle', 'car', 'motorcycle', 'bus', 'dog'),
        class_name_map={'person': 'person', 'car': 'car'})
    own_order = dict(
        type='_FixedTeacher',
        boxes=[(0, 0, 10, 9), (20, 12, 30, 20)],
        labels=[2, 1],
        scores=[0.8, 0.65])
    for fusion, car_score in [(dict(type='mask_nms'), 0.8),
                              (dict(type='weighted'), 0.7)]:
        ens = MODELS.build(
            dict(
                type='TeacherEnsemble',
                classes=dataset_classes,
                teachers=[own_order, coco_like],
                fusion=dict(iou_thr=0.5, **fusion)))
        assert isinstance(ens, TeacherEnsemble)
        assert ens.label_mappings == [None, [0, -1, 2, -1, -1, -1]]
        pred = ens.test_step(_fixed_batch())[0].pred_instances
        assert len(pred) == 3  # car (fused), rider, person; no dog
        assert pred.labels.tolist() == [2, 1, 0]
        assert pred.scores.tolist() == pytest.approx([car_score, 0.65, 0.4])


def test_vote_counts_the_members_that_can_name_the_class():
    """``score_agg='vote'``: a cluster scores the mean over the members
    that can predict its class of each one's best score, so low-scored
    duplicate queries do not dilute it (they do the plain mean) and a class
    one member cannot name (COCO has no rider) keeps its score."""
    dataset_classes = ('person', 'rider', 'car')
    coco_like = dict(
        model=dict(
            type='_FixedTeacher',
            # a car and two low-scored duplicate queries of it, a person
            boxes=[(0, 0, 10, 10)] * 3 + [(0, 12, 10, 20)],
            labels=[2, 2, 2, 0],
            scores=[0.9, 0.05, 0.04, 0.7]),
        classes=('person', 'bicycle', 'car'),
        class_name_map={'person': 'person', 'car': 'car'})
    own_order = dict(
        type='_FixedTeacher',
        boxes=[(0, 0, 10, 9), (20, 12, 30, 20)],
        labels=[2, 1],
        scores=[0.8, 0.6])
    scores = {}
    for agg in ('mean', 'vote'):
        ens = MODELS.build(
            dict(
                type='TeacherEnsemble',
                classes=dataset_classes,
                teachers=[own_order, coco_like],
                fusion=dict(type='weighted', iou_thr=0.5, score_agg=agg)))
        assert ens.views_per_label == {0: 2, 1: 1, 2: 2}
        pred = ens.test_step(_fixed_batch())[0].pred_instances
        scores[agg] = dict(zip(pred.labels.tolist(), pred.scores.tolist()))
    # car: (0.9 + 0.8) / 2 against the mean of its four members
    assert scores['vote'][2] == pytest.approx(0.85)
    assert scores['mean'][2] == pytest.approx((0.9 + 0.8 + 0.05 + 0.04) / 4)
    assert scores['vote'][1] == pytest.approx(0.6)  # only one can name it
    assert scores['vote'][0] == pytest.approx(0.35)  # one of two found it
    same_classes = MODELS.build(
        dict(type='TeacherEnsemble', classes=None,
             teachers=[own_order, own_order]))
    assert same_classes.views_per_label is None


def test_ensemble_of_two_tiny_teachers(assets, batch, tmp_path):
    # a second, different member: the detector-only checkpoint of a copy
    # whose Grounding-DINO weights are perturbed
    other = build_teacher(assets)
    with torch.no_grad():
        for p in other.detector.parameters():
            p.add_(0.05 * torch.randn_like(p))
    other_ckpt = str(tmp_path / 'other.pth')
    torch.save({'state_dict': other.state_dict()}, other_ckpt)
    member_cfg = tiny_box_prompted_teacher_cfg(assets['root'], max_per_img=8)
    ens = MODELS.build(
        dict(
            type='TeacherEnsemble',
            classes=CITYSCAPES_CLASSES,
            teachers=[
                dict(model=member_cfg,
                     checkpoint=assets['teacher_checkpoint']),
                dict(model=member_cfg, checkpoint=other_ckpt),
            ],
            fusion=dict(type='weighted', iou_thr=0.5))).eval()
    batch = first_image(batch)
    singles = [run(ens.teachers[0], batch), run(ens.teachers[1], batch)]
    outs = run(ens, batch)
    for i, (out, (h, w)) in enumerate(zip(outs, IMAGE_SHAPES[:1])):
        pred = out.pred_instances
        assert pred.masks.shape[1:] == (h, w)
        assert pred.masks.dtype == torch.bool
        expected = fuse_instances(
            [s[i].pred_instances for s in singles], type='weighted')
        assert torch.equal(pred.masks, expected.masks)
        assert torch.allclose(pred.scores, expected.scores)
        assert 0 < len(pred) <= sum(len(s[i].pred_instances)
                                    for s in singles)
    # predict() on an already preprocessed batch gives the same result
    data = ens.data_preprocessor(copy.deepcopy(batch), False)
    outs2 = ens.predict(data['inputs'], data['data_samples'])
    for a, b in zip(outs, outs2):
        assert torch.equal(a.pred_instances.labels, b.pred_instances.labels)
        assert torch.allclose(a.pred_instances.scores,
                              b.pred_instances.scores, atol=1e-4)


def test_ensemble_of_identical_members_is_self_fusion(assets, batch):
    member = dict(
        model=tiny_box_prompted_teacher_cfg(assets['root'], max_per_img=8),
        checkpoint=assets['teacher_checkpoint'])
    ens = MODELS.build(
        dict(type='TeacherEnsemble', classes=CITYSCAPES_CLASSES,
             teachers=[member, member], fusion=dict(type='mask_nms'))).eval()
    batch = first_image(batch)
    single = run(ens.teachers[0], batch)
    for out, ref in zip(run(ens, batch), single):
        expected = fuse_instances([ref.pred_instances], type='mask_nms')
        assert torch.equal(out.pred_instances.masks, expected.masks)
        assert torch.equal(out.pred_instances.labels, expected.labels)


def test_teacher_at_two_checkpoints_is_one_frozen_ensemble(assets, batch,
                                                           tmp_path):
    """Stage 2's ``teacher_checkpoint=[θ_T', θ_T'']``: θ_T' as the teacher's
    own checkpoint, θ_T'' as stage 1b writes it (a ``CASTDistiller``'s, the
    teacher under ``student.``). One frozen ``TeacherEnsemble`` holds each
    checkpoint's weights and predicts their fusion; a ``TeacherEnsemble``
    member given the stage-1b checkpoint loads it too; checkpoints of other
    classes are refused."""
    from mmcast.models.teachers import build_frozen_teacher
    from mmcast.models.teachers.frozen_teacher import \
        CHECKPOINT_ENSEMBLE_FUSION
    cfg = tiny_box_prompted_teacher_cfg(assets['root'], max_per_img=8)
    adapted, selftrained = build_teacher(assets), build_teacher(assets)
    with torch.no_grad():
        for p in selftrained.detector.parameters():
            p.add_(0.05 * torch.randn_like(p))
    meta = dict(dataset_meta=dict(classes=list(CITYSCAPES_CLASSES)))
    paths = [str(tmp_path / 'iter_300.pth'), str(tmp_path / 'iter_500.pth')]
    torch.save({'state_dict': adapted.state_dict(), 'meta': meta}, paths[0])
    torch.save({'state_dict': {f'student.{k}': v for k, v in
                               selftrained.state_dict().items()},
                'meta': meta}, paths[1])

    ens = build_frozen_teacher(cfg, paths)
    assert isinstance(ens, TeacherEnsemble) and not ens.training
    assert not any(p.requires_grad for p in ens.parameters())
    assert ens.teacher_classes == tuple(CITYSCAPES_CLASSES)
    assert ens.label_mappings == [list(range(len(CITYSCAPES_CLASSES)))] * 2
    for member, ref in zip(ens.teachers, (adapted, selftrained)):
        theirs = ref.state_dict()
        for key, value in member.state_dict().items():
            assert torch.equal(value, theirs[key]), key
    batch = first_image(batch)
    singles = [run(m, batch)[0].pred_instances for m in ens.teachers]
    assert not torch.equal(singles[0].scores, singles[1].scores)
    fused = run(ens, batch)[0].pred_instances
    expected = fuse_instances(singles, **CHECKPOINT_ENSEMBLE_FUSION)
    assert torch.equal(fused.masks, expected.masks)
    assert torch.allclose(fused.scores, expected.scores)
    # the fusion is part of the pseudo-labels' identity
    from mmcast.pseudo_labels.staleness import labeling_header
    other_fusion = build_frozen_teacher(cfg, paths,
                                        fusion=dict(type='mask_nms'))
    unlabeled = str(tmp_path / 'unlabeled.json')
    with open(unlabeled, 'w') as f:
        f.write('{}')
    headers = [labeling_header(unlabeled, {}, live_teacher=t)
               for t in (ens, other_fusion)]
    assert headers[0]['checkpoint_sha256'] == \
        headers[1]['checkpoint_sha256']
    assert '"score_agg": "vote"' in headers[0]['teacher']
    assert headers[0]['teacher'] != headers[1]['teacher']
    # one checkpoint is the teacher alone
    assert isinstance(build_frozen_teacher(cfg, paths[1:]), BoxPromptedTeacher)

    member = MODELS.build(
        dict(type='TeacherEnsemble', classes=CITYSCAPES_CLASSES,
             teachers=[dict(model=cfg, checkpoint=paths[1])])).teachers[0]
    for key, value in selftrained.state_dict().items():
        assert torch.equal(member.state_dict()[key], value), key

    other = str(tmp_path / 'other_classes.pth')
    torch.save({'state_dict': adapted.state_dict(),
                'meta': dict(dataset_meta=dict(
                    classes=list(CITYSCAPES_CLASSES)[::-1]))}, other)
    with pytest.raises(ValueError, match='different classes'):
        build_frozen_teacher(cfg, [paths[0], other])


# ---------------------------------------------------------------------------
# configs


@pytest.mark.parametrize('name', [
    'teachers/grounding_dino_sam2_cityscapes.py',
    'teachers/grounding_dino_sam2_ade20k.py',
    'teachers/teacher_ensemble_cityscapes.py',
    'teachers/adapt_grounding_dino_cityscapes.py',
    'toy/teacher_gdino-tiny_sam2-tiny_toy.py',
])
def test_configs_parse(repo_root, name):
    cfg = Config.fromfile(osp.join(repo_root, 'configs/mmcast', name))
    assert cfg.model.type in ('BoxPromptedTeacher', 'TeacherEnsemble',
                              'GroundingDINO')


def test_toy_config_matches_factory(repo_root):
    cfg = Config.fromfile(
        osp.join(repo_root,
                 'configs/mmcast/toy/teacher_gdino-tiny_sam2-tiny_toy.py'))
    factory = Config(
        dict(model=tiny_box_prompted_teacher_cfg(cfg.toy_tiny_teachers_root)))

    def norm(x):
        if isinstance(x, dict):
            return {k: norm(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [norm(v) for v in x]
        return x

    assert norm(cfg.model.to_dict()) == norm(factory.model.to_dict())


def test_adaptation_config_freezes_language_model(repo_root, assets):
    """The stage-1 recipe's param groups on a tiny Grounding-DINO."""
    from mmengine.optim import build_optim_wrapper
    cfg = Config.fromfile(
        osp.join(repo_root,
                 'configs/mmcast/teachers/adapt_grounding_dino_cityscapes.py'))
    detector = MODELS.build(
        tiny_box_prompted_teacher_cfg(assets['root'])['detector'])
    optim = build_optim_wrapper(detector, cfg.optim_wrapper)
    names = {id(p): n for n, p in detector.named_parameters()}
    lrs = {}
    for group in optim.optimizer.param_groups:
        for p in group['params']:
            lrs[names[id(p)]] = group['lr']
    assert optim.optimizer.defaults['lr'] == pytest.approx(5e-5)
    assert optim.optimizer.defaults['weight_decay'] == pytest.approx(0.01)
    frozen = {n for n, p in detector.named_parameters() if not p.requires_grad}
    for name, lr in lrs.items():
        if name in frozen:
            continue
        if name.startswith('language_model.'):
            assert lr == 0, name
        elif name.startswith('backbone.'):
            assert lr == pytest.approx(5e-6), name
        else:
            assert lr == pytest.approx(5e-5), name

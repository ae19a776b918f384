# Copyright (c) mmcast contributors. All rights reserved.
"""The concept-prompted SAM 3 teacher on a tiny, randomly initialised but
real ``sam3`` ``Sam3Image`` written by ``mmcast.toy.tiny_sam3``."""
import copy
import os.path as osp

import numpy as np
import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import DefaultScope
from mmengine.runner import Runner, load_checkpoint
from mmengine.structures import InstanceData

import mmcast  # noqa: F401
from mmcast.models.teachers import ConceptPromptedTeacher
from mmcast.models.teachers.concept_prompt_merging import (merge_views,
                                                           select_instances,
                                                           tile_windows)
from mmcast.models.teachers.sam3_building import (build_sam3_image,
                                                  load_sam3_checkpoint)
from mmcast.pseudo_labels import PseudoLabelFilter
from mmcast.toy.tiny_sam3 import (TINY_SAM3_ARCH, build_tiny_sam3_assets,
                                  tiny_concept_prompted_teacher_cfg)

register_all_modules(init_default_scope=False)

IMAGE_SHAPES = [(120, 250), (97, 203)]  # (h, w)
TOY_CONFIG = 'configs/mmcast/toy/teacher_sam3-tiny_toy.py'
PIPELINE = [
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
    return build_tiny_sam3_assets(str(tmp_path_factory.mktemp('tiny')))


@pytest.fixture(scope='module')
def batch(tmp_path_factory):
    import cv2
    root = tmp_path_factory.mktemp('imgs')
    pipeline = Compose(PIPELINE)
    samples = []
    for i, (h, w) in enumerate(IMAGE_SHAPES):
        rng = np.random.RandomState(i)
        img = rng.randint(0, 255, (h, w, 3)).astype(np.uint8)
        path = str(root / f'img{i}.png')
        cv2.imwrite(path, img)
        samples.append(pipeline(dict(img_path=path, img_id=i)))
    return pseudo_collate(samples)


def build(assets, ckpt=True, **kwargs):
    model = MODELS.build(
        tiny_concept_prompted_teacher_cfg(assets['root'], **kwargs))
    if ckpt:
        load_checkpoint(
            model, assets['teacher_checkpoint'], map_location='cpu',
            logger='silent')
    return model.eval()


def run(model, batch):
    return model.test_step(copy.deepcopy(batch))


def test_predict_structures_and_single_passes(assets, batch):
    teacher = build(assets)
    assert isinstance(teacher, ConceptPromptedTeacher)
    assert teacher.prompts == [
        'person', 'rider', 'cyclist', 'car', 'truck', 'bus', 'train',
        'motorcycle', 'motorbike', 'bicycle'
    ]
    assert teacher.prompt_labels == [0, 1, 1, 2, 3, 4, 5, 6, 6, 7]
    vision, text = [], []
    sam3 = teacher.sam3_model
    sam3.backbone.vision_backbone.trunk.register_forward_hook(
        lambda m, args, out: vision.append(len(args[0])))
    sam3.backbone.language_backbone.register_forward_hook(
        lambda m, args, out: text.append(len(args[0])))
    outs = run(teacher, batch)
    # one vision pass over both images for ten prompts, one text pass
    assert vision == [2] and text == [10]
    again = run(teacher, batch)
    assert vision == [2, 2] and text == [10]  # text features are cached
    for out, rep, (h, w) in zip(outs, again, IMAGE_SHAPES):
        pred = out.pred_instances
        n = len(pred)
        assert 0 < n <= 20
        assert pred.masks.shape == (n, h, w) and pred.masks.dtype == torch.bool
        assert pred.labels.dtype == torch.long
        assert ((pred.labels >= 0) & (pred.labels < 8)).all()
        assert (pred.scores > 0.3).all() and (pred.scores <= 1).all()
        assert pred.bboxes.shape == (n, 4)
        assert (pred.bboxes >= 0).all()
        assert (pred.bboxes[:, 0::2] <= w).all()
        assert (pred.bboxes[:, 1::2] <= h).all()
        assert pred.masks.any()
        assert all(t.device.type == 'cpu' for t in pred.values())
        assert torch.equal(pred.masks, rep.pred_instances.masks)


def test_prompts_of_a_class_are_a_union(assets, batch):
    """No NMS: the rider instances of ['rider', 'cyclist'] are exactly those
    of 'rider' alone plus those of 'cyclist' alone."""
    common = dict(nms_iou_thr=1.0, max_per_img=1000)
    scores = {}
    for key, prompts in [('both', ['rider', 'cyclist']), ('a', ['rider']),
                         ('b', ['cyclist'])]:
        teacher = build(assets, class_prompts=dict(rider=prompts), **common)
        pred = run(teacher, batch)[0].pred_instances
        scores[key] = sorted(pred.scores[pred.labels == 1].tolist())
    assert scores['a'] and scores['b']
    assert scores['both'] == pytest.approx(sorted(scores['a'] + scores['b']))


def test_per_class_thresholds_and_cross_class_nms():
    masks = torch.zeros(5, 10, 10, dtype=torch.bool)
    masks[0, :5, :5] = True  # person .9
    masks[1, :5, :4] = True  # rider .8 (IoU .8 with 0): suppressed
    masks[2, 5:, 5:] = True  # car .5 < its threshold .6: dropped
    masks[3, 5:, :5] = True  # rider .45 > its threshold .4: kept
    masks[4, :5, 5:] = True  # person .35 < .4: dropped
    scores = torch.tensor([0.9, 0.8, 0.5, 0.45, 0.35])
    labels = torch.tensor([0, 1, 2, 1, 0])
    thrs = torch.tensor([0.4, 0.4, 0.6])
    keep = select_instances(scores, labels, masks, thrs, 0.7, 10)
    assert keep.tolist() == [0, 3]
    # NMS off: the overlapping rider stays; top-k by score
    keep = select_instances(scores, labels, masks, thrs, 1.0, 2)
    assert keep.tolist() == [0, 1]
    keep = select_instances(scores, labels, masks, thrs, 0.85, 10)
    assert keep.tolist() == [0, 1, 3]


def test_tiling_merges_an_instance_cut_by_the_border():
    tiles = tile_windows(10, 20, 0, 0.5)
    assert tiles == [(0, 0, 10, 10), (5, 0, 15, 10), (10, 0, 20, 10)]
    # one car spanning x 3..13 seen cut by tiles 0 and 1; another car only
    # in tile 2; masks are 10x10 logits per tile (canvas = image scale)

    def det(boxes, logits, scores):
        return dict(
            scores=torch.tensor(scores),
            labels=torch.full((len(scores), ), 2),
            boxes=torch.tensor(boxes),
            masks=torch.stack(logits) if logits else torch.zeros(0, 10, 10))

    m0 = torch.full((10, 10), -5.)
    m0[2:6, 3:10] = 5.  # image x 3..10 (cut at the tile border x=10)
    m1 = torch.full((10, 10), -5.)
    m1[2:6, 0:8] = 5.  # image x 5..13
    m2 = torch.full((10, 10), -5.)
    m2[7:9, 6:9] = 5.  # image x 16..19
    dets = [
        det([[0.3, 0.2, 1.0, 0.6]], [m0], [0.6]),
        det([[0.0, 0.2, 0.8, 0.6]], [m1], [0.7]),
        det([[0.6, 0.7, 0.9, 0.9]], [m2], [0.5]),
    ]
    out = merge_views(dets, tiles, (10, 20), torch.full((3, ), 0.3), 0.0,
                      0.7, 10, 0.5)
    assert len(out) == 2
    assert out.scores.tolist() == pytest.approx([0.7, 0.5])
    assert out.bboxes[0].tolist() == pytest.approx([3, 2, 13, 6])
    expected = torch.zeros(10, 20, dtype=torch.bool)
    expected[2:6, 3:13] = True
    assert torch.equal(out.masks[0], expected)
    assert out.masks[1].sum() == 6 and out.masks[1, 7:9, 16:19].all()
    # without the border merge the halves stay two instances (IoU < .7)
    out = merge_views(dets, tiles, (10, 20), torch.full((3, ), 0.3), 0.0,
                      0.7, 10, 1.01)
    assert len(out) == 3


def test_tiled_predict_runs_the_backbone_once_per_tile(assets, batch):
    teacher = build(assets, tiling=dict(tile_size=0, overlap=0.25))
    vision = []
    teacher.sam3_model.backbone.vision_backbone.trunk.register_forward_hook(
        lambda m, args, out: vision.append(len(args[0])))
    outs = run(teacher, batch)
    # 120x250 -> 3 tiles of 120; 97x203 -> 3 tiles of 97
    assert vision == [6]
    for out, (h, w) in zip(outs, IMAGE_SHAPES):
        assert out.pred_instances.masks.shape[1:] == (h, w)


def test_output_feeds_the_pseudo_label_filter(assets, batch):
    teacher = build(assets)
    label_filter = PseudoLabelFilter(score_thr=0.3, max_per_image=100)
    for out, (h, w) in zip(run(teacher, batch), IMAGE_SHAPES):
        pred = out.pred_instances
        pseudo = label_filter(pred)
        assert 0 < len(pseudo) <= len(pred)
        assert pseudo.masks.shape[1:] == (h, w)
        assert set(pseudo.labels.tolist()) <= set(pred.labels.tolist())
        # painted in score order: disjoint
        assert pseudo.masks.sum(0).max() <= 1


def _train_batch(teacher, batch):
    data = copy.deepcopy(batch)
    for ds in data['data_samples']:
        h, w = ds.img_shape
        masks = np.zeros((2, h, w), np.uint8)
        masks[0, 2:h // 2, 2:w // 2] = 1
        masks[1, 5:h - 2, w // 3:w - 1] = 1
        ds.gt_instances = InstanceData(
            bboxes=torch.tensor([[2., 2., w // 2, h // 2],
                                 [w // 3, 5., w - 1, h - 2]]),
            labels=torch.tensor([1, 2]),
            masks=BitmapMasks(masks, h, w))
    return teacher.data_preprocessor(data, True)


def test_loss_trains_only_the_trainable_parts(assets, batch):
    teacher = build(assets)
    teacher.train()
    assert not teacher.sam3_model.backbone.vision_backbone.training
    assert not teacher.sam3_model.backbone.language_backbone.training
    assert not teacher.sam3_model.transformer.encoder.training
    assert teacher.sam3_model.transformer.decoder.training
    data = _train_batch(teacher, batch)
    params = [p for p in teacher.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=1e-3)
    totals = []
    for _ in range(6):
        losses = teacher.loss(data['inputs'], data['data_samples'])
        assert set(losses) == {
            'loss_cls', 'loss_bbox', 'loss_iou', 'loss_mask', 'loss_dice',
            'loss_presence'
        }
        total = sum(losses.values())
        assert torch.isfinite(total)
        optim.zero_grad()
        total.backward()
        optim.step()
        totals.append(total.item())
    assert totals[-1] < 0.8 * totals[0]
    for name, p in teacher.named_parameters():
        trainable = name.startswith(
            ('sam3_model.transformer.decoder.',
             'sam3_model.dot_prod_scoring.',
             'sam3_model.segmentation_head.'))
        assert p.requires_grad == trainable, name
        if not trainable:
            assert p.grad is None, name
    assert teacher.sam3_model.dot_prod_scoring.hs_proj.weight.grad.abs().sum(
    ) > 0
    assert teacher.sam3_model.transformer.decoder.presence_token_head.layers[
        -1].bias.grad.abs().sum() > 0
    with pytest.raises(ValueError, match='names no parameters'):
        build(assets, ckpt=False, trainable=['transformer.nothing'])


def test_released_checkpoint_layout(assets, tmp_path):
    reference = build_sam3_image(TINY_SAM3_ARCH, assets['bpe_path'])
    state = {'detector.' + k: v for k, v in reference.state_dict().items()}
    # what the released file holds beyond the image model
    state['tracker.maskmem_tpos_enc'] = torch.zeros(7, 1, 1, 64)
    state['detector.backbone.vision_backbone.sam2_convs.0.conv_1x1.weight'] \
        = torch.zeros(1)
    path = str(tmp_path / 'sam3.pt')
    torch.save({'model': state}, path)
    model = build_sam3_image(TINY_SAM3_ARCH, assets['bpe_path'])
    report = load_sam3_checkpoint(model, path)
    assert report['missing'] == [] and report['unexpected'] == []
    assert sorted(report['dropped']) == sorted([
        'tracker.maskmem_tpos_enc',
        'detector.backbone.vision_backbone.sam2_convs.0.conv_1x1.weight'
    ])
    for k, v in reference.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    # the same file through MMEngine into a teacher (load pre-hook)
    teacher = build(assets, ckpt=False, sam3_checkpoint=None)
    load_checkpoint(teacher, path, map_location='cpu', strict=True,
                    logger='silent')
    for k, v in reference.state_dict().items():
        assert torch.equal(teacher.sam3_model.state_dict()[k], v), k
    # a key missing from the file is reported
    del state['detector.dot_prod_scoring.hs_proj.weight']
    torch.save({'model': state}, path)
    with pytest.raises(RuntimeError, match='dot_prod_scoring.hs_proj.weight'):
        load_sam3_checkpoint(model, path)


def test_missing_files_are_refused_with_their_path(assets, tmp_path):
    missing = str(tmp_path / 'sam3.pt')
    with pytest.raises(FileNotFoundError) as err:
        build(assets, ckpt=False, sam3_checkpoint=missing)
    assert missing in str(err.value) and 'facebook/sam3' in str(err.value)
    cfg = tiny_concept_prompted_teacher_cfg(assets['root'])
    cfg['sam3']['bpe_path'] = str(tmp_path / 'bpe_simple_vocab_16e6.txt.gz')
    with pytest.raises(FileNotFoundError) as err:
        MODELS.build(cfg)
    message = str(err.value)
    assert cfg['sam3']['bpe_path'] in message
    assert 'open_clip/bpe_simple_vocab_16e6.txt.gz' in message
    assert '\n' not in message


def test_toy_config_matches_factory(repo_root):
    cfg = Config.fromfile(osp.join(repo_root, TOY_CONFIG))
    factory = tiny_concept_prompted_teacher_cfg(cfg.toy_tiny_teachers_root)

    def norm(x):
        if isinstance(x, dict):
            return {k: norm(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [norm(v) for v in x]
        return x

    assert norm(cfg.model.to_dict()) == norm(Config(dict(
        model=factory)).model.to_dict())
    for name in ('toy/teacher_sam3-tiny_source-pretrain_toy.py',
                 'teachers/sam3_cityscapes.py'):
        other = Config.fromfile(osp.join(repo_root, 'configs/mmcast', name))
        assert other.model.type == 'ConceptPromptedTeacher'


def test_cityscapes_adaptation_trains_the_labelling_teacher(repo_root):
    """Stage 1a's SAM 3 is the teacher config's model (prompts, thresholds,
    tiling), built without weights: they come from ``load_from``."""
    teachers = osp.join(repo_root, 'configs/mmcast/teachers')
    adapt = Config.fromfile(osp.join(teachers, 'adapt_sam3_cityscapes.py'))
    label = Config.fromfile(osp.join(teachers, 'sam3_cityscapes.py'))
    adapted, labelling = adapt.model.to_dict(), label.model.to_dict()
    assert adapted['sam3'].pop('checkpoint') is None
    assert labelling['sam3'].pop('checkpoint') == adapt.load_from
    assert adapted == labelling
    assert len(labelling['class_prompts']) == 8
    for cfg in (adapt, label):  # metadata-only inputs at 1024x512
        assert cfg.test_dataloader.dataset.pipeline[1].scale == (1024, 512)


def test_toy_config_runs_under_the_runner(repo_root, assets, toy_data_root,
                                          tmp_path, monkeypatch):
    monkeypatch.setenv('MMCAST_TINY_TEACHERS', assets['root'])
    cfg = Config.fromfile(osp.join(repo_root, TOY_CONFIG))
    root = toy_data_root.rstrip('/') + '/'
    cfg.test_dataloader.dataset.data_root = root
    cfg.test_dataloader.dataset.indices = 2
    cfg.test_dataloader.batch_size = 2
    cfg.test_evaluator = dict(
        type='CocoMetric',
        ann_file=root + 'annotations/instancesonly_filtered_gtFine_val.json',
        metric=['bbox', 'segm'])
    cfg.load_from = assets['teacher_checkpoint']
    cfg.work_dir = str(tmp_path / 'work')
    cfg.train_dataloader = cfg.train_cfg = cfg.optim_wrapper = None
    cfg.param_scheduler = None
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    metrics = Runner.from_cfg(cfg).test()
    assert 'coco/segm_mAP' in metrics and 'coco/bbox_mAP' in metrics


def test_loss_without_ground_truth(assets, batch):
    """An image with no instance (e.g. no pseudo-label kept): only the
    presence loss says "absent"; box and mask losses are zero."""
    teacher = build(assets).train()
    data = _train_batch(teacher, batch)
    sample = DetDataSample(metainfo=data['data_samples'][0].metainfo)
    sample.gt_instances = InstanceData(
        bboxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long))
    empty = teacher.loss(data['inputs'][:1], [sample])
    assert empty['loss_bbox'] == 0 and empty['loss_presence'] > 0


def test_ensemble_with_the_box_prompted_teacher(assets, batch, tmp_path):
    """A SAM 3 member and a Grounding-DINO + SAM 2 member, each with its own
    normalisation, fused by TeacherEnsemble: the ensemble's output is the
    fusion of the members' own predictions."""
    from mmcast.models.teachers import fuse_instances
    from mmcast.toy.tiny_teachers import (CITYSCAPES_CLASSES,
                                          build_tiny_teacher_assets,
                                          tiny_box_prompted_teacher_cfg)
    box_assets = build_tiny_teacher_assets(str(tmp_path / 'box'))
    members = [
        dict(model=tiny_concept_prompted_teacher_cfg(assets['root']),
             checkpoint=assets['teacher_checkpoint']),
        dict(model=tiny_box_prompted_teacher_cfg(box_assets['root'],
                                                 max_per_img=8),
             checkpoint=box_assets['teacher_checkpoint']),
    ]
    ens = MODELS.build(
        dict(type='TeacherEnsemble', classes=CITYSCAPES_CLASSES,
             teachers=members,
             fusion=dict(type='weighted', iou_thr=0.5))).eval()
    singles = [run(member, batch) for member in ens.teachers]
    assert all(len(s[0].pred_instances) for s in singles)
    for i, (out, (h, w)) in enumerate(zip(run(ens, batch), IMAGE_SHAPES)):
        expected = fuse_instances([s[i].pred_instances for s in singles],
                                  type='weighted', iou_thr=0.5)
        pred = out.pred_instances
        assert pred.masks.shape[1:] == (h, w)
        assert torch.equal(pred.masks, expected.masks)
        assert torch.equal(pred.labels, expected.labels)
        assert torch.allclose(pred.scores, expected.scores)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16],
                         ids=['fp16', 'bf16'])
def test_adaptation_step_under_autocast(assets, batch, dtype):
    """One optimiser step of the adaptation loss inside CPU autocast (the
    ops CUDA AMP puts in half precision): finite losses and the trainable
    parts move, the frozen ones do not."""
    teacher = build(assets).train()
    data = _train_batch(teacher, batch)
    decoder = teacher.sam3_model.transformer.decoder
    frozen = teacher.sam3_model.backbone.vision_backbone
    before = [p.detach().clone() for p in decoder.parameters()]
    frozen_before = [p.detach().clone() for p in frozen.parameters()]
    optim = torch.optim.AdamW(
        [p for p in teacher.parameters() if p.requires_grad], lr=1e-3)
    with torch.autocast('cpu', dtype=dtype):
        losses = teacher.loss(data['inputs'], data['data_samples'])
    total = sum(losses.values())
    assert all(torch.isfinite(v) for v in losses.values()), losses
    optim.zero_grad()
    total.backward()
    optim.step()
    assert any(not torch.equal(a, p) for a, p in zip(before,
                                                      decoder.parameters()))
    assert all(torch.equal(a, p) for a, p in zip(frozen_before,
                                                 frozen.parameters()))

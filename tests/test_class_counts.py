# Copyright (c) mmcast contributors. All rights reserved.
"""Any class count works, for every model family mmcast ships.

Mask2Former's instance inference takes the top ``max_per_image`` (query,
class) pairs; with few classes there are fewer pairs than that (the toy
R-18: 20 queries, ``max_per_image=50``). Every shipped Mask2Former keeps
``min(max_per_image, num_queries × num_classes)`` instances per image
(``LeanMaskFormerFusionHead``). For 1, 2 and 80 classes each family is
built from its real config with the class count changed (the custom
configs through ``custom_dataset.py``'s ``MMCAST_CUSTOM_CLASSES``, the
others in the model config), trains one step (loss, backward) and predicts
a 64×96 batch of toy scenes. Real-size models (DINOv2-S DPT, Swin-L) keep
their architecture types at test width and depth with the CPU smoke's 20
queries. Grounding-DINO + SAM 2 predicts per prompted class; every shipped
Grounding-DINO keeps its top-k within its queries. The shipped 1-class
``custom_dataset.py`` template runs with the custom-cpu configs through the
real CocoDataset, pipelines and CocoMetric; the published stock config
predicts the same.
"""
import glob
import os
import os.path as osp
from typing import List

import cv2
import numpy as np
import pytest
import torch
from mmdet.datasets import CocoDataset
from mmdet.datasets.transforms import PackDetInputs
from mmdet.registry import DATASETS, MODELS
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import BitmapMasks
from mmdet.utils import register_all_modules
from mmengine.config import Config, ConfigDict
from mmengine.dataset import pseudo_collate
from mmengine.evaluator import Evaluator
from mmengine.registry import DefaultScope
from mmengine.runner import load_checkpoint

import mmcast  # noqa: F401  (registers the modules)
from conftest import REPO_ROOT, is_config_alias
from mmcast.datasets.semi_split import write_split
from mmcast.models.seg_heads import LeanMaskFormerFusionHead
from mmcast.models.teachers.utils import load_model_cfg
from mmcast.toy.cityscapes_layout import coco_annotations
from mmcast.toy.scene import scene_rng
from mmcast.toy.streets import render_scene
from mmcast.toy.tiny_teachers import (TEACHER_FILENAME,
                                      build_tiny_teacher_assets)
from mmcast.utils import atomic_dump_json

register_all_modules()
CLASS_COUNTS = (1, 2, 80)
NAMES = CocoDataset.METAINFO['classes']  # 80 names to draw from
SHAPE = (64, 96)  # (H, W) of the test images
CPU_NUM_QUERIES = 20  # real-size Mask2Formers on CPU (200 / 100 queries)
# family: (config, real size); the custom configs take their classes from
# custom_dataset.py, the others get them in the model config
FAMILIES = {
    'toy-r18-student': ('configs/mmcast/supervised_student_toy.py', False),
    'toy-r34-teacher': ('configs/mmcast/adapt_teacher_toy.py', False),
    'toy-cast-distiller': ('configs/mmcast/distill_toy.py', False),
    'toy-guided-r18': (
        'configs/mmcast/guided_distillation/guided-distillation_r18_toy.py',
        False),
    'custom-cpu-student': (
        'configs/mmcast/custom/supervised_student_custom-cpu.py', False),
    'custom-cpu-teacher': (
        'configs/mmcast/custom/adapt_teacher_custom-cpu.py', False),
    'custom-cpu-cast-distiller': (
        'configs/mmcast/custom/distill_custom-cpu.py', False),
    'custom-cpu-guided-r18': (
        'configs/mmcast/custom/guided-distillation_r18_custom-cpu.py', False),
    'custom-dinov2-s-student': (
        'configs/mmcast/custom/supervised_student_custom.py', True),
    'custom-swin-l-teacher': (
        'configs/mmcast/custom/adapt_teacher_custom.py', True),
    'custom-guided-dinov2-s': (
        'configs/mmcast/custom/guided-distillation_dinov2-s_custom.py', True),
}
GDINO_SAM2 = 'configs/mmcast/toy/teacher_gdino-tiny_sam2-tiny_toy.py'
TEMPLATE_CONFIGS = ('supervised_student', 'adapt_teacher', 'finetune',
                    'distill', 'guided-distillation_r18')


@pytest.fixture(scope='module', autouse=True)
def _mmdet_scope():
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield


# ------------------------------------------------------------------ inputs
def scene_batch(num_classes: int, seed: int = 0, num_images: int = 2) -> dict:
    """Packed toy scenes (``inputs``, ``data_samples``) of ``SHAPE``; the
    k-th instance of image i has label ``(k + 3 i + seed) % num_classes``."""
    pack = PackDetInputs()
    inputs, samples = [], []
    for i in range(num_images):
        scene = render_scene(*SHAPE, scene_rng(seed, 'target', 'train', i))
        masks = np.stack([inst.mask for inst in scene.instances])
        labels = (np.arange(len(masks)) + 3 * i + seed) % num_classes
        boxes = [cv2.boundingRect(m.astype(np.uint8)) for m in masks]
        packed = pack(dict(
            img=scene.image[..., ::-1].copy(),
            img_id=i,
            img_path=None,  # in memory (SAM 2 reads the inputs)
            ori_shape=SHAPE,
            img_shape=SHAPE,
            scale_factor=(1.0, 1.0),
            flip=False,
            flip_direction=None,
            gt_bboxes=HorizontalBoxes(
                [[x, y, x + w, y + h] for x, y, w, h in boxes],
                dtype=torch.float32),
            gt_bboxes_labels=labels.astype(np.int64),
            gt_ignore_flags=np.zeros(len(masks), bool),
            gt_masks=BitmapMasks(masks.astype(np.uint8), *SHAPE)))
        inputs.append(packed['inputs'])
        samples.append(packed['data_samples'])
    return dict(inputs=inputs, data_samples=samples)


def multi_branch(num_classes: int) -> dict:
    """A ``sup`` + ``unsup`` batch (an image each) as MultiBranch pipelines
    pack it."""
    sup = scene_batch(num_classes, 0, num_images=1)
    unsup = scene_batch(num_classes, 1, num_images=1)
    return dict(inputs=dict(sup=sup['inputs'], unsup=unsup['inputs']),
                data_samples=dict(sup=sup['data_samples'],
                                  unsup=unsup['data_samples']))


# ------------------------------------------------------------------ models
def detectors(model_cfg: dict) -> List[dict]:
    """The Mask2Former configs of a (wrapped) model config."""
    return [m for m in (model_cfg, model_cfg.get('student'),
                        model_cfg.get('teacher'))
            if isinstance(m, dict) and 'panoptic_head' in m]


def set_num_classes(det: dict, num_classes: int) -> None:
    """What ``custom_dataset.py``'s ``head_classes`` sets, on one model."""
    det['panoptic_head']['num_things_classes'] = num_classes
    det['panoptic_head']['loss_cls']['class_weight'] = \
        [1.0] * num_classes + [0.1]
    det['panoptic_fusion_head']['num_things_classes'] = num_classes


def shrink(det: dict) -> None:
    """A real-size Mask2Former at test size: its backbone type narrowed
    (Swin 32-d, 2 blocks a stage; DINOv2 ViT 64-d, 4 blocks), its 256-d head
    (MSDeformAttn or DPT pixel decoder) with the CPU smoke's 20 queries and
    the toy's depth (3 decoder layers, 2 pixel-decoder encoder layers)."""
    backbone = det['backbone']
    if backbone['type'] == 'SwinTransformer':
        backbone.update(embed_dims=32, depths=[2, 2, 2, 2],
                        num_heads=[1, 2, 4, 8])
        channels = [32, 64, 128, 256]
    else:
        assert backbone['type'] == 'DINOv2MultiLevel', backbone['type']
        backbone.update(
            arch=dict(embed_dims=64, num_layers=4, num_heads=4,
                      feedforward_channels=256),
            out_indices=(0, 1, 2, 3), out_channels=(16, 32, 64, 128))
        channels = [16, 32, 64, 128]
    head = det['panoptic_head']
    head['in_channels'] = channels
    if head.get('projection_head'):  # CAST's, on one backbone level
        head['projection_head']['in_channels'] = \
            channels[head['contrast_level']]
    head['num_queries'] = CPU_NUM_QUERIES
    head['transformer_decoder']['num_layers'] = 3
    if head['pixel_decoder']['type'] == 'MSDeformAttnPixelDecoder':
        head['pixel_decoder']['encoder']['num_layers'] = 2
    det['train_cfg']['num_points'] = 256


def model_config(family: str, num_classes: int,
                 monkeypatch) -> ConfigDict:
    """The family's model config with ``num_classes`` classes."""
    path, real_size = FAMILIES[family]
    custom = '/custom/' in path
    if custom:
        monkeypatch.setenv('MMCAST_CUSTOM_CLASSES',
                           repr(tuple(NAMES[:num_classes])))
    model = Config.fromfile(osp.join(REPO_ROOT, path)).model
    if isinstance(model.get('teacher'), str):  # CASTDistiller's file
        model['teacher'] = Config.fromfile(
            osp.join(REPO_ROOT, model['teacher'])).model
    if 'teacher' in model:
        model['teacher_checkpoint'] = None  # random weights
    for det in detectors(model):
        if not custom:
            set_num_classes(det, num_classes)
        if real_size:
            shrink(det)
        else:
            det['train_cfg']['num_points'] = 256
        assert det['panoptic_head']['num_things_classes'] == num_classes
    if model['type'] == 'CASTDistiller':
        # the teacher labels the unsup batch inside the step, every
        # prediction kept (a random teacher's scores are low)
        model['semi_train_cfg'].update(
            pseudo_label_mode='online',
            pseudo_label_filter=dict(score_thr=0.0, max_per_image=100))
    return model


def predictor(model: torch.nn.Module) -> torch.nn.Module:
    """The Mask2Former that ``predict`` runs."""
    return getattr(model, 'predictor', getattr(model, 'student', model))


def train_step(model: torch.nn.Module, num_classes: int) -> None:
    """One loss + backward; the gradient reaches the classifier."""
    wrapper = hasattr(model, 'student')
    batch = multi_branch(num_classes) if wrapper else scene_batch(num_classes)
    data = model.data_preprocessor(batch, True)
    losses = model.loss(data['inputs'], data['data_samples'])
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total), losses
    total.backward()
    if wrapper:  # the teacher's online pseudo-labels, in range
        assert any(k.startswith('unsup_') for k in losses)
        for sample in data['data_samples']['unsup']:
            labels = sample.gt_instances.labels
            assert ((labels >= 0) & (labels < num_classes)).all()
    cls_embed = predictor(model).panoptic_head.cls_embed.weight
    assert cls_embed.shape[0] == num_classes + 1  # + "no object"
    assert cls_embed.grad is not None and cls_embed.grad.abs().sum() > 0


def check_predictions(results, num_classes: int, expected: int) -> None:
    """``expected`` instances per image, labels in range, image-sized."""
    for result in results:
        pred = result.pred_instances
        assert len(pred) == expected
        assert pred.masks.shape == (expected, *SHAPE)
        assert pred.masks.dtype == torch.bool
        assert ((pred.labels >= 0) & (pred.labels < num_classes)).all()
        assert pred.bboxes.shape == (expected, 4)


@pytest.mark.parametrize('num_classes', CLASS_COUNTS)
@pytest.mark.parametrize('family', sorted(FAMILIES))
def test_family_trains_and_predicts(family, num_classes, monkeypatch):
    """One train step and ``min(max_per_image, queries × classes)``
    predictions per image, with labels of the model's classes."""
    cfg = model_config(family, num_classes, monkeypatch)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    det = predictor(model)
    assert isinstance(det.panoptic_fusion_head, LeanMaskFormerFusionHead)
    train_step(model, num_classes)
    model.eval()
    with torch.no_grad():
        data = model.data_preprocessor(scene_batch(num_classes, 2), False)
        results = model.predict(data['inputs'], data['data_samples'])
    num_queries = det.panoptic_head.num_queries
    max_per_image = det.test_cfg['max_per_image']
    expected = min(max_per_image, num_queries * num_classes)
    if num_classes == 1:  # fewer pairs than max_per_image: the clamp works
        assert expected < max_per_image
    check_predictions(results, num_classes, expected)


# ------------------------------------------- box-prompted teacher (GDINO)
@pytest.fixture(scope='module')
def tiny_teachers(tmp_path_factory) -> str:
    """Tiny BERT (every class word), SAM 2 and Grounding-DINO + SAM 2
    checkpoint in the layout the toy teacher config reads."""
    return build_tiny_teacher_assets(
        str(tmp_path_factory.mktemp('tiny_teachers')), NAMES)['root']


@pytest.mark.parametrize('num_classes', CLASS_COUNTS)
def test_box_prompted_teacher_trains_and_predicts(num_classes, tiny_teachers,
                                                  monkeypatch):
    """Grounding-DINO's top-k runs over queries × prompted classes."""
    monkeypatch.setenv('MMCAST_TINY_TEACHERS', tiny_teachers)
    cfg = Config.fromfile(osp.join(REPO_ROOT, GDINO_SAM2)).model
    cfg.classes = NAMES[:num_classes]
    cfg.score_thr = 0.0  # every detection
    model = MODELS.build(cfg)
    load_checkpoint(model, osp.join(tiny_teachers, TEACHER_FILENAME),
                    map_location='cpu', logger='silent')
    data = model.data_preprocessor(scene_batch(num_classes), True)
    losses = model.loss(data['inputs'], data['data_samples'])
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total), losses
    total.backward()
    cls_bias = model.detector.bbox_head.cls_branches[-1].bias
    assert cls_bias.grad is not None and cls_bias.grad.abs().sum() > 0
    model.eval()
    data = model.data_preprocessor(scene_batch(num_classes, 2), False)
    results = model.predict(data['inputs'], data['data_samples'])
    detector = model.detector
    check_predictions(
        results, num_classes,
        min(model.max_per_img, detector.test_cfg['max_per_img'],
            detector.num_queries * num_classes))


def grounding_dinos(node) -> List[dict]:
    """Every Grounding-DINO config inside a model config (box-prompted
    teachers' detectors and teacher config files included)."""
    if isinstance(node, str) and node.endswith('.py') and osp.isfile(
            osp.join(REPO_ROOT, node)):
        return grounding_dinos(
            Config.fromfile(osp.join(REPO_ROOT, node)).get('model'))
    if isinstance(node, (list, tuple)):
        return [d for item in node for d in grounding_dinos(item)]
    if not isinstance(node, dict):
        return []
    if node.get('type') == 'BoxPromptedTeacher':
        node = dict(node, detector=load_model_cfg(
            node['detector'], node.get('detector_cfg_options')))
    found = [node] if node.get('type') == 'GroundingDINO' else []
    return found + [d for value in node.values()
                    for d in grounding_dinos(value)]


def test_every_grounding_dino_top_k_fits_one_class():
    """Grounding-DINO takes the top ``max_per_img`` (query, class) pairs:
    every shipped one keeps at most ``num_queries``, so one class works."""
    found = glob.glob(osp.join(REPO_ROOT, 'configs/mmcast/**/*gdino*.py'),
                      recursive=True) + glob.glob(
                          osp.join(REPO_ROOT, 'configs/mmcast/teachers/*.py'))
    # an alias loads as its target
    paths = sorted(p for p in found if not is_config_alias(p))
    checked = []
    for path in paths:
        for det in grounding_dinos(Config.fromfile(path).get('model')):
            assert det['test_cfg']['max_per_img'] <= det['num_queries'], \
                osp.relpath(path, REPO_ROOT)
            checked.append(det['num_queries'])
    # the toy teacher (30 queries) in its 5 configs, the real-size one
    # (900) in its 3 configs and as a member of the ensemble
    assert sorted(checked) == [30] * 6 + [900] * 4, checked


# ------------------------------------- the shipped 1-class custom template
@pytest.fixture(scope='module')
def balloon_root(tmp_path_factory) -> str:
    """A 1-class COCO dataset in ``custom_dataset.py``'s layout (every toy
    object a 'balloon'), with its 10 % split (seed 1)."""
    root = str(tmp_path_factory.mktemp('balloon'))
    for split, num in (('train', 10), ('val', 2)):
        images, annotations = [], []
        for index in range(num):
            scene = render_scene(*SHAPE,
                                 scene_rng(0, 'target', split, index))
            name = f'{split}_{index:03d}.jpg'
            os.makedirs(osp.join(root, 'images'), exist_ok=True)
            cv2.imwrite(osp.join(root, 'images', name),
                        cv2.cvtColor(scene.image, cv2.COLOR_RGB2BGR))
            image_id = len(images) + 1
            images.append(dict(id=image_id, file_name=name,
                               height=SHAPE[0], width=SHAPE[1]))
            for anno in coco_annotations(scene.instance_ids):
                anno.update(id=len(annotations) + 1, image_id=image_id,
                            category_id=1, iscrowd=0)
                annotations.append(anno)
        atomic_dump_json(
            dict(images=images, annotations=annotations,
                 categories=[dict(id=1, name='balloon')]),
            osp.join(root, 'annotations', f'instances_{split}.json'))
    write_split(osp.join(root, 'annotations', 'instances_train.json'),
                osp.join(root, 'annotations'), seed=1, percent=10)
    return root + '/'


def test_shipped_template_predicts_with_custom_cpu_configs(
        balloon_root, monkeypatch):
    """``custom_dataset.py`` as shipped (``classes = ('balloon', )``): every
    custom-cpu stage model predicts its validation images and CocoMetric
    scores them; the labels-only stage trains a step on its D_l."""
    monkeypatch.chdir(REPO_ROOT)
    for name in ('CLASSES', 'PERCENT', 'SPLIT_SEED'):  # the template's own
        monkeypatch.delenv(f'MMCAST_CUSTOM_{name}', raising=False)
    monkeypatch.setenv('MMCAST_CUSTOM_ROOT', repr(balloon_root))
    for stage in TEMPLATE_CONFIGS:
        cfg = Config.fromfile(f'configs/mmcast/custom/{stage}_custom-cpu.py')
        assert cfg.classes == ('balloon', ) and cfg.num_classes == 1
        if 'teacher' in cfg.model:
            cfg.model.teacher_checkpoint = None  # random weights
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
        det = predictor(model)
        dataset = DATASETS.build(cfg.val_dataloader.dataset)
        data = pseudo_collate([dataset[0], dataset[1]])
        model.eval()
        with torch.no_grad():
            outputs = model.test_step(data)
        expected = min(det.test_cfg['max_per_image'],
                       det.panoptic_head.num_queries)
        assert expected < det.test_cfg['max_per_image']  # the clamp works
        for out in outputs:
            pred = out.pred_instances
            assert len(pred) == expected
            assert pred.masks.shape == (expected, *SHAPE)
            assert (pred.labels == 0).all()
        evaluator = Evaluator(cfg.val_evaluator)
        evaluator.dataset_meta = dataset.metainfo
        evaluator.process(outputs, data)
        metrics = evaluator.evaluate(len(outputs))
        assert 0.0 <= metrics['coco/segm_mAP'] <= 1.0, stage
        if stage == 'supervised_student':
            model.train()
            train_set = DATASETS.build(cfg.train_dataloader.dataset)
            assert len(train_set) == 1  # 10 % of 10 images
            batch = model.data_preprocessor(
                pseudo_collate([train_set[0], train_set[0]]), True)
            losses = model.loss(batch['inputs'], batch['data_samples'])
            total = sum(v for k, v in losses.items() if 'loss' in k)
            assert torch.isfinite(total)
            total.backward()


# ------------------------------------------------- the published config
@pytest.mark.parametrize('num_classes', CLASS_COUNTS)
def test_published_config_is_stock_for_any_class_count(num_classes,
                                                       monkeypatch):
    """``tools/publish_model.py`` writes the stock fusion head with
    ``max_per_image`` clamped: the same predictions, no mmcast needed."""
    from mmcast.deploy.publish import (deployable_part, published_config,
                                       stock_mask2former_cfg)
    monkeypatch.setenv('MMCAST_CUSTOM_CLASSES',
                       repr(tuple(NAMES[:num_classes])))
    stage_cfg = Config.fromfile(osp.join(
        REPO_ROOT, 'configs/mmcast/custom/finetune_custom-cpu.py'))
    stage_cfg.model.init_cfg = None
    detector, _ = deployable_part(stage_cfg.model)
    published = published_config(
        stage_cfg, stock_mask2former_cfg(detector))
    assert 'custom_imports' not in published
    fusion = published.model.panoptic_fusion_head
    assert fusion.type == 'MaskFormerFusionHead'
    expected = min(50, 20 * num_classes)  # the R-18's 20 queries
    assert published.model.test_cfg.max_per_image == expected
    torch.manual_seed(0)
    stock = MODELS.build(published.model).eval()
    assert type(stock.panoptic_fusion_head).__name__ == \
        'MaskFormerFusionHead'
    torch.manual_seed(0)
    lean = MODELS.build(stage_cfg.model).eval()
    lean.load_state_dict(stock.state_dict())  # the same weights
    with torch.no_grad():
        data = stock.data_preprocessor(scene_batch(num_classes, 2), False)
        ref = stock.predict(data['inputs'], data['data_samples'])
        data = lean.data_preprocessor(scene_batch(num_classes, 2), False)
        out = lean.predict(data['inputs'], data['data_samples'])
    check_predictions(ref, num_classes, expected)
    for a, b in zip(ref, out):
        torch.testing.assert_close(a.pred_instances.scores,
                                   b.pred_instances.scores)
        assert torch.equal(a.pred_instances.masks, b.pred_instances.masks)

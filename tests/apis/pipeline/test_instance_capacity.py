# Copyright (c) mmcast contributors. All rights reserved.
"""The instance capacity: one value for every cap, and never a silent cap.

The instances-per-image statistics of a COCO file the test writes (known
max, 99th percentile and mean) and the capacity they ask; the capacity of
every shipped config, read from its literals (none disagrees); the options
that give a stage config a capacity, down to the teacher a stage names by
its config file; how many detections per image the evaluators of our
configs count; and a constructed prediction of 250 confident instances on
one image through the lean fusion head, the pseudo-label filter and writer,
the ``CocoMetric`` and the ONNX runtime's post-processing: all 250 kept at a
capacity of 300, exactly the cap kept and the rest reported at 200.
"""
import glob
import json
import os
import os.path as osp
import sys

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config

from conftest import REPO_ROOT, load_script
from mmcast.apis.pipeline.instance_capacity import (EVALUATOR, KEPT,
                                                    PSEUDO_LABELS, QUERIES,
                                                    CapacityError,
                                                    capacity_keys,
                                                    capacity_options,
                                                    config_capacity,
                                                    with_capacity)
from mmcast.datasets.instance_statistics import (capacity_for,
                                                 instance_statistics)

CUSTOM_CPU = 'configs/mmcast/custom'
# the shipped configs, mmcast's and the projects' (the bases are parts of
# them)
SHIPPED = sorted(
    p for p in glob.glob(osp.join(REPO_ROOT, 'configs', 'mmcast', '**',
                                  '*.py'), recursive=True) +
    glob.glob(osp.join(REPO_ROOT, 'projects', '*', 'configs', '*.py'))
    if '/_base_/' not in p)
# the constructed image: 250 touching 10x10 cells on a 16 x 16 grid
SIDE, CELL, NUM_CELLS, NUM_QUERIES = 160, 10, 250, 300


def _coco(path: str, counts, crowd: bool = True) -> str:
    """A COCO file whose image i has ``counts[i]`` instances of ``cell``
    (and, with ``crowd``, a crowd region and a ``debris`` each)."""
    images, anns = [], []
    for i, count in enumerate(counts):
        images.append(dict(id=i + 1, file_name=f'{i}.png', height=SIDE,
                           width=SIDE))
        extra = [dict(category_id=1, iscrowd=1),
                 dict(category_id=2, iscrowd=0)] if crowd else []
        for ann in [dict(category_id=1, iscrowd=0)] * count + extra:
            anns.append(dict(ann, id=len(anns) + 1, image_id=i + 1,
                             bbox=[0, 0, 1, 1], area=1,
                             segmentation=[[0, 0, 1, 0, 1, 1]]))
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(dict(images=images, annotations=anns, categories=[
            dict(id=1, name='cell'), dict(id=2, name='debris')]), f)
    return path


def test_statistics_of_a_written_dataset(tmp_path):
    path = _coco(str(tmp_path / 'a.json'), range(100))
    stats = instance_statistics(path, classes=('cell', ))
    assert (stats.num_images, stats.max, stats.p99, stats.mean) == \
        (100, 99, 98, 49.5)
    assert stats.describe().endswith(
        '100 images, instances per image: max 99, 99th percentile 98, '
        'mean 49.5')
    # without classes, the debris counts too (crowds never do)
    assert instance_statistics(path).max == 100
    # 1 of 150 images above the rest: the 99th percentile ignores it
    path = _coco(str(tmp_path / 'b.json'), [150] * 149 + [400],
                 crowd=False)
    stats = instance_statistics(path)
    assert (stats.max, stats.p99) == (400, 150)
    assert capacity_for(stats.p99) == 190  # 1.25 x 150 = 187.5 -> 190
    assert capacity_for(98) == 130 and capacity_for(16) == 20
    assert capacity_for(16, at_least=20) == 20 == capacity_for(0, 20)
    with pytest.raises(FileNotFoundError, match='nope.json'):
        instance_statistics(str(tmp_path / 'nope.json'))


@pytest.fixture
def in_repository(monkeypatch, tmp_path):
    """The repository as the working directory (the configs name their
    teacher configs relative to it), the tiny teachers' folder set."""
    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.setenv('MMCAST_TINY_TEACHERS', str(tmp_path / 'tiny'))


def test_every_shipped_config_has_one_capacity(in_repository):
    """Every model, teacher, filter and evaluator of a shipped config keeps
    at least what the model it trains can return."""
    found = {}
    for path in SHIPPED:
        cfg = Config.fromfile(path)
        found[osp.relpath(path, REPO_ROOT)] = config_capacity(cfg)
    assert found['configs/mmcast/custom/distill_custom-cpu.py'] == 20
    assert found['configs/mmcast/custom/adapt_teacher_custom-cpu.py'] == 30
    # the Swin-L teacher's 200 queries keep 100, as the students' 100
    assert found['configs/mmcast/adapt_teacher_cityscapes.py'] == 100
    assert found['configs/mmcast/distill_coco.py'] == 100
    # the box-prompted toy teacher: 30 boxes, 20 kept
    assert found['configs/mmcast/adapt_teacher_toy_gdino-sam2.py'] == 20
    # SwinMTL's (depth and semantic segmentation): no instance cap
    assert found[
        'projects/swinmtl/configs/swinmtl_swinv2-tiny_toy.py'] is None
    assert len(found) > 100


def test_a_config_whose_caps_disagree_is_refused_naming_them(
        in_repository):
    cfg = Config.fromfile(f'{CUSTOM_CPU}/distill_custom-cpu.py')
    cfg.custom_hooks[0].filter_cfg.max_per_image = 10
    cfg.model.teacher_cfg_options = dict(panoptic_head=dict(num_queries=15))
    with pytest.raises(CapacityError) as error:
        config_capacity(cfg)
    message = str(error.value)
    assert 'distill_custom-cpu.py' in message
    assert 'up to 20 instances per image ' \
        '(model.student.panoptic_head.num_queries)' in message
    assert 'custom_hooks.0.filter_cfg.max_per_image=10 (pseudo-labels)' \
        in message
    assert 'model.teacher_cfg_options.panoptic_head.num_queries=15 ' \
        '(queries)' in message


def test_one_capacity_for_student_teacher_filter_and_evaluator(
        in_repository):
    """Stage 2 names its teacher by config file: the capacity reaches it
    through ``teacher_cfg_options``, and the wrapper builds it so."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    cfg = Config.fromfile(f'{CUSTOM_CPU}/distill_custom-cpu.py')
    assert list(capacity_options(cfg, 190)) == [
        ('model.student.panoptic_head.num_queries', 190),
        ('model.student.test_cfg.max_per_image', 190),
        ('model.teacher_cfg_options.panoptic_head.num_queries', 190),
        ('model.teacher_cfg_options.test_cfg.max_per_image', 190),
        ('custom_hooks.0.filter_cfg.max_per_image', 190),
        ('val_evaluator.proposal_nums', (100, 190, 190)),
        ('val_evaluator.use_mp_eval', True),
        ('test_evaluator.proposal_nums', (100, 190, 190)),
        ('test_evaluator.use_mp_eval', True)]
    dense = with_capacity(cfg, 190)
    assert config_capacity(dense) == 190
    kinds = {}
    for key in capacity_keys(dense):
        kinds.setdefault((key.kind, key.teacher), set()).add(key.value)
    assert kinds == {(QUERIES, False): {190}, (KEPT, False): {190},
                     (QUERIES, True): {190}, (KEPT, True): {190},
                     (PSEUDO_LABELS, False): {190}, (EVALUATOR, False): {190}}
    assert not capacity_options(dense, 190)
    register_all_modules()
    model_cfg = dense.model
    model_cfg.teacher_checkpoint = None
    model = MODELS.build(model_cfg)
    assert model.student.panoptic_head.num_queries == 190
    assert model.teacher.panoptic_head.num_queries == 190
    assert model.teacher.panoptic_fusion_head.test_cfg.max_per_image == 190
    # below a model's own queries: they stay (its weights have them), the
    # caps follow the capacity
    teacher = with_capacity(
        Config.fromfile(f'{CUSTOM_CPU}/adapt_teacher_custom-cpu.py'), 25)
    assert teacher.model.panoptic_head.num_queries == 30
    assert teacher.model.test_cfg.max_per_image == 25
    assert config_capacity(teacher) == 25


# ------------------------------------------------ 250 instances on one image
def _cell_masks(num: int = NUM_CELLS) -> np.ndarray:
    """``num`` touching 10x10 squares of a 160x160 image, bool (n, H, W)."""
    masks = np.zeros((num, SIDE, SIDE), bool)
    per_row = SIDE // CELL
    for i in range(num):
        y, x = (i // per_row) * CELL, (i % per_row) * CELL
        masks[i, y:y + CELL, x:x + CELL] = True
    return masks


def _logits():
    """The constructed prediction of a 300-query, 1-class Mask2Former:
    queries 0-249 find a cell each (class probability ~1, mask logits +8
    on it), queries 250-299 "no object" (B = 1)."""
    cls = torch.full((NUM_QUERIES, 2), -8.)
    cls[:NUM_CELLS, 0], cls[NUM_CELLS:, 1] = 8., 8.
    masks = torch.full((NUM_QUERIES, SIDE, SIDE), -8.)
    masks[:NUM_CELLS][torch.from_numpy(_cell_masks())] = 8.
    return cls, masks


class ConstructedTeacher(torch.nn.Module):
    """A teacher whose network gives :func:`_logits` for every image; its
    instances come from a real :class:`LeanMaskFormerFusionHead`."""

    def __init__(self, max_per_image: int) -> None:
        super().__init__()
        from mmcast.models.seg_heads import LeanMaskFormerFusionHead
        self.panoptic_fusion_head = LeanMaskFormerFusionHead(
            num_things_classes=1, num_stuff_classes=0, test_cfg=dict(
                panoptic_on=False, semantic_on=False, instance_on=True,
                max_per_image=max_per_image))
        self.cls, self.masks = _logits()

    def test_step(self, data):
        samples = data['data_samples']
        for sample in samples:
            sample.set_metainfo(dict(batch_input_shape=(SIDE, SIDE)))
        results = self.panoptic_fusion_head.predict(
            self.cls[None].expand(len(samples), -1, -1),
            self.masks[None].expand(len(samples), -1, -1, -1), samples,
            rescale=True)
        for sample, result in zip(samples, results):
            sample.pred_instances = result['ins_results']
        return samples


@pytest.fixture(scope='module')
def cells_image(tmp_path_factory):
    """The image (its cells' ground truth as COCO) and the unlabeled set
    of it."""
    from pycocotools import mask as mask_util
    root = tmp_path_factory.mktemp('cells')
    image = np.full((SIDE, SIDE, 3), 200, np.uint8)
    image[_cell_masks().any(0)] = 90
    cv2.imwrite(str(root / 'cells.png'), image)
    anns = []
    for i, mask in enumerate(_cell_masks()):
        rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
        anns.append(dict(id=i + 1, image_id=1, category_id=1, iscrowd=0,
                         area=float(mask.sum()),
                         bbox=mask_util.toBbox(rle).tolist(),
                         segmentation=dict(size=rle['size'],
                                           counts=rle['counts'].decode())))
    for name, annotations in (('gt.json', anns), ('unlabeled.json', [])):
        with open(root / name, 'w', encoding='utf-8') as f:
            json.dump(dict(images=[dict(id=1, file_name='cells.png',
                                        height=SIDE, width=SIDE)],
                           annotations=annotations,
                           categories=[dict(id=1, name='cell')]), f)
    return root


def _onnx_model(path: str, max_per_image: int) -> None:
    """An ONNX model whose graph gives :func:`_logits` for any image, with
    the metadata of an exported 1-class model (no resize, no padding)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from mmcast.deploy.metadata import FORMAT, encode_metadata
    cls, masks = (t[None].numpy() for t in _logits())
    graph = helper.make_graph(
        [helper.make_node('Identity', ['cls'], ['cls_logits']),
         helper.make_node('Identity', ['masks'], ['mask_logits'])],
        'constructed', [helper.make_tensor_value_info(
            'images', TensorProto.FLOAT, [1, 3, SIDE, SIDE])],
        [helper.make_tensor_value_info('cls_logits', TensorProto.FLOAT,
                                       list(cls.shape)),
         helper.make_tensor_value_info('mask_logits', TensorProto.FLOAT,
                                       list(masks.shape))],
        [numpy_helper.from_array(cls, 'cls'),
         numpy_helper.from_array(masks, 'masks')])
    model = helper.make_model(graph, opset_imports=[
        helper.make_opsetid('', 17)])
    meta = dict(format=FORMAT, classes=['cell'], num_things_classes=1,
                num_queries=NUM_QUERIES, max_per_image=max_per_image,
                capacity=min(NUM_QUERIES, max_per_image),
                pad_size_divisor=1, pad_value=[0., 0., 0.],
                input_channel_order='bgr', input_shape=None,
                load_image=dict(color_type='color', imdecode_backend='cv2'),
                resize=None)
    for key, value in encode_metadata(meta).items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, path)


@pytest.mark.parametrize('capacity', [300, 200])
def test_250_confident_instances_are_kept_or_capped_and_reported(
        capacity, cells_image, in_repository, tmp_path, monkeypatch,
        capsys):
    from mmdet.registry import METRICS
    from mmengine.registry import DefaultScope

    from mmcast.models.teachers.labeling_teacher import LabelingTeacher
    from mmcast.pseudo_labels import label_unlabeled_set, read_header
    kept = min(NUM_CELLS, capacity)
    left_out = NUM_CELLS - kept
    teacher = ConstructedTeacher(capacity)
    cfg = with_capacity(Config.fromfile(
        f'{CUSTOM_CPU}/distill_custom-cpu.py'), capacity)

    # the fusion head: the top `capacity` (query, class) pairs
    sample = teacher.test_step(dict(data_samples=[_det_sample()]))[0]
    pred = sample.pred_instances
    assert len(pred) == capacity
    assert int((pred.scores > 0.5).sum()) == kept
    assert pred.metainfo == dict(max_per_image=capacity,
                                 num_over_cap=left_out)

    # the pseudo-label filter, its writer and the header (the filter of
    # the stage config at this capacity, labeled as the hook labels)
    monkeypatch.setenv('MMCAST_CACHE_DIR', str(tmp_path / 'cache'))
    out = str(tmp_path / 'pseudo.json')
    filter_cfg = cfg.custom_hooks[0].filter_cfg
    assert filter_cfg.max_per_image == capacity
    with DefaultScope.overwrite_default_scope('mmdet'), LabelingTeacher(
            teacher).labeling(filter_cfg.score_thr) as labeling:
        label_unlabeled_set(
            labeling, _unlabeled_dataset(cells_image), out,
            filter_cfg=filter_cfg.to_dict(), header=dict(teacher='cells'),
            progress=False)
    with open(out, encoding='utf-8') as f:
        written = json.load(f)
    assert len(written['annotations']) == kept
    assert sorted(a['area'] for a in written['annotations']) == \
        [CELL * CELL] * kept
    header = read_header(out)
    assert (header['num_instances'], header['num_capped_images'],
            header['num_over_cap']) == (kept, int(left_out > 0), left_out)

    # the evaluator of the stage config at this capacity counts `capacity`
    # per image: the 300-query head's predictions at capacity 300 (all
    # cells found), and at 200 only 200 of them (recall 0.8)
    metric = METRICS.build(dict(cfg.val_evaluator,
                                ann_file=str(cells_image / 'gt.json')))
    metric.dataset_meta = dict(classes=('cell', ))
    full = ConstructedTeacher(NUM_QUERIES).test_step(
        dict(data_samples=[_det_sample()]))[0]
    assert len(full.pred_instances) == NUM_QUERIES
    metric.process({}, [full.to_dict()])
    ap = metric.evaluate(1)['coco/segm_mAP']
    assert ap == pytest.approx(1.0 if capacity >= NUM_CELLS else 81 / 101,
                               abs=0.011)

    # the ONNX runtime's post-processing, its json and its summary line
    model = str(tmp_path / 'cells.onnx')
    _onnx_model(model, capacity)
    infer_cli = load_script(osp.join(REPO_ROOT, 'tools', 'deploy',
                                     'onnx_infer.py'))
    monkeypatch.setattr(sys, 'argv', [
        'onnx_infer.py', model, str(cells_image / 'cells.png'),
        '--out-dir', str(tmp_path / 'onnx'), '--no-save-vis'])
    infer_cli.main()
    printed = capsys.readouterr().out
    assert f'1 image(s), {kept} instance(s) with score >= 0.3' in printed
    with open(tmp_path / 'onnx' / 'preds' / 'cells.json') as f:
        saved = json.load(f)
    assert len(saved['labels']) == kept
    assert (saved['max_per_image'], saved['num_over_cap']) == \
        (capacity, left_out)
    assert (f"1 image(s) hit the model's cap of {capacity} instances per "
            f'image, which left out {left_out} more') in printed \
        if left_out else 'hit the model' not in printed


def _det_sample():
    from mmdet.structures import DetDataSample
    return DetDataSample(metainfo=dict(
        img_id=1, img_shape=(SIDE, SIDE), ori_shape=(SIDE, SIDE),
        scale_factor=(1., 1.)))


def _unlabeled_dataset(root) -> dict:
    return dict(
        type='CocoDataset', data_root=str(root), ann_file='unlabeled.json',
        data_prefix=dict(img=''), metainfo=dict(classes=('cell', )),
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='PackDetInputs', meta_keys=(
                      'img_id', 'img_path', 'ori_shape', 'img_shape',
                      'scale_factor'))])


def test_the_evaluators_of_our_configs_count(cells_image, in_repository,
                                             tmp_path):
    """How many detections per image the evaluators of our configs count,
    on the 250 cells found by 250 perfect detections: ``CocoMetric``
    (segm) 100 in its headline mAP (pycocotools' summary fixes it: recall
    100 / 250) and 1000 in the other APs, or the capacity in all of them;
    ``CityScapesMetric`` every prediction (its files hold all 250)."""
    from mmdet.registry import METRICS
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    sample = DetDataSample(metainfo=dict(
        img_id=1, ori_shape=(SIDE, SIDE),
        img_path='x/berlin_000000_000019_leftImg8bit.png'))
    sample.pred_instances = InstanceData(
        masks=torch.from_numpy(_cell_masks()),
        labels=torch.zeros(NUM_CELLS).long(),
        scores=torch.linspace(0.9, 0.5, NUM_CELLS),
        bboxes=torch.zeros(NUM_CELLS, 4))
    cfg = Config.fromfile(f'{CUSTOM_CPU}/supervised_student_custom-cpu.py')
    for config, counted, counted_50 in ((cfg, 100, 1000),
                                        (with_capacity(cfg, 300), 300, 300)):
        metric = METRICS.build(dict(config.val_evaluator,
                                    ann_file=str(cells_image / 'gt.json')))
        metric.dataset_meta = dict(classes=('cell', ))
        metric.process({}, [sample.to_dict()])
        logged = metric.evaluate(1)
        for key, dets in (('mAP', counted), ('mAP_50', counted_50)):
            # precision 1 up to the recall reached, 101 recall thresholds
            recall = min(dets, NUM_CELLS) / NUM_CELLS
            assert logged[f'coco/segm_{key}'] == pytest.approx(
                (np.floor(recall * 100) + 1) / 101, abs=0.011), key

    toy = Config.fromfile('configs/mmcast/finetune_toy.py')
    cityscapes = [e for e in toy.val_evaluator
                  if e['type'] == 'CityScapesMetric'][0]
    metric = METRICS.build(dict(cityscapes, outfile_prefix=str(
        tmp_path / 'cs'), seg_prefix=str(tmp_path)))
    metric.dataset_meta = dict(classes=('person', ))
    metric.process({}, [sample.to_dict()])
    results = tmp_path / 'cs' / 'results'
    with open(results / 'berlin_000000_000019_leftImg8bit_pred.txt') as f:
        assert len(f.read().splitlines()) == NUM_CELLS
    assert len(os.listdir(results)) == NUM_CELLS + 1

# Copyright (c) mmcast contributors. All rights reserved.
"""The student's whole predict as one static-shape graph
(``mmcast.deploy.static_predict``).

On the toy DINOv2 DPT student (the paper's student architecture at toy
width, random weights): Dynamo traces normalisation, backbone, pixel
decoder, masked-attention decoder and post-processing without a graph
break in float32, bfloat16 and float16; inductor's compiled graph gives
the eager outputs; ``torch.export`` of it holds no op that reads device
data on the host; every image of a batch of 2, 4 or 8 gets what it gets
alone; half precision keeps the float32 predictions (norms in float32);
the low-resolution mask scores change only the scores, and the host step
gives the lean head's instances when scores come from the upsampled
masks. Masks packed 8 pixels a byte (the default) unpack, at any width,
to the bool masks bit for bit, with the same boxes, scores and labels.
The toy R-18 student (MMDetection's MSDeformAttn pixel decoder,
switched to level shapes as Python integers) traces as one graph and
exports without host synchronisation too, with the stock modules'
outputs.
"""
import copy
import os.path as osp
from typing import Optional

import pytest
import torch
import torch._dynamo
from mmcv.ops.multi_scale_deform_attn import MultiScaleDeformableAttention
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.registry import DefaultScope

import mmcast  # noqa: F401  (registers the modules)
from conftest import REPO_ROOT
from mmcast.deploy import (DeployError, StaticMask2FormerPredictor,
                           build_static_predictor, cast_network,
                           finish_instances, pack_masks,
                           prepare_for_inference, unpack_masks)
from mmcast.deploy.pt2_package import example_inputs, export_static_program
from mmcast.deploy.static_deform_attn import (
    StaticMSDeformAttnPixelDecoder, StaticMultiScaleDeformableAttention)
from mmcast.deploy.half_precision import Float32LayerNorm
from mmcast.deploy.static_swin import StaticShiftWindowMSA

register_all_modules()
pytestmark = pytest.mark.slow_fixture(3)
STUDENT = ('configs/mmcast/toy/'
           'supervised_dinov2-tiny-dpt_1xb4-2000it_toy-10p.py')
CANVAS = (96, 192)
R18 = 'configs/mmcast/toy/mask2former_r18_1xb4-1500it_toy.py'
R18_CANVAS = (64, 128)
# The Swin-L Mask2Former teacher's architecture at toy width and depth
SWIN = 'configs/mmcast/_base_/models/cast_teacher_mask2former_swin-l.py'
TINY_SWIN = {
    'model.backbone.embed_dims': 32, 'model.backbone.depths': [1, 1, 1, 1],
    'model.backbone.num_heads': [1, 2, 4, 8], 'model.backbone.window_size': 4,
    'model.panoptic_head.in_channels': [32, 64, 128, 256],
    'model.panoptic_head.projection_head.in_channels': 256,
    'model.panoptic_head.num_queries': 20,
    'model.panoptic_head.pixel_decoder.encoder.num_layers': 1,
    'model.panoptic_head.transformer_decoder.num_layers': 2,
    'model.test_cfg.max_per_image': 50}
CLASSES = ('person', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle',
           'bicycle')
# ops that make the host wait for the device or give data-dependent shapes
SYNC_OPS = {'_local_scalar_dense', 'item', 'nonzero', 'argwhere', 'unique',
            '_unique', '_unique2', 'unique_dim', 'unique_consecutive',
            'masked_select', 'masked_scatter'}


def build_student(config: str = STUDENT,
                  cfg_options: Optional[dict] = None) -> torch.nn.Module:
    cfg = Config.fromfile(osp.join(REPO_ROOT, config))
    cfg.merge_from_dict(cfg_options or {})
    with DefaultScope.overwrite_default_scope('mmdet'):
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
        model.init_weights()
    return model.eval()


def write_student_checkpoint(path: str, config: str = STUDENT,
                             cfg_options: Optional[dict] = None
                             ) -> torch.nn.Module:
    """A toy student's random weights as a checkpoint with the toy
    classes (what tools/publish_model.py writes); returns the model."""
    model = build_student(config, cfg_options)
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(dataset_meta=dict(classes=CLASSES))), path)
    return model


@pytest.fixture(scope='module')
def student():
    return build_student()


@pytest.fixture(scope='module')
def r18_student():
    return build_student(R18)


@pytest.fixture(scope='module')
def swin_teacher():
    return build_student(SWIN, TINY_SWIN)


@pytest.fixture(scope='module')
def inputs():
    """8 images: full canvas ones and smaller ones (padded)."""
    images, sizes = example_inputs(CANVAS, 8, seed=3)
    sizes[1::3] = torch.tensor([70, 150])
    return images, sizes


def predictor_of(student, dtype=torch.float32, canvas=CANVAS, **kwargs):
    return build_static_predictor(copy.deepcopy(student), canvas, dtype,
                                  **kwargs)


def _mask_iou(a, b):
    inter = (a & b).flatten(-2).sum(-1).float()
    union = (a | b).flatten(-2).sum(-1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), 1.0)


def canvas_masks(masks, canvas=CANVAS):
    """bool (..., H, W) masks of the static outputs, unpacked if packed."""
    if masks.dtype == torch.uint8:
        return unpack_masks(masks, *canvas)
    return masks


def assert_same_instances(ref, out, score_atol=1e-5, min_iou=0.999,
                          canvas=CANVAS):
    """Same labels in the same order, scores within ``score_atol``, masks
    (packed or bool) equal but for pixels whose logit is within rounding
    of 0."""
    assert torch.equal(ref[1], out[1])
    torch.testing.assert_close(out[0], ref[0], rtol=0, atol=score_atol)
    assert _mask_iou(canvas_masks(ref[2], canvas),
                     canvas_masks(out[2], canvas)).min() >= min_iou


def student_and_canvas(request, name):
    """The toy DINOv2 DPT student (``'dpt'``), R-18 student (``'r18'``) or
    Swin teacher (``'swin'``; both MSDeformAttn) and its canvas."""
    if name == 'dpt':
        return request.getfixturevalue('student'), CANVAS
    fixture = {'r18': 'r18_student', 'swin': 'swin_teacher'}[name]
    return request.getfixturevalue(fixture), R18_CANVAS


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16,
                                   torch.float16])
@pytest.mark.parametrize('name', ['dpt', 'r18'])
def test_whole_predict_traces_without_a_graph_break(request, name, dtype):
    student, canvas = student_and_canvas(request, name)
    predictor = predictor_of(student, dtype, canvas)
    with torch.no_grad():
        explained = torch._dynamo.explain(predictor)(
            *example_inputs(canvas, 2, seed=3))
    assert explained.graph_break_count == 0, explained.break_reasons
    assert explained.graph_count == 1
    torch._dynamo.reset()


def test_compiled_graph_gives_the_eager_outputs(student, inputs):
    """inductor on the CPU, ``fullgraph=True`` (a graph break would raise),
    float32: the same instances as eager, masks packed."""
    predictor = predictor_of(student)
    compiled = prepare_for_inference(copy.deepcopy(student), mode='deploy',
                                     dtype=torch.float32,
                                     input_size=CANVAS, compile=True)
    with torch.no_grad():
        ref = predictor(*inputs)
        out = compiled(*inputs)
    assert [o.shape for o in out] == [
        (8, 50), (8, 50), (8, 50, CANVAS[0], CANVAS[1] // 8), (8, 50, 4),
        (8, 20)]
    assert out[2].dtype == torch.uint8 and out[0].dtype == torch.float32
    assert_same_instances(ref, out)
    torch.testing.assert_close(out[3], ref[3], rtol=0, atol=1)
    torch.testing.assert_close(out[4], ref[4])
    torch._dynamo.reset()


@pytest.mark.parametrize('name', ['dpt', 'r18', 'swin'])
def test_exported_graph_has_no_host_synchronisation(request, name):
    """``torch.export`` of the whole predict, batch dynamic: no op that
    reads device data back (``.item()``, ``nonzero``, boolean indexing,
    ``unique``) and every output shape is the batch size times constants;
    the MSDeformAttn models' deformable attention is ``grid_sample``."""
    student, canvas = student_and_canvas(request, name)
    program = export_static_program(
        predictor_of(student, torch.bfloat16, canvas))
    aten_ops = {str(n.target).split('.')[1] for n in program.graph.nodes
                if str(n.target).startswith('aten.')}
    assert not aten_ops & SYNC_OPS
    assert {'topk', 'gather', 'upsample_bilinear2d'} <= aten_ops
    assert ('grid_sampler' in aten_ops) == (name != 'dpt')
    outputs = [n for n in program.graph.nodes if n.op == 'output'][0]
    shapes = [o.meta['val'].shape for o in outputs.args[0]]
    batch = shapes[0][0]
    assert not isinstance(batch, int)  # the batch symbol
    assert [tuple(s) for s in shapes] == [
        (batch, 50), (batch, 50), (batch, 50, canvas[0], canvas[1] // 8),
        (batch, 50, 4), (batch, 20)]


@pytest.mark.parametrize('name', ['r18', 'swin'])
def test_static_modules_keep_the_stock_outputs(request, name):
    """The pixel decoder, its encoder's attention and Swin's windowed
    attention are switched; in float32 on the CPU every decoder layer's
    logits are the stock modules' exactly. In bf16 / fp16 (sampled in
    float32) the scores are finite and the best ones within half
    precision of float32's, as the DPT student's."""
    model, canvas = student_and_canvas(request, name)
    images, sizes = example_inputs(canvas, 3, seed=5)
    predictor = predictor_of(model, canvas=canvas)
    decoder = predictor.detector.panoptic_head.pixel_decoder
    assert type(decoder) is StaticMSDeformAttnPixelDecoder
    assert {type(m) for m in decoder.encoder.modules()
            if isinstance(m, MultiScaleDeformableAttention)} == {
                StaticMultiScaleDeformableAttention}
    assert (name == 'swin') == any(isinstance(m, StaticShiftWindowMSA)
                                   for m in predictor.modules())
    with torch.no_grad():
        inputs = predictor.preprocess(images, sizes)
        expected = model.panoptic_head(model.extract_feat(inputs), [])
        got = predictor.network(inputs)
        for stock, static in zip(expected, got):  # class, mask logits
            assert torch.equal(stock[-1], static)
        full = predictor(images, sizes)
        for dtype, atol in ((torch.bfloat16, 2e-2), (torch.float16, 3e-3)):
            out = predictor_of(model, dtype, canvas)(images, sizes)
            assert torch.isfinite(out[0]).all()
            torch.testing.assert_close(out[0].sort(dim=1).values,
                                       full[0].sort(dim=1).values,
                                       rtol=0, atol=atol)


def test_batches_give_each_image_its_batch_1_instances(student, inputs):
    predictor = predictor_of(student)
    with torch.no_grad():
        alone = [predictor(inputs[0][i:i + 1], inputs[1][i:i + 1])
                 for i in range(8)]
        for batch_size in (2, 4, 8):
            for start in range(0, 8, batch_size):
                part = slice(start, start + batch_size)
                out = predictor(inputs[0][part], inputs[1][part])
                for i in range(batch_size):
                    assert_same_instances(
                        alone[start + i], [o[i:i + 1] for o in out])


def test_half_precision_keeps_the_predictions(student, inputs):
    """Weights cast to bf16 / fp16 with norms in float32: the best scores
    within half precision of float32's, the top instance's mask the same
    up to boundary pixels."""
    ref = predictor_of(student)
    with torch.no_grad():
        expected = ref(*inputs)
        for dtype, atol in ((torch.bfloat16, 2e-2), (torch.float16, 3e-3)):
            half = predictor_of(student, dtype)
            assert half.dtype == dtype
            norms = [m for m in half.modules()
                     if isinstance(m, Float32LayerNorm)]
            assert norms and all(m.weight.dtype == torch.float32
                                 for m in norms)
            out = half(*inputs)
            assert out[0].dtype == torch.float32
            torch.testing.assert_close(out[0].sort(dim=1).values,
                                       expected[0].sort(dim=1).values,
                                       rtol=0, atol=atol)


def test_low_resolution_scores_change_only_the_scores(student, inputs):
    """``score_resolution='low'`` and ``'input'`` keep the same pairs and
    masks; scores differ by the resolution they are averaged at."""
    with torch.no_grad():
        low = predictor_of(student)(*inputs)
        full = predictor_of(student, score_resolution='input')(*inputs)
    assert torch.equal(low[1], full[1]) and torch.equal(low[2], full[2])
    assert torch.equal(low[3], full[3])
    gap = (low[0] - full[0]).abs()
    assert 0 < gap.max() < 0.05


def test_host_step_gives_the_lean_heads_instances(student, inputs):
    """With ``score_resolution='input'``, an image filling the canvas,
    ``finish_instances`` gives ``CASTMask2Former.predict``'s instances
    (same labels and masks, scores to 1e-5); rescaled to another original
    shape, the same labels and nearly the same masks (resized binary
    masks, not resized logits). Packed masks (with the graph's boxes)
    give what bool ones give, bit for bit."""
    predictor = predictor_of(student, score_resolution='input')
    as_bool = predictor_of(student, score_resolution='input',
                           mask_format='bool')
    images, sizes = inputs[0][:1], inputs[1][:1]
    model = copy.deepcopy(student)
    model.test_cfg['max_per_image'] = 50
    sample = DetDataSample(metainfo=dict(
        img_shape=CANVAS, ori_shape=(48, 96), scale_factor=(2., 2.),
        batch_input_shape=CANVAS, pad_shape=CANVAS))
    with torch.no_grad():
        scores, labels, masks, boxes, _ = [
            o[0] for o in predictor(images, sizes)]
        bool_masks = as_bool(images, sizes)[2][0]
        data = model.data_preprocessor(dict(
            inputs=[images[0].permute(2, 0, 1)], data_samples=[sample]))
        for rescale in (False, True):
            ref = model.predict(data['inputs'], copy.deepcopy(
                data['data_samples']), rescale=rescale)[0].pred_instances
            out = finish_instances(scores, labels, masks, CANVAS,
                                   (48, 96) if rescale else None, 0., boxes)
            assert_same_results(out, finish_instances(
                scores, labels, bool_masks, CANVAS,
                (48, 96) if rescale else None, 0.))
            order = ref.scores.argsort(descending=True)
            mine = out.scores.argsort(descending=True)
            assert torch.equal(ref.labels[order], out.labels[mine])
            if not rescale:  # stock scores the resized mask
                torch.testing.assert_close(out.scores[mine],
                                           ref.scores[order], rtol=0,
                                           atol=1e-5)
            iou = _mask_iou(ref.masks[order], out.masks[mine])
            if rescale:  # random weights: ragged masks, rescaled 2x down
                assert iou.mean() >= 0.9
            else:
                assert torch.equal(ref.masks[order], out.masks[mine])
                assert torch.equal(ref.bboxes[order], out.bboxes[mine])
            assert out.bboxes.shape == (50, 4)
    kept = finish_instances(scores, labels, masks, (70, 150), None, 0.1)
    assert (kept.scores >= 0.1).all() and kept.masks.shape[1:] == (70, 150)


def assert_same_results(a, b):
    """Two ``pred_instances`` equal bit for bit."""
    for key in ('scores', 'labels', 'masks', 'bboxes'):
        assert a.get(key).dtype == b.get(key).dtype, key
        assert torch.equal(a.get(key), b.get(key)), key


def test_packed_masks_are_the_bool_masks_bit_for_bit(student, inputs):
    """8 images, 3 of them smaller than the canvas: packed masks unpack
    to the bool masks (bits past the image 0), with the same scores,
    labels, boxes and ``left_out``; ``finish_instances`` gives the same
    instances from either, cropped, rescaled and thresholded."""
    with torch.no_grad():
        packed = predictor_of(student)(*inputs)
        full = predictor_of(student, mask_format='bool')(*inputs)
    assert packed[2].shape == (8, 50, CANVAS[0], CANVAS[1] // 8)
    assert torch.equal(unpack_masks(packed[2], *CANVAS), full[2])
    assert torch.equal(pack_masks(full[2]), packed[2])
    for i in (0, 1, 3):
        assert torch.equal(packed[i], full[i])
    assert full[2].any() and packed[3].dtype == torch.float32
    for i, (h, w) in enumerate(inputs[1].tolist()):
        for ori_shape, thr in ((None, 0.), ((48, 100), 0.), (None, 0.05)):
            ours = finish_instances(packed[0][i], packed[1][i], packed[2][i],
                                    (h, w), ori_shape, thr, packed[3][i])
            assert_same_results(ours, finish_instances(
                full[0][i], full[1][i], full[2][i], (h, w), ori_shape, thr))
            assert ours.masks.shape[1:] == tuple(ori_shape or (h, w))


@pytest.mark.parametrize('width', [188, 180, 192])
def test_packed_masks_at_any_width(student, width):
    """A canvas width not a multiple of 8 (pad_size_divisor 4): the last
    byte of a row holds the last ``width % 8`` pixels and zeros; unpacked
    and cropped to images of odd sizes, the bool masks and boxes, from the
    same logits, bit for bit."""
    model = copy.deepcopy(student)
    model.data_preprocessor.pad_size_divisor = 4
    canvas = (96, width)
    predictors = [StaticMask2FormerPredictor(model, canvas, mask_format=f)
                  for f in ('packed', 'bool')]
    gen = torch.Generator().manual_seed(width)
    cls_logits = torch.randn(3, 20, len(CLASSES) + 1, generator=gen) * 3
    mask_logits = torch.randn(3, 20, 24, width // 4, generator=gen)
    sizes = torch.tensor([[96, width], [71, width - 7], [50, 93]])
    packed, full = [p.postprocess(cls_logits, mask_logits, sizes)
                    for p in predictors]
    assert packed[2].shape == (3, 50, 96, -(-width // 8))
    assert torch.equal(unpack_masks(packed[2], *canvas), full[2])
    if width % 8:  # the bits past the canvas are 0
        assert not (packed[2][..., -1] & (0xFF >> (width % 8))).any()
    assert torch.equal(packed[3], full[3])
    for i, (h, w) in enumerate(sizes.tolist()):
        assert_same_results(
            finish_instances(packed[0][i], packed[1][i], packed[2][i], (h, w),
                             None, 0., packed[3][i]),
            finish_instances(full[0][i], full[1][i], full[2][i], (h, w)))
    with pytest.raises(DeployError, match='cannot be cropped to 96x200'):
        unpack_masks(packed[2], 96, 200)


def test_bad_settings_name_the_value(student):
    with pytest.raises(DeployError, match='multiples of pad_size_divisor'):
        StaticMask2FormerPredictor(student, (100, 192))
    with pytest.raises(DeployError, match='score_resolution'):
        StaticMask2FormerPredictor(student, CANVAS, score_resolution='x')
    with pytest.raises(DeployError, match='capacity'):
        StaticMask2FormerPredictor(student, CANVAS, capacity=0)
    with pytest.raises(DeployError, match="StaticMask2FormerPredictor: "
                       "mask_format must be one of .*'rle'"):
        StaticMask2FormerPredictor(student, CANVAS, mask_format='rle')
    with pytest.raises(ValueError, match='input_size'):
        prepare_for_inference(student, mode='deploy')
    assert StaticMask2FormerPredictor(student, CANVAS,
                                      capacity=10_000).capacity == 20 * 8
    model = cast_network(copy.deepcopy(student), torch.float32)
    assert next(model.parameters()).dtype == torch.float32


@pytest.mark.parametrize('capacity', [5, 12, 40])
def test_the_objects_the_cap_leaves_out_are_counted(student, capacity):
    """``left_out`` counts what the lean fusion head's
    ``count_over_cap`` counts: 12 confident queries of one class and the
    rest "no object" at a cap of 5 leave 7 out; random logits alike."""
    from mmcast.models.seg_heads.lean_maskformer_fusion_head import \
        count_over_cap
    predictor = StaticMask2FormerPredictor(
        copy.deepcopy(student), CANVAS, capacity=capacity)
    num_queries, num_classes = 20, len(CLASSES)
    sizes = torch.tensor([CANVAS])
    masks = torch.randn(1, num_queries, 24, 48)
    confident = torch.full((1, num_queries, num_classes + 1), -8.)
    confident[0, :12, 0], confident[0, 12:, -1] = 8., 8.
    torch.manual_seed(capacity)
    for cls_logits in (confident, torch.randn(1, num_queries,
                                              num_classes + 1) * 3):
        *_, left_out = predictor.postprocess(cls_logits, masks, sizes)
        assert left_out.shape == (1, num_queries)
        probs = cls_logits[0].softmax(-1)
        top = probs[:, :-1].flatten().topk(predictor.capacity).indices
        for thr in (0., 0.3, 0.9):
            assert int((left_out[0] >= thr).sum()) == count_over_cap(
                probs, top, num_classes, thr)
    *_, left_out = predictor.postprocess(confident, masks, sizes)
    assert int((left_out >= 0.3).sum()) == max(12 - capacity, 0)

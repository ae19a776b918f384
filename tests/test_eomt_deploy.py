# Copyright (c) mmcast contributors. All rights reserved.
"""Deploying the EoMT student (``EoMTStudent``) as the Mask2Former ones.

On the toy EoMT student (4-layer 64-d DINOv3 ViT, 20 queries in the last 2
blocks, random weights) at 96x192: ``build_static_predictor`` builds
:class:`StaticEoMTPredictor`, whose instances (after the host step) are
``EoMTStudent.predict``'s, whatever mask-annealing state the model holds
(the predict never masks the attention, though masking would change the
logits); Dynamo traces the whole predict as one graph in float16 and
inductor's ``fullgraph`` compile gives the eager outputs; the ``.pt2``
package runs with torch alone and gives ``EoMTStudent.predict``'s
instances; the float32 ONNX export run by ``ONNXInferencer`` gives
MMDetection's ``DetInferencer``'s, and the fp16 one is within 2 % of the
eager fp16 network and 5 % of the float32 export.
"""
import copy

import pytest
import torch
import torch._dynamo
from mmdet.structures import DetDataSample

from mmcast.deploy import (DeployError, ONNXInferencer,
                           StaticEoMTPredictor, StaticMask2FormerPredictor,
                           build_static_predictor, compile_predictor,
                           export_onnx, export_pt2, finish_instances,
                           unpack_masks)
from mmcast.deploy.pt2_package import example_inputs
from test_onnx_deploy import assert_agree
from test_pt2_deploy import run_with_torch_alone
from test_static_deploy import (CANVAS, build_student,
                                write_student_checkpoint)

pytestmark = pytest.mark.slow_fixture(2)
EOMT = 'configs/mmcast/toy/supervised_eomt-dinov3-tiny_1xb4-2000it_toy-10p.py'
PAIRS = 50  # test_cfg.max_per_image (of 20 queries x 8 classes)


@pytest.fixture(scope='module')
def eomt():
    return build_student(EOMT)


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('eomt') / 'eomt.pth')
    write_student_checkpoint(path, EOMT)
    return path


@pytest.fixture(scope='module')
def batch():
    """3 random uint8 images filling the canvas (the eager predict pads
    them to nothing), BGR, and their sizes."""
    images, sizes = example_inputs(CANVAS, 3, seed=7)
    return images, torch.tensor([CANVAS] * 3)


def predictor_of(model, dtype=torch.float32, **kwargs):
    return build_static_predictor(copy.deepcopy(model), CANVAS, dtype,
                                  **kwargs)


def eager_instances(model, images):
    """``EoMTStudent.predict``'s ``pred_instances`` of canvas-size uint8
    images (B, H, W, 3) through its data preprocessor."""
    samples = [DetDataSample(metainfo=dict(
        img_shape=CANVAS, ori_shape=CANVAS, scale_factor=(1., 1.)))
        for _ in images]
    data = model.data_preprocessor(dict(
        inputs=[image.permute(2, 0, 1) for image in images],
        data_samples=samples))
    with torch.no_grad():
        out = model.predict(data['inputs'], data['data_samples'])
    return [sample.pred_instances for sample in out]


def static_instances(outputs, i):
    """Image ``i`` of the static outputs as ``pred_instances``."""
    scores, labels, masks = (o[i] for o in outputs[:3])
    return finish_instances(scores, labels, masks, CANVAS, None, 0.)


def assert_eager_instances(model, outputs, images):
    """The static ``outputs`` of ``images`` are ``EoMTStudent.predict``'s:
    the same labels, masks (IoU >= 0.99) and scores (1e-3), all 50."""
    for i, ref in enumerate(eager_instances(model, images)):
        n, _, _ = assert_agree(static_instances(outputs, i), ref, 0.)
        assert n == PAIRS


def test_static_predict_gives_eomts_predict_whatever_the_annealing(
        eomt, batch):
    """Scores from the upsampled masks (``'input'``), as the fusion head's:
    ``EoMTStudent.predict``'s instances; mask probabilities of 1 (a new
    model's), 0.5 or 0 give the same outputs, though the training forward
    with masked attention gives other logits."""
    predictor = predictor_of(eomt, score_resolution='input')
    assert type(predictor) is StaticEoMTPredictor
    assert predictor.capacity == PAIRS
    model = predictor.detector
    assert model.attn_mask_probs == [1., 1.]
    outputs = []
    with torch.no_grad():
        for probs in ([1., 1.], [.5, .5], [0., 0.]):
            model.set_attn_mask_probs(probs)
            outputs.append(predictor(*batch))
        inputs = predictor.preprocess(*batch)
        unmasked = model.forward_queries(inputs, supervise_blocks=True)
        model.set_attn_mask_probs([1., 1.])
        masked = model.forward_queries(inputs, supervise_blocks=True)
        network = predictor.network(inputs)
    for other in outputs[1:]:
        for got, ref in zip(other, outputs[0]):
            assert torch.equal(got, ref)
    assert torch.equal(network[0], unmasked[0][-1])
    assert torch.equal(network[1], unmasked[1][-1])
    # layer scale 0.1 at random init: masking moves the logits ~1e-3
    assert (network[1] - masked[1][-1]).abs().max() > 1e-4
    assert_eager_instances(eomt, outputs[0], batch[0])


def test_whole_predict_is_one_graph_and_compiles(eomt, batch):
    """Dynamo traces the float16 predict without a graph break; inductor's
    ``fullgraph`` compile (a break would raise) of the float32 one gives
    the eager outputs."""
    with torch.no_grad():
        explained = torch._dynamo.explain(predictor_of(eomt, torch.float16))(
            *example_inputs(CANVAS, 2, seed=3))
    assert explained.graph_break_count == 0, explained.break_reasons
    assert explained.graph_count == 1
    torch._dynamo.reset()
    predictor = predictor_of(eomt)
    compiled = compile_predictor(predictor_of(eomt))
    with torch.no_grad():
        ref = predictor(*batch)
        out = compiled(*batch)
    # masks packed 8 pixels a byte along the width
    assert [o.shape for o in out] == [
        (3, PAIRS), (3, PAIRS), (3, PAIRS, CANVAS[0], CANVAS[1] // 8),
        (3, PAIRS, 4), (3, 20)]
    assert torch.equal(out[1], ref[1])
    torch.testing.assert_close(out[0], ref[0], rtol=0, atol=1e-5)
    ours, theirs = (unpack_masks(o[2], *CANVAS) for o in (out, ref))
    iou = ((ours & theirs).flatten(2).sum(-1) /
           (ours | theirs).flatten(2).sum(-1).clamp(min=1))
    assert iou.min() >= 0.999
    torch._dynamo.reset()


def test_pt2_package_runs_with_torch_alone_and_gives_eomts_predict(
        eomt, checkpoint, batch, tmp_path):
    out = export_pt2(EOMT, checkpoint, str(tmp_path / 'eomt.pt2'),
                     input_size=CANVAS, score_resolution='input',
                     max_batch=4)
    meta = out['metadata']
    assert meta['model_type'] == 'EoMTStudent'
    assert (meta['num_queries'], meta['capacity']) == (20, PAIRS)
    assert out['max_score_diff'] <= 1e-3
    run = run_with_torch_alone(out['file'], batch, tmp_path)
    assert run['loaded'] == []  # no mmcast, mmdet, mmcv, ... imported
    assert_eager_instances(eomt, run['batched'], batch[0])
    alone = [torch.cat(o) for o in zip(*run['alone'])]
    assert_eager_instances(eomt, alone, batch[0])


def test_onnx_export_gives_the_eager_instances(checkpoint, tmp_path):
    """``ONNXInferencer`` (the lean host step) on the float32 export gives
    ``DetInferencer``'s instances of the EoMT config; the export verified
    against the eager network."""
    from mmcv import imwrite
    images, _ = example_inputs(CANVAS, 2, seed=11)
    paths = [str(tmp_path / f'{i}.png') for i in range(2)]
    for path, image in zip(paths, images):
        imwrite(image.numpy(), path)
    out = export_onnx(EOMT, checkpoint, str(tmp_path / 'eomt.onnx'),
                      input_shape=CANVAS)
    assert out['max_rel_diff'] < 1e-4
    from mmdet.apis import DetInferencer
    inferencer = DetInferencer(model=EOMT, weights=checkpoint, device='cpu',
                               show_progress=False)
    eager = [s.pred_instances for s in inferencer(
        paths, return_datasamples=True)['predictions']]
    predicted = ONNXInferencer(out['file']).predict(paths, score_thr=0.)
    for ours, ref in zip(predicted, eager):
        n, _, _ = assert_agree(ours.pred_instances, ref, 0.)
        assert n == PAIRS
    # fp16: ONNX Runtime within 2 % of the eager fp16 network (verified on
    # export) and within 5 % of the float32 export, as the DPT student's
    import numpy as np
    import onnxruntime as ort
    half = export_onnx(EOMT, checkpoint, str(tmp_path / 'eomt16.onnx'),
                       input_shape=CANVAS, precision='float16')
    assert half['max_rel_diff'] < 2e-2
    x = {'images': (torch.rand(2, 3, *CANVAS, generator=torch.Generator(
    ).manual_seed(0)) * 255).numpy()}
    sessions = [ort.InferenceSession(f, providers=['CPUExecutionProvider'])
                for f in (half['file'], out['file'])]
    for got, ref in zip(*(s.run(None, x) for s in sessions)):
        assert got.dtype == np.float32 and np.isfinite(got).all()
        assert np.abs(got - ref).max() / max(1., np.abs(ref).max()) < 5e-2


def test_each_predictor_refuses_the_others_detector(eomt):
    with pytest.raises(DeployError, match='EoMTStudent is not a '
                       'Mask2Former'):
        StaticMask2FormerPredictor(copy.deepcopy(eomt), CANVAS)
    with pytest.raises(DeployError, match='Linear is not an EoMTStudent'):
        StaticEoMTPredictor(torch.nn.Linear(2, 2), CANVAS)

# Copyright (c) mmcast contributors. All rights reserved.
"""The students' fp16 ONNX graph is one TensorRT 10 builds, checked
statically: only standard ONNX ops (no custom domain), each in TensorRT's
supported list below, LayerNorm computed in float32 inside the fp16 graph,
float32 input and outputs; ONNX Runtime runs it in fp16 with finite
outputs, also on saturated images, close to the eager fp16 network and to
the float32 export. The toy students: the DINOv2 DPT one, the R-18 one,
whose MSDeformAttn pixel decoder samples its values in float32
(``GridSample``), and the EoMT one, whose ViT's norms are timm's
(``LayerNorm`` and the channels-first ``LayerNorm2d`` of its upscaling)."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from mmcast.deploy import export_onnx
from test_eomt_deploy import EOMT
from test_static_deploy import R18, STUDENT, write_student_checkpoint

FIXED = (96, 192)
# The ONNX operators TensorRT 10's ONNX parser supports (onnx-tensorrt's
# docs/operators.md for TensorRT 10.x), restricted to those an mmcast
# Mask2Former export may produce; an op outside it needs a TensorRT plugin.
TENSORRT_10_OPS = frozenset({
    'Abs', 'Add', 'And', 'ArgMax', 'ArgMin', 'AveragePool',
    'BatchNormalization', 'Cast', 'Ceil', 'Clip', 'Concat', 'Constant',
    'ConstantOfShape', 'Conv', 'ConvTranspose', 'Cos', 'CumSum', 'Div',
    'Einsum', 'Equal', 'Erf', 'Exp', 'Expand', 'Flatten', 'Floor', 'Gather',
    'GatherElements', 'GatherND', 'Gemm', 'GlobalAveragePool', 'Greater',
    'GreaterOrEqual', 'GridSample', 'GroupNormalization', 'Identity',
    'InstanceNormalization', 'LayerNormalization', 'LeakyRelu', 'Less',
    'LessOrEqual', 'Log', 'MatMul', 'Max', 'MaxPool', 'Min', 'Mod', 'Mul',
    'Neg', 'Not', 'Or', 'Pad', 'Pow', 'Range', 'Reciprocal', 'ReduceMax',
    'ReduceMean', 'ReduceMin', 'ReduceProd', 'ReduceSum', 'Relu', 'Reshape',
    'Resize', 'ScatterElements', 'ScatterND', 'Shape', 'Sigmoid', 'Sin',
    'Slice', 'Softmax', 'Split', 'Sqrt', 'Squeeze', 'Sub', 'Tanh', 'Tile',
    'TopK', 'Transpose', 'Unsqueeze', 'Where'
})


@pytest.fixture(scope='module', params=['dpt', 'r18', 'eomt'])
def exports(request, tmp_path_factory):
    config = {'dpt': STUDENT, 'r18': R18, 'eomt': EOMT}[request.param]
    folder = tmp_path_factory.mktemp('onnx16')
    checkpoint = str(folder / 'student.pth')
    write_student_checkpoint(checkpoint, config)
    return {precision: export_onnx(
        config, checkpoint, str(folder / f'student_{precision}.onnx'),
        input_shape=FIXED, precision=precision)
        for precision in ('float16', 'float32')}


def _images(seed):
    gen = torch.Generator().manual_seed(seed)
    return [
        (torch.rand(2, 3, *FIXED, generator=gen) * 255).numpy(),
        np.full((1, 3, *FIXED), 255, np.float32),  # saturated
        np.zeros((1, 3, *FIXED), np.float32),
    ]


def _weight_types(model):
    """Element type of every initializer, and of the ``Identity`` outputs
    that stand for one (the exporter's deduplicated equal weights)."""
    types = {i.name: i.data_type for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == 'Identity' and node.input[0] in types:
            types[node.output[0]] = types[node.input[0]]
    return types


def test_fp16_graph_holds_only_tensorrt_ops(exports):
    out = exports['float16']
    model = onnx.load(out['file'])
    onnx.checker.check_model(model, full_check=True)
    assert {o.domain for o in model.opset_import} <= {'', 'ai.onnx'}
    assert {n.domain for n in model.graph.node} <= {'', 'ai.onnx'}
    ops = {n.op_type for n in model.graph.node}
    assert ops <= TENSORRT_10_OPS, sorted(ops - TENSORRT_10_OPS)
    assert out['metadata']['precision'] == 'float16'
    assert out['max_rel_diff'] < 2e-2
    weights = _weight_types(model)
    half = onnx.TensorProto.FLOAT16
    # the network runs in fp16 (every convolution's weights), ...
    convs = [n for n in model.graph.node if n.op_type in ('Conv', 'Gemm')]
    assert convs and all(weights.get(n.input[1], half) == half
                         for n in convs)
    # ... LayerNorm in float32 on a float32 input
    norms = [n for n in model.graph.node if n.op_type == 'LayerNormalization']
    assert norms and all(weights[n.input[1]] == onnx.TensorProto.FLOAT
                         for n in norms)
    casts = {n.output[0]: n for n in model.graph.node if n.op_type == 'Cast'}
    assert all(casts[n.input[0]].attribute[0].i == onnx.TensorProto.FLOAT
               for n in norms)
    for value in (*model.graph.input, *model.graph.output):
        assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def test_fp16_graph_gives_finite_outputs_close_to_float32(exports):
    half = ort.InferenceSession(exports['float16']['file'],
                                providers=['CPUExecutionProvider'])
    full = ort.InferenceSession(exports['float32']['file'],
                                providers=['CPUExecutionProvider'])
    for images in _images(seed=0):
        got = half.run(None, {'images': images})
        ref = full.run(None, {'images': images})
        for g, r in zip(got, ref):
            assert g.dtype == np.float32 and np.isfinite(g).all()
            scale = max(1., float(np.abs(r).max()))
            assert float(np.abs(g - r).max()) / scale < 5e-2

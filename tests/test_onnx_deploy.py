# Copyright (c) mmcast contributors. All rights reserved.
"""Deploying the student: ONNX export and the ONNX Runtime inferencer.

The toy R-18 student is trained for 2 iterations with ``mim train``,
published with tools/publish_model.py and exported at dynamic and fixed
H/W; ONNX Runtime's instances are compared with MMDetection's
``DetInferencer`` (eager PyTorch, stock ``MaskFormerFusionHead``) on the
same images. The DINOv2-S DPT student (architecture of
student_dinov2-s_dpt-52m.py at tiny width) exports and agrees at a fixed
and at dynamic input sizes (mmpretrain's position-embedding resize traces
to shape-dependent ONNX ops).
"""
import glob
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import cv2
import onnx
import pytest
import torch

from conftest import REPO_ROOT, load_script, toy_cfg_options
from mmcast.deploy import DeployError, ONNXInferencer, export_onnx
from mmcast.utils.checkpoint_loading import CheckpointError

STUDENT_CONFIG = 'configs/mmcast/toy/mask2former_r18_1xb4-1500it_toy.py'
CLASSES = ('person', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle',
           'bicycle')
MIM = osp.join(osp.dirname(sys.executable), 'mim')
FIXED = (96, 192)  # the toy test pipeline's 64x128 -> 96x192, divisor 32


@pytest.fixture(scope='module')
def published(repo_root, toy_data_root, tmp_path_factory):
    """The 2-iteration toy student, published."""
    work_dir = str(tmp_path_factory.mktemp('student'))
    opts = toy_cfg_options(toy_data_root, work_dir) + [
        'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
        'param_scheduler.end=2', 'randomness.seed=0'
    ]
    proc = subprocess.run(
        [MIM, 'train', 'mmdet', STUDENT_CONFIG, '--work-dir', work_dir,
         '--cfg-options'] + opts, cwd=repo_root, capture_output=True,
        text=True, env=dict(os.environ, PYTHONWARNINGS='ignore'))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    from mmcast.deploy.publish import publish
    return publish(
        osp.join(work_dir, osp.basename(STUDENT_CONFIG)),
        osp.join(work_dir, 'iter_2.pth'),
        str(tmp_path_factory.mktemp('published')), name='r18_toy')


@pytest.fixture(scope='module')
def images(toy_data_root, tmp_path_factory):
    """A directory of the 4 toy val images (64x128) and a 60x100 crop
    (resized to 96x160: another padded shape than the others)."""
    folder = tmp_path_factory.mktemp('images')
    paths = sorted(glob.glob(osp.join(toy_data_root, 'leftImg8bit', 'val',
                                      '*', '*.png')))
    for path in paths:
        shutil.copy(path, folder)
    crop = cv2.imread(paths[0])[2:62, 20:120]
    cv2.imwrite(str(folder / 'crop.png'), crop)
    return sorted(glob.glob(str(folder / '*.png')))


@pytest.fixture(scope='module')
def exported(published, tmp_path_factory):
    out = tmp_path_factory.mktemp('onnx')
    return {
        name: export_onnx(published['config'], published['checkpoint'],
                          str(out / f'r18_toy_{name}.onnx'),
                          input_shape=shape)
        for name, shape in (('dynamic', None), ('fixed', FIXED))
    }


def _eager(config, checkpoint, paths):
    """Eager PyTorch predictions of MMDetection's DetInferencer."""
    from mmdet.apis import DetInferencer
    inferencer = DetInferencer(model=config, weights=checkpoint,
                               device='cpu', show_progress=False)
    return [s.pred_instances for s in inferencer(
        paths, return_datasamples=True)['predictions']]


@pytest.fixture(scope='module')
def eager(published, images):
    return _eager(published['config'], published['checkpoint'], images)


def _mask_iou(a, b):
    union = (a | b).sum().item()
    return 1. if union == 0 else (a & b).sum().item() / union


def assert_agree(ours, ref, score_thr):
    """Same instances (label, mask IoU >= 0.99, score within 1e-3) at
    ``score_thr``; ``ref`` is not thresholded. Returns (number compared,
    max score difference, min mask IoU)."""
    ref = ref[ref.scores >= score_thr]
    assert len(ours) == len(ref)
    used, worst_diff, worst_iou = set(), 0., 1.
    for i in torch.argsort(ours.scores, descending=True).tolist():
        found = []
        for j in range(len(ref)):
            if j in used or ref.labels[j] != ours.labels[i]:
                continue
            iou = _mask_iou(ours.masks[i], ref.masks[j])
            if iou >= 0.99:
                found.append(
                    (abs(ours.scores[i] - ref.scores[j]).item(), j, iou))
        assert found, f'instance {i} (label {ours.labels[i]}) unmatched'
        diff, j, iou = min(found)
        used.add(j)
        assert diff <= 1e-3
        worst_diff, worst_iou = max(worst_diff, diff), min(worst_iou, iou)
    return len(ours), worst_diff, worst_iou


def test_export_is_checked_and_holds_the_runtime_settings(
        exported, published):
    for name, out in exported.items():
        path = out['file']
        assert out['max_rel_diff'] < 1e-4
        assert not glob.glob(osp.join(osp.dirname(path), '.*.tmp'))
        model = onnx.load(path)
        onnx.checker.check_model(model)
        assert model.opset_import[0].version == 17
        meta = {p.key: json.loads(p.value) for p in model.metadata_props}
        assert tuple(meta['classes']) == CLASSES
        assert meta['num_things_classes'] == 8 and meta['max_per_image'] == 50
        assert (meta['num_queries'], meta['capacity']) == (20, 20)
        assert meta['pad_size_divisor'] == 32
        assert meta['resize']['scale'] == [192, 96]
        assert meta['resize']['keep_ratio'] is True
        assert meta['checkpoint_sha256'] == published['sha256']
        assert meta['source_checkpoint'] == 'iter_2.pth'
        assert meta['pad_value'] == pytest.approx([103.53, 116.28, 123.675])
        dims = [d.dim_param or d.dim_value for d in
                model.graph.input[0].type.tensor_type.shape.dim]
        assert dims == (['batch', 3, 'height', 'width'] if name == 'dynamic'
                        else ['batch', 3, *FIXED])
        assert [o.name for o in model.graph.output] == [
            'cls_logits', 'mask_logits']


def test_onnx_runtime_agrees_with_eager_pytorch(exported, eager, images):
    """At score_thr 0.3 (the 2-iteration model, scores 0.05-0.15, keeps
    none there), 0.1 (some) and 0 (every kept (query, class) pair), on all
    images (dynamic H/W) and on the images the fixed 96x192 input fits
    unpadded (the others pad further than the eager model does)."""
    stats, counts = [], {}
    for name, out in exported.items():
        paths = images if name == 'dynamic' else [
            p for p in images if 'crop' not in p]
        inferencer = ONNXInferencer(out['file'])
        for thr in (0.3, 0.1, 0.):
            for ours, ref in zip(inferencer.predict(paths, score_thr=thr),
                                 [eager[images.index(p)] for p in paths]):
                assert ours.ori_shape == ref.masks.shape[1:]
                stats.append(assert_agree(ours.pred_instances, ref, thr))
                counts[thr] = counts.get(thr, 0) + stats[-1][0]
    assert 0 < counts[0.1] < counts[0.] == 9 * 50  # 50 per image at 0
    compared = sum(n for n, _, _ in stats)
    print(f'\ncompared {compared} instances: max score diff '
          f'{max(d for _, d, _ in stats):.1e}, min mask IoU '
          f'{min(i for _, _, i in stats):.4f}')


def test_batched_inputs_and_arrays_give_the_same_instances(
        exported, images):
    paths = [p for p in images if 'crop' not in p]
    single = ONNXInferencer(exported['dynamic']['file'], score_thr=0.)
    batched = ONNXInferencer(exported['dynamic']['file'], score_thr=0.,
                             batch_size=2)
    arrays = [cv2.imread(p) for p in paths]
    for a, b in zip(single.predict(paths), batched.predict(arrays)):
        assert_agree(b.pred_instances, a.pred_instances, 0.)


def _objects_over_cap(inferencer, path, cap):
    """The objects of an image that a cap of ``cap`` (query, class) pairs
    leaves out at score threshold 0, counted from the graph's class logits
    (Q, C + 1): the queries whose most probable class is a thing and whose
    probability is under that of the lowest pair kept."""
    img, _ = inferencer.resize(inferencer.load_image(path))
    cls_logits, _ = inferencer.forward(inferencer.pad_batch([img]))
    probs = torch.from_numpy(cls_logits[0]).float().softmax(-1)
    lowest_kept = probs[:, :-1].flatten().topk(cap).values.min()
    best_prob, best = probs.max(-1)
    things = best < inferencer.meta['num_things_classes']
    return int((things & (best_prob < lowest_kept)).sum())


def test_inferencer_writes_a_drawing_and_a_json_per_image(
        exported, images, tmp_path):
    from pycocotools import mask as mask_util
    folder = osp.dirname(images[0])
    inferencer = ONNXInferencer(exported['dynamic']['file'], score_thr=0.)
    out = inferencer(folder, out_dir=str(tmp_path), return_vis=True)
    assert len(out['predictions']) == len(out['visualization']) == 5
    for path, pred, vis in zip(images, out['predictions'],
                               out['visualization']):
        name = osp.basename(path)
        image = cv2.imread(osp.join(tmp_path, 'vis', name))
        assert image.shape == cv2.imread(path).shape == vis.shape
        with open(osp.join(tmp_path, 'preds', name[:-4] + '.json')) as f:
            saved = json.load(f)
        assert saved == json.loads(json.dumps(pred))
        assert len(saved['labels']) == len(saved['scores']) == 50
        assert saved['max_per_image'] == 50
        assert saved['num_over_cap'] == _objects_over_cap(inferencer, path, 50)
        masks = mask_util.decode(saved['masks'])
        assert masks.shape == (*image.shape[:2], 50)
    assert len(os.listdir(tmp_path / 'vis')) == 5
    assert len(os.listdir(tmp_path / 'preds')) == 5
    assert inferencer.list_inputs([folder, images[0]]) == images + images[:1]
    out = inferencer(cv2.imread(images[0]), out_dir=str(tmp_path / 'a'))
    assert os.listdir(tmp_path / 'a' / 'vis') == ['00000000.jpg']
    assert os.listdir(tmp_path / 'a' / 'preds') == ['00000000.json']


def test_command_lines(published, images, tmp_path, capsys, monkeypatch):
    model = str(tmp_path / 'cli.onnx')
    export_cli = load_script(osp.join(REPO_ROOT, 'tools', 'deploy',
                                      'export_onnx.py'))
    monkeypatch.setattr(sys, 'argv', [
        'export_onnx.py', published['config'], published['checkpoint'],
        model, '--shape', '96', '160'])
    export_cli.main()
    assert 'input images (B, 3, 96x160)' in capsys.readouterr().out
    infer_cli = load_script(osp.join(REPO_ROOT, 'tools', 'deploy',
                                     'onnx_infer.py'))
    crop, toy = images[0], images[1]
    assert osp.basename(crop) == 'crop.png'
    monkeypatch.setattr(sys, 'argv', [
        'onnx_infer.py', model, crop, '--out-dir', str(tmp_path / 'o'),
        '--score-thr', '0'])
    infer_cli.main()
    assert '1 image(s), 50 instance(s)' in capsys.readouterr().out
    assert os.listdir(tmp_path / 'o' / 'preds') == ['crop.json']
    assert len(os.listdir(tmp_path / 'o' / 'vis')) == 1
    monkeypatch.setattr(sys, 'argv', ['onnx_infer.py', model, toy])
    with pytest.raises(SystemExit, match='96x160 inputs but an image is '
                       '96x192'):
        infer_cli.main()


def test_bad_inputs_name_the_path(published, exported, tmp_path):
    missing = str(tmp_path / 'nope.onnx')
    with pytest.raises(FileNotFoundError, match=missing):
        ONNXInferencer(missing)
    inferencer = ONNXInferencer(exported['dynamic']['file'])
    empty = tmp_path / 'empty'
    empty.mkdir()
    (empty / 'notes.txt').write_text('no image here')
    with pytest.raises(DeployError, match=f'{empty}: no image'):
        inferencer(str(empty), out_dir=str(tmp_path / 'out'))
    with pytest.raises(FileNotFoundError, match='missing.png'):
        inferencer.predict(str(tmp_path / 'missing.png'))
    plain = str(tmp_path / 'plain.onnx')
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node('Identity', ['x'], ['y'])], 'g',
        [onnx.helper.make_tensor_value_info('x', onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info('y', onnx.TensorProto.FLOAT, [1])])
    onnx.save(onnx.helper.make_model(graph), plain)
    with pytest.raises(DeployError, match=f'{plain}: no mmcast metadata'):
        ONNXInferencer(plain)
    damaged = tmp_path / 'damaged.onnx'
    damaged.write_bytes(b'not a model')
    with pytest.raises(DeployError, match=f'{damaged}: ONNX Runtime cannot'):
        ONNXInferencer(str(damaged))

    out = str(tmp_path / 'x.onnx')
    ckpt = str(tmp_path / 'missing.pth')
    with pytest.raises(FileNotFoundError, match=ckpt):
        export_onnx(published['config'], ckpt, out)
    with pytest.raises(FileNotFoundError, match='missing.py'):
        export_onnx(str(tmp_path / 'missing.py'), published['checkpoint'],
                    out)
    retina = tmp_path / 'retina.py'
    retina.write_text("default_scope = 'mmdet'\n"
                      "model = dict(type='RetinaNet')")
    with pytest.raises(DeployError, match=f"{retina}: model.type='RetinaNet' "
                       'is not a Mask2Former'):
        export_onnx(str(retina), published['checkpoint'], out)
    damaged = tmp_path / 'damaged.pth'
    damaged.write_bytes(b'PK\x03\x04 not a checkpoint')
    with pytest.raises(CheckpointError, match=str(damaged)):
        export_onnx(published['config'], str(damaged), out)
    with pytest.raises(DeployError, match='multiples of .* 32'):
        export_onnx(published['config'], published['checkpoint'], out,
                    input_shape=(100, 192))
    assert not osp.exists(out)


DINOV2_CFG = """
_base_ = [
    '{root}/configs/mmcast/_base_/models/student_dinov2-s_dpt-52m.py',
    '{root}/configs/mmcast/_base_/datasets/toy_cityscapes_instance.py',
    '{root}/configs/mmcast/_base_/toy_runtime.py',
]
custom_imports = dict(imports=['mmcast'], allow_failed_imports=False)
attn = dict(embed_dims=32, num_heads=2)
model = dict(
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=32, num_layers=4, num_heads=2,
                  feedforward_channels=64),
        out_indices=(0, 1, 2, 3), out_channels=(8, 16, 16, 32),
        init_cfg=None),
    panoptic_head=dict(
        in_channels=[8, 16, 16, 32], feat_channels=32, out_channels=32,
        num_queries=10, positional_encoding=dict(num_feats=16),
        transformer_decoder=dict(num_layers=2, layer_cfg=dict(
            self_attn_cfg=attn, cross_attn_cfg=attn,
            ffn_cfg=dict(embed_dims=32, feedforward_channels=64)))))
"""


@pytest.mark.parametrize('input_shape', [(112, 196), None])
def test_dinov2_dpt_student_exports_and_agrees(images, tmp_path,
                                               input_shape):
    """The paper's student architecture (DINOv2 ViT-S/14 read out DPT-style,
    DPT pixel decoder, pad to 28) at tiny width, random weights."""
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    config = tmp_path / 'dinov2_tiny.py'
    config.write_text(DINOV2_CFG.format(root=REPO_ROOT))
    cfg = Config.fromfile(str(config))
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    assert type(model.backbone).__name__ == 'DINOv2MultiLevel'
    checkpoint = str(tmp_path / 'dinov2_tiny.pth')
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(dataset_meta=dict(classes=CLASSES))),
               checkpoint)
    out = export_onnx(str(config), checkpoint, str(tmp_path / 'd.onnx'),
                      input_shape=input_shape)
    assert out['metadata']['pad_size_divisor'] == 28
    paths = [p for p in images if 'crop' not in p or not input_shape]
    eager = _eager(str(config), checkpoint, paths)
    predicted = ONNXInferencer(out['file']).predict(paths, score_thr=0.)
    for ours, ref in zip(predicted, eager):
        assert ours.batch_input_shape == (112, 196 if 'crop' not in
                                          ours.img_path else 168)
        n, _, _ = assert_agree(ours.pred_instances, ref, 0.)
        assert n == 80  # 10 queries x 8 classes

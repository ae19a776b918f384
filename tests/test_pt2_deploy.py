# Copyright (c) mmcast contributors. All rights reserved.
"""The ``.pt2`` package of the student (``torch.export`` + AOTInductor).

The toy DINOv2 DPT student (random weights) is exported once; the package
runs in a Python process that imports torch and nothing of mmcast,
MMDetection or MMCV, and gives the eager static predictor's instances
(same labels, mask IoU >= 0.99, scores within 1e-3) at batch 4 and, per
image, at batch 1, its masks packed 8 pixels a byte; it carries its
metadata (classes, capacity, input size, mask format, checkpoint sha256)
readable without loading it, and a package written before packed masks
(no ``mask_format``) reads as bool masks; ``PT2Inferencer`` gives
``ONNXInferencer``'s predictions and files, and checks a given sha256
before anything is loaded. A toy R-18 student (MMDetection's MSDeformAttn
pixel decoder) exports too and gives the eager static predictor's
instances; a network that reads device data back on the host is refused
by name.
"""
import json
import os
import os.path as osp
import subprocess
import sys
import zipfile

import cv2
import numpy as np
import pytest
import torch

from conftest import REPO_ROOT, load_script
from mmcast.deploy import (DeployError, ONNXInferencer, PT2Inferencer,
                           encode_metadata, export_onnx, export_pt2,
                           read_pt2_metadata)
from mmcast.deploy.pt2_package import eager_reference, example_inputs
from mmcast.structures import masks_to_bboxes
from mmcast.utils.file_hashing import file_sha256
from test_onnx_deploy import assert_agree
from test_static_deploy import (CANVAS, CLASSES, R18, STUDENT,
                                assert_same_instances, canvas_masks,
                                write_student_checkpoint)

pytestmark = pytest.mark.slow_fixture(4)
FORBIDDEN = ('mmcast', 'mmdet', 'mmcv', 'mmengine', 'mmpretrain')
# Runs in a subprocess: torch alone. argv: package, inputs .pt, outputs .pt
TORCH_ONLY_RUN = r'''
import sys
import torch
package = torch._inductor.aoti_load_package(sys.argv[1])
images, sizes = torch.load(sys.argv[2])
with torch.no_grad():
    batched = package(images, sizes)
    alone = [package(images[i:i + 1], sizes[i:i + 1])
             for i in range(len(images))]
loaded = sorted(m for m in sys.modules
                if m.split('.')[0] in %r)
torch.save(dict(batched=batched, alone=alone, loaded=loaded,
                metadata=package.get_metadata()), sys.argv[3])
''' % (FORBIDDEN, )
# The R-18 student with one encoder and one decoder layer (of 2 and 3):
# AOTInductor compiles it in about 60 % of the time, the same modules
R18_SMALL = {'model.panoptic_head.pixel_decoder.encoder.num_layers': 1,
             'model.panoptic_head.transformer_decoder.num_layers': 1}


@pytest.fixture(scope='module')
def published(tmp_path_factory):
    folder = tmp_path_factory.mktemp('pt2')
    checkpoint = str(folder / 'student.pth')
    model = write_student_checkpoint(checkpoint)
    return dict(folder=folder, checkpoint=checkpoint, model=model)


@pytest.fixture(scope='module')
def package(published):
    """Exported with scores from the upsampled masks (the ONNX runtime's
    and the stock head's), batch 1 to 8."""
    return export_pt2(STUDENT, published['checkpoint'],
                      str(published['folder'] / 'student.pt2'),
                      input_size=CANVAS, score_resolution='input',
                      max_batch=8)


@pytest.fixture(scope='module')
def images(toy_data_root, tmp_path_factory):
    """Toy val images at the canvas size (the test resize keeps them) and
    one at 64x128 (resized to 96x192, results rescaled)."""
    folder = tmp_path_factory.mktemp('images')
    root = osp.join(toy_data_root, 'leftImg8bit', 'val')
    paths = sorted(osp.join(d, f) for d, _, files in os.walk(root)
                   for f in files if f.endswith('.png'))
    for i, path in enumerate(paths):
        image = cv2.imread(path)
        cv2.imwrite(str(folder / f'{i}.png'), cv2.resize(
            image, CANVAS[::-1], interpolation=cv2.INTER_LINEAR))
    cv2.imwrite(str(folder / 'small.png'), cv2.imread(paths[0]))
    return sorted(str(p) for p in folder.iterdir())


def _canvas_batch(seed=0):
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (4, *CANVAS, 3), dtype=torch.uint8,
                           generator=gen)
    sizes = torch.tensor([[96, 192], [80, 160], [96, 192], [50, 100]])
    return images, sizes


def _instances(outputs, i):
    """(scores, labels, bool masks) of image ``i`` as an
    InstanceData-like."""
    from mmengine.structures import InstanceData
    scores, labels, masks, *_ = [o[i] for o in outputs]
    return InstanceData(scores=scores, labels=labels,
                        masks=canvas_masks(masks))


def run_with_torch_alone(path, batch, folder):
    """The package's outputs on ``batch`` (images, sizes), all at once
    (``batched``) and per image (``alone``), in a process that imports
    torch alone; ``loaded``: the mmcast, mmdet, ... modules it holds."""
    inputs, result = folder / 'inputs.pt', folder / 'outputs.pt'
    torch.save(batch, inputs)
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)  # mmcast importable
    proc = subprocess.run(
        [sys.executable, '-c', TORCH_ONLY_RUN, path, str(inputs),
         str(result)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return torch.load(result)


def test_package_runs_with_torch_alone_and_gives_eager_instances(
        package, published, tmp_path):
    out = run_with_torch_alone(package['file'], _canvas_batch(), tmp_path)
    assert out['loaded'] == []  # no mmcast, mmdet, mmcv, ... imported
    assert json.loads(out['metadata']['classes']) == list(CLASSES)
    reference = eager_reference(published['model'], package['metadata'])
    with torch.no_grad():
        expected = reference(*_canvas_batch())
    compared = 0
    assert out['batched'][2].dtype == torch.uint8
    assert out['batched'][2].shape == (4, 50, CANVAS[0], CANVAS[1] // 8)
    for i in range(4):
        ref = _instances(expected, i)
        for got in (_instances(out['batched'], i),
                    _instances(out['alone'][i], 0)):
            n, diff, iou = assert_agree(got, ref, 0.)
            compared += n
            assert got.masks.shape == (50, *CANVAS)
    assert compared == 4 * 2 * 50
    # the boxes are those of the unpacked masks
    boxes = masks_to_bboxes(canvas_masks(out['batched'][2]).flatten(0, 1))
    assert torch.equal(boxes.view(4, 50, 4), out['batched'][3])


def test_metadata_is_inside_and_read_without_loading(package, published):
    meta = read_pt2_metadata(package['file'])
    assert meta == {**meta, **package['metadata']}
    assert tuple(meta['classes']) == CLASSES
    assert meta['capacity'] == 50 == meta['max_per_image']  # test_cfg's
    assert meta['input_size'] == list(CANVAS)
    assert meta['precision'] == 'float32' and meta['device'] == 'cpu'
    assert meta['checkpoint_sha256'] == file_sha256(
        published['checkpoint'], use_cache=False)
    assert meta['inputs'] == ['images', 'image_sizes']
    assert meta['outputs'] == ['scores', 'labels', 'packed_masks', 'boxes',
                               'left_out']
    assert meta['mask_format'] == 'packed'
    assert meta['AOTI_DEVICE_KEY'] == 'cpu'
    assert package['sha256'] == file_sha256(package['file'],
                                            use_cache=False)
    assert not [f for f in os.listdir(published['folder'])
                if f.startswith('.')]  # written atomically


def test_inferencer_gives_the_onnx_inferencers_predictions(
        package, published, images, tmp_path):
    onnx_file = export_onnx(STUDENT, published['checkpoint'],
                            str(tmp_path / 'student.onnx'))['file']
    ours = PT2Inferencer(package['file'], score_thr=0., batch_size=2,
                         sha256=package['sha256'])
    theirs = ONNXInferencer(onnx_file, score_thr=0.)
    same_size = [p for p in images if 'small' not in p]
    for a, b in zip(ours.predict(same_size), theirs.predict(same_size)):
        assert a.ori_shape == b.ori_shape == CANVAS
        n, _, _ = assert_agree(a.pred_instances, b.pred_instances, 0.)
        assert n == 50
        # the cap of 50 of the 20 x 8 pairs, and the objects it left out
        assert a.pred_instances.metainfo == b.pred_instances.metainfo
        assert a.pred_instances.metainfo['max_per_image'] == 50
    small = [p for p in images if 'small' in p]
    a, b = ours.predict(small)[0], theirs.predict(small)[0]
    assert a.pred_instances.masks.shape == b.pred_instances.masks.shape == (
        50, 64, 128)
    assert torch.equal(a.pred_instances.labels.sort().values,
                       b.pred_instances.labels.sort().values)
    out = ours(images, out_dir=str(tmp_path / 'out'))
    assert sorted(os.listdir(tmp_path / 'out' / 'preds')) == sorted(
        osp.basename(p)[:-4] + '.json' for p in images)
    assert len(out['predictions']) == len(images)


def test_sha256_is_checked_before_loading(package, monkeypatch, tmp_path):
    loads = []
    monkeypatch.setattr(torch._inductor, 'aoti_load_package',
                        lambda *a, **k: loads.append(a))
    with pytest.raises(DeployError, match=f'{package["file"]}: sha256 .* '
                       'is not the expected'):
        PT2Inferencer(package['file'], sha256='0' * 64)
    assert not loads
    changed = tmp_path / 'changed.pt2'
    changed.write_bytes(open(package['file'], 'rb').read() + b'\0')
    with pytest.raises(DeployError, match='changed.pt2: sha256'):
        PT2Inferencer(str(changed), sha256=package['sha256'])
    assert not loads


def test_bad_inputs_name_the_file(package, published, images, tmp_path):
    missing = str(tmp_path / 'nope.pt2')
    with pytest.raises(FileNotFoundError, match=missing):
        PT2Inferencer(missing)
    plain = tmp_path / 'plain.pt2'
    with zipfile.ZipFile(plain, 'w') as archive:
        archive.writestr('m/data/aotinductor/model/x.wrapper_metadata.json',
                         json.dumps({'AOTI_DEVICE_KEY': 'cpu'}))
    with pytest.raises(DeployError, match=f'{plain}: no mmcast metadata'):
        read_pt2_metadata(str(plain))
    # written before packed masks (no mask_format): bool masks; unknown
    meta = {k: v for k, v in read_pt2_metadata(package['file']).items()
            if k != 'mask_format' and not k.startswith('AOTI')}
    for mask_format, expected in ((None, 'bool'), ('rle', None)):
        older = tmp_path / f'older_{mask_format}.pt2'
        props = dict(meta, outputs=['scores', 'labels', 'masks', 'boxes',
                                    'left_out'])
        if mask_format:
            props['mask_format'] = mask_format
        with zipfile.ZipFile(older, 'w') as archive:
            archive.writestr('m/data/aotinductor/model/x.wrapper_metadata'
                             '.json', json.dumps(encode_metadata(props)))
        if expected:
            assert read_pt2_metadata(str(older))['mask_format'] == expected
        else:
            with pytest.raises(DeployError, match=f"{older}: mask_format "
                               "must be one of .*'rle'"):
                read_pt2_metadata(str(older))
    damaged = tmp_path / 'damaged.pt2'
    damaged.write_bytes(b'not a package')
    with pytest.raises(DeployError, match=f'{damaged}: not a .pt2'):
        PT2Inferencer(str(damaged))
    inferencer = PT2Inferencer(package['file'])
    big = tmp_path / 'big.png'
    cv2.imwrite(str(big), np.zeros((200, 200, 3), np.uint8))
    inferencer.meta = dict(inferencer.meta, resize=None)
    with pytest.raises(DeployError, match='takes 96x192 inputs but an '
                       'image is 200x200'):
        inferencer.predict(str(big))
    with pytest.raises(DeployError, match='batch_size must be in'):
        PT2Inferencer(package['file'], batch_size=9)
    with pytest.raises(DeployError, match='precision must be one of'):
        export_pt2(STUDENT, published['checkpoint'], str(tmp_path / 'x'),
                   CANVAS, precision='int8')


def test_msdeformattn_student_gives_eager_instances(tmp_path):
    """The toy R-18 student at a 64x64 canvas: its package runs with torch
    alone and gives the eager static predictor's labels in the same order,
    its scores within 1e-3 and its masks but for pixels whose logit is
    within float rounding of 0 (IoU >= 0.999), batched and per image."""
    canvas, checkpoint = (64, 64), str(tmp_path / 'r18.pth')
    model = write_student_checkpoint(checkpoint, R18, R18_SMALL)
    package = export_pt2(R18, checkpoint, str(tmp_path / 'r18.pt2'), canvas,
                         max_batch=4, cfg_options=R18_SMALL)
    assert package['max_score_diff'] <= 1e-3
    batch = example_inputs(canvas, 3, seed=2)
    out = run_with_torch_alone(package['file'], batch, tmp_path)
    assert out['loaded'] == []
    with torch.no_grad():
        expected = eager_reference(model, package['metadata'])(*batch)
    for got in (out['batched'], [torch.cat(o) for o in zip(*out['alone'])]):
        assert got[2].shape == (3, 50, canvas[0], canvas[1] // 8)
        assert_same_instances(expected, got, score_atol=1e-3, canvas=canvas)
    differ = canvas_masks(out['batched'][2], canvas) != canvas_masks(
        expected[2], canvas)
    print(f'\nR-18 .pt2: max score diff '
          f'{(out["batched"][0] - expected[0]).abs().max():.1e}, '
          f'{int(differ.sum())} mask pixels '
          'differ')


def test_a_network_that_reads_device_data_is_refused_by_name(
        tmp_path, monkeypatch):
    """MMDetection's stock MSDeformAttn pixel decoder (not switched) reads
    its level shapes back on the host: the export fails naming the config,
    before any compilation."""
    monkeypatch.setattr('mmcast.deploy.static_predict.use_static_deform_attn',
                        lambda model: 0)
    checkpoint = str(tmp_path / 'r18.pth')
    write_student_checkpoint(checkpoint, R18)
    with pytest.raises(DeployError, match=f'{R18}: torch.export failed'):
        export_pt2(R18, checkpoint, str(tmp_path / 'r18.pt2'), CANVAS)
    assert not osp.exists(tmp_path / 'r18.pt2')


def test_command_line_runs_a_package(package, images, tmp_path, capsys,
                                     monkeypatch):
    cli = load_script(osp.join(REPO_ROOT, 'tools', 'deploy', 'pt2_infer.py'))
    monkeypatch.setattr(sys, 'argv', [
        'pt2_infer.py', package['file'], images[0], '--out-dir',
        str(tmp_path / 'o'), '--score-thr', '0', '--sha256',
        package['sha256']])
    cli.main()
    assert '1 image(s), 50 instance(s)' in capsys.readouterr().out
    monkeypatch.setattr(sys, 'argv', ['pt2_infer.py', package['file'],
                                      images[0], '--sha256', 'ab' * 32])
    with pytest.raises(SystemExit, match='pt2_infer: .*sha256'):
        cli.main()

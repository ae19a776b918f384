# Copyright (c) mmcast contributors. All rights reserved.
"""mmcast.deploy.publish and tools/publish_model.py: a stage checkpoint →
a stock MMDet Mask2Former."""
import glob
import hashlib
import json
import os
import os.path as osp
import pickle
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint

from conftest import REPO_ROOT, load_script, toy_cfg_options
from mmcast.deploy.publish import PublishError, publish
from mmcast.utils.checkpoint_loading import CheckpointError

pytestmark = pytest.mark.slow_fixture(2)

STAGE_CONFIG = 'configs/mmcast/toy/cast_mask2former_r18_1xb4-1500it_toy.py'
CLASSES = ('person', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle',
           'bicycle')
MIM = osp.join(osp.dirname(sys.executable), 'mim')
publish_model = load_script(osp.join(REPO_ROOT, 'tools', 'publish_model.py'))


def _mim(args, cwd):
    env = dict(os.environ, PYTHONWARNINGS='ignore')
    proc = subprocess.run([MIM] + args, cwd=cwd, capture_output=True,
                          text=True, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _metrics(work_dir):
    """The metric dict that ``mim test`` wrote (timings left out)."""
    (path, ) = glob.glob(osp.join(work_dir, '*', '*.json'))
    with open(path) as f:
        metrics = json.load(f)
    return {k: v for k, v in metrics.items() if '/' in k}


@pytest.fixture(scope='module')
def stage(repo_root, toy_data_root, tmp_path_factory):
    """A 2-iteration CASTMask2Former checkpoint (with projection head and
    strong view) and the config copy its work dir holds."""
    work_dir = str(tmp_path_factory.mktemp('stage'))
    opts = toy_cfg_options(toy_data_root, work_dir) + [
        'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
        'param_scheduler.end=2'
    ]
    _mim(['train', 'mmdet', STAGE_CONFIG, '--work-dir', work_dir,
          '--cfg-options'] + opts, repo_root)
    config = osp.join(work_dir, osp.basename(STAGE_CONFIG))
    return config, osp.join(work_dir, 'iter_2.pth')


@pytest.fixture(scope='module')
def published(stage, tmp_path_factory):
    out_dir = str(tmp_path_factory.mktemp('published'))
    return publish(*stage, out_dir, name='cast_r18_toy')


@pytest.fixture(scope='module')
def toy_image(toy_data_root):
    return sorted(glob.glob(
        osp.join(toy_data_root, 'leftImg8bit', 'val', '*', '*.png')))[0]


def _predict(model, cfg, image):
    """``inference_detector`` of a model (stage wrapper or published)."""
    from mmdet.apis import inference_detector
    model.cfg = cfg
    model.eval()
    return inference_detector(model, image).pred_instances


def _build(cfg):
    from mmdet.registry import MODELS
    init_default_scope('mmdet')
    return MODELS.build(cfg.model)


def test_published_file_holds_only_the_stock_student(stage, published):
    path, sha = published['checkpoint'], published['sha256']
    assert osp.basename(path) == f'cast_r18_toy-{sha[:8]}.pth'
    with open(path, 'rb') as f:
        assert hashlib.sha256(f.read()).hexdigest() == sha
    assert not glob.glob(osp.join(osp.dirname(path), '.*.tmp'))
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask

    ckpt = torch.load(path, map_location='cpu', weights_only=True)
    assert set(ckpt) == {'state_dict', 'meta'}
    assert ckpt['meta']['dataset_meta']['classes'] == CLASSES
    assert ckpt['meta']['source_checkpoint'] == 'iter_2.pth'
    assert ckpt['meta']['iter'] == 2 and ckpt['meta']['fp16'] is False
    # 20 queries keep 50 (query, class) pairs: up to 20 instances an image
    assert (ckpt['meta']['num_queries'], ckpt['meta']['max_per_image'],
            ckpt['meta']['capacity']) == (20, 50, 20)
    assert (published['num_queries'], published['capacity']) == (20, 20)
    stage_state = torch.load(stage[1], map_location='cpu',
                             weights_only=True)['state_dict']
    assert any('projection_head' in k for k in stage_state)
    assert not any('projection_head' in k or 'strong_view' in k
                   for k in ckpt['state_dict'])
    for key, value in ckpt['state_dict'].items():
        assert torch.equal(value, stage_state[key]), key

    cfg = Config.fromfile(published['config'])
    assert cfg.model.type == 'Mask2Former'
    assert cfg.model.panoptic_head.type == 'Mask2FormerHead'
    assert 'projection_head' not in cfg.model.panoptic_head
    assert 'strong_view' not in cfg.model and 'train_cfg' not in cfg.model
    # the R-18 student is stock MMDetection through and through
    assert 'custom_imports' not in cfg and cfg.load_from is None
    for key in ('train_dataloader', 'optim_wrapper', 'custom_hooks'):
        assert key not in cfg, key
    model = _build(cfg)
    load_checkpoint(model, path, map_location='cpu', strict=True)


def test_published_file_loads_safely_without_mmcast(published):
    """Only tensors and plain types: no allow-list (no mmcast) needed."""
    code = ('import sys, torch\n'
            'c = torch.load(sys.argv[1], weights_only=True)\n'
            "assert 'mmcast' not in sys.modules\n"
            "print(len(c['state_dict']))")
    proc = subprocess.run(
        [sys.executable, '-c', code, published['checkpoint']],
        capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert int(proc.stdout) > 100


def test_stock_mim_test_gives_the_stage_checkpoints_ap_and_predictions(
        stage, published, repo_root, tmp_path):
    results = []
    for config, ckpt, name in ((*stage, 'stage'),
                               (published['config'],
                                published['checkpoint'], 'published')):
        work_dir = str(tmp_path / name)
        log = _mim(['test', 'mmdet', config, '--checkpoint', ckpt,
                    '--work-dir', work_dir, '--out',
                    osp.join(work_dir, 'pred.pkl')], repo_root)
        assert 'coco/segm_mAP' in log
        with open(osp.join(work_dir, 'pred.pkl'), 'rb') as f:
            results.append((_metrics(work_dir), pickle.load(f)))
    (stage_ap, stage_pred), (pub_ap, pub_pred) = results
    assert 'coco/segm_mAP' in stage_ap and 'cityscapes/mAP' in stage_ap
    assert pub_ap == stage_ap
    assert len(pub_pred) == len(stage_pred) == 4
    for a, b in zip(stage_pred, pub_pred):
        assert a['img_path'] == b['img_path']
        a, b = a['pred_instances'], b['pred_instances']
        assert len(a['scores']) > 0
        assert torch.equal(a['scores'], b['scores'])
        assert torch.equal(a['labels'], b['labels'])
        assert a['masks'] == b['masks']  # RLE-encoded


def test_det_inferencer_runs_fp32_and_fp16(stage, published, toy_image,
                                           capsys, monkeypatch):
    from mmdet.apis import DetInferencer

    out_dir = osp.dirname(published['checkpoint'])
    monkeypatch.setattr(sys, 'argv', [
        'publish_model.py', *stage, out_dir, '--name', 'cast_r18_toy',
        '--fp16'
    ])
    publish_model.main()
    sha = capsys.readouterr().out.split('sha256: ')[1].split()[0]
    half = osp.join(out_dir, f'cast_r18_toy-{sha[:8]}.pth')
    ckpt = torch.load(half, map_location='cpu', weights_only=True)
    assert ckpt['meta']['fp16'] is True
    query = ckpt['state_dict']['panoptic_head.query_embed.weight']
    assert query.dtype == torch.float16
    assert os.path.getsize(half) < 0.6 * os.path.getsize(
        published['checkpoint'])

    preds, raw, states = {}, {}, {}
    for kind, weights in (('fp32', published['checkpoint']), ('fp16', half)):
        inferencer = DetInferencer(
            model=published['config'], weights=weights, device='cpu',
            show_progress=False)
        model = inferencer.model
        assert tuple(model.dataset_meta['classes']) == CLASSES
        assert model.panoptic_head.query_embed.weight.dtype == torch.float32
        preds[kind] = inferencer(toy_image, return_vis=False,
                                 no_save_pred=True)['predictions'][0]
        batch = model.data_preprocessor(
            inferencer.collate_fn([inferencer.pipeline(toy_image)]), False)
        with torch.no_grad():
            cls_scores, mask_preds = model._forward(batch['inputs'],
                                                    batch['data_samples'])
        raw[kind] = (cls_scores[-1], mask_preds[-1])
        states[kind] = model.state_dict()
    fp32 = preds['fp32']
    assert len(fp32['masks']) == len(fp32['labels']) == len(fp32['scores'])
    assert len(fp32['labels']) > 0 and len(preds['fp16']['labels']) > 0
    assert all(0 <= label < len(CLASSES) for label in fp32['labels'])
    assert 'counts' in fp32['masks'][0]  # RLE of a full-image mask
    # the fp16 model is exactly the fp32 one with weights rounded to fp16
    for key, full in states['fp32'].items():
        rounded = full.half().float() if full.is_floating_point() else full
        assert torch.equal(states['fp16'][key], rounded), key
    # which moves the raw outputs of the 2-iteration model by ~0.1-8 %
    # (relative norm; 7.4 % seen on one thread); the top-k of its near-equal
    # scores may still reorder; other weights would move them by ~100 %
    for full, halved in zip(raw['fp32'], raw['fp16']):
        assert not torch.equal(full, halved)
        relative = ((full - halved).norm() / full.norm()).item()
        assert relative < 0.2, relative
    # the checkpoint alone is enough: its meta holds the published config
    alone = DetInferencer(weights=published['checkpoint'], device='cpu',
                          show_progress=False)
    alone_scores = alone(toy_image,
                         no_save_pred=True)['predictions'][0]['scores']
    assert alone_scores == fp32['scores']


def _stage_checkpoint(config, cfg_options, tmp_path, name, meta):
    """Build a stage model in-process; save its state_dict with ``meta``
    as a runner would."""
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(cfg_options)
    cfg_path = str(tmp_path / f'{name}.py')
    cfg.dump(cfg_path)
    model = _build(cfg)
    ckpt = str(tmp_path / f'{name}.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=meta), ckpt)
    return cfg, cfg_path, model, ckpt


def test_cast_distiller_checkpoint_publishes_its_student(tmp_path, toy_image):
    cfg, cfg_path, model, ckpt = _stage_checkpoint(
        'configs/mmcast/distill_toy.py',
        dict(model=dict(teacher=None, teacher_checkpoint=None)), tmp_path,
        'distill', dict(iter=1, dataset_meta=dict(classes=CLASSES)))
    assert all(k.startswith('student.') for k in model.state_dict()
               if k != '_extra_state')
    out = publish(cfg_path, ckpt, str(tmp_path / 'out'), name='distilled')
    pub_cfg = Config.fromfile(out['config'])
    assert pub_cfg.model.data_preprocessor.type == 'DetDataPreprocessor'
    published = _build(pub_cfg)
    load_checkpoint(published, out['checkpoint'], strict=True)
    want = _predict(model, cfg, toy_image)
    got = _predict(published, pub_cfg, toy_image)
    assert len(want.scores) > 0
    assert torch.equal(got.scores, want.scores)
    assert torch.equal(got.masks, want.masks)


def test_guided_distiller_publishes_the_model_mim_test_evaluates(
        tmp_path, toy_image):
    """With ``predict_on='teacher'`` mim test evaluates the EMA teacher."""
    predict_on = 'teacher'
    cfg, cfg_path, model, ckpt = _stage_checkpoint(
        'configs/mmcast/guided_distillation/guided-distillation_r18_toy.py',
        dict(model=dict(teacher_checkpoint=None,
                        semi_test_cfg=dict(predict_on=predict_on))),
        tmp_path, 'gd', dict(iter=1))
    out = publish(cfg_path, ckpt, str(tmp_path / 'out'))
    meta = torch.load(out['checkpoint'], weights_only=True)['meta']
    assert meta['source_part'] == predict_on
    # no dataset_meta in the stage checkpoint: the test dataset's classes
    assert meta['dataset_meta']['classes'] == CLASSES
    pub_cfg = Config.fromfile(out['config'])
    # the student's FP32LossMask2FormerHead (a training-only difference)
    # is published as the stock head
    assert model.student.panoptic_head.__class__.__name__ == \
        'FP32LossMask2FormerHead'
    assert pub_cfg.model.panoptic_head.type == 'Mask2FormerHead'
    published = _build(pub_cfg)
    load_checkpoint(published, out['checkpoint'], strict=True)
    got = _predict(published, pub_cfg, toy_image).scores
    assert torch.equal(got, _predict(model, cfg, toy_image).scores)
    model.semi_test_cfg['predict_on'] = 'student'  # initialised apart
    assert not torch.equal(got, _predict(model, cfg, toy_image).scores)


def test_checkpoint_of_another_config_is_refused(stage, tmp_path,
                                                 monkeypatch):
    config, ckpt = stage
    cases = [
        # more queries: same keys, other shapes
        (dict(model=dict(panoptic_head=dict(num_queries=30))),
         r'query_embed.weight is \[20, 64\] in the checkpoint but \[30, 64\]'),
        # one more decoder layer: a weight of the model is missing
        (dict(model=dict(panoptic_head=dict(
            transformer_decoder=dict(num_layers=4)))),
         r'weight\(s\) of the config.s Mask2Former are not in it \(e\.g\. '
         r'panoptic_head\.transformer_decoder\.layers\.3\.'),
        # a wrapper config: the student's weights are not under "student."
        (dict(model=dict(_delete_=True, type='CASTDistiller',
                         student=Config.fromfile(config).model)),
         r"no weight starts with 'student.'"),
    ]
    for options, message in cases:
        with pytest.raises(CheckpointError, match=message) as error:
            publish(config, ckpt, str(tmp_path), cfg_options=options)
        assert str(error.value).startswith(ckpt)
    with pytest.raises(PublishError, match="'MaskRCNN'"):
        publish(config, ckpt, str(tmp_path),
                cfg_options=dict(model=dict(type='MaskRCNN')))
    monkeypatch.setattr(sys, 'argv', [
        'publish_model.py', config, ckpt, str(tmp_path), '--cfg-options',
        'model.panoptic_head.num_queries=30'
    ])
    with pytest.raises(SystemExit, match=f'publish_model: {ckpt}: '):
        publish_model.main()
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize('fp16', [False, True])
def test_eomt_distiller_publishes_an_inference_only_eomt_student(
        tmp_path, toy_image, fp16):
    """The encoder-only student of a CAST stage 2 (with ``L_pxl``): its
    strong view and projection head stay behind; the published model
    predicts what the stage model predicts."""
    cfg, cfg_path, model, ckpt = _stage_checkpoint(
        'configs/mmcast/toy/'
        'cast-distill_eomt-dinov3-tiny_1xb4-1600it_toy-semi-10p.py',
        dict(model=dict(teacher=None, teacher_checkpoint=None)), tmp_path,
        'distill_eomt', dict(iter=1, dataset_meta=dict(classes=CLASSES)))
    training_only = [k for k in model.state_dict()
                     if k.startswith(('student.projection_head.',
                                      'student.strong_view.'))]
    assert training_only
    out = publish(cfg_path, ckpt, str(tmp_path / 'out'), fp16=fp16)
    pub_cfg = Config.fromfile(out['config'])
    assert pub_cfg.model.type == 'EoMTStudent'
    assert not {'projection_head', 'loss_pixel_contrast', 'strong_view',
                'init_cfg'} & set(pub_cfg.model)
    assert pub_cfg.custom_imports.imports == ['mmcast']
    assert (out['num_queries'], out['capacity']) == (20, 20)
    published = _build(pub_cfg)
    assert not hasattr(published, 'projection_head')
    state = torch.load(out['checkpoint'], weights_only=True)['state_dict']
    assert set(state) == set(published.state_dict())
    assert {v.dtype for v in state.values() if v.is_floating_point()} == \
        {torch.float16 if fp16 else torch.float32}
    load_checkpoint(published, out['checkpoint'], strict=True)
    want = _predict(model, cfg, toy_image)
    got = _predict(published, pub_cfg, toy_image)
    assert len(want.scores) > 0
    if fp16:  # weights rounded to fp16, computed in fp32 (a score moved
        # by up to 0.0049 on a 2-core EPYC of CPU family 26)
        torch.testing.assert_close(got.scores, want.scores, atol=1e-2,
                                   rtol=0)
    else:
        assert torch.equal(got.scores, want.scores)
        assert torch.equal(got.masks, want.masks)

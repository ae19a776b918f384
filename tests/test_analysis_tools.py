# Copyright (c) mmcast contributors. All rights reserved.
"""``tools/analysis/plot_pipeline.py`` and ``show_predictions.py`` on a
small work dir laid out like ``tools/cast_pipeline.py``'s: one stage
trained for 2 iterations by ``mim train`` (the contrastive toy config, so
``loss_pxl`` / ``pxl_*`` are logged), the distill stage's config, pseudo-
labels made from the ground truth of D_u and a two-row ``results.json``."""
import glob
import json
import os
import os.path as osp
import statistics
import subprocess
import sys

import cv2
import numpy as np
import pycocotools.mask as mask_util
import pytest
from matplotlib.collections import PathCollection
from matplotlib.container import BarContainer

from conftest import REPO_ROOT, load_script, toy_cfg_options

CONFIG = 'configs/mmcast/toy/cast_mask2former_r18_1xb4-1500it_toy.py'
MIM = osp.join(osp.dirname(sys.executable), 'mim')
SPLIT = 'annotations/semi/instancesonly_filtered_gtFine_train.1@25'


@pytest.fixture(scope='module')
def plot():
    return load_script(osp.join(REPO_ROOT, 'tools', 'analysis',
                                'plot_pipeline.py'))


@pytest.fixture(scope='module')
def show():
    return load_script(osp.join(REPO_ROOT, 'tools', 'analysis',
                                'show_predictions.py'))


def _unlabeled_gt_as_pseudo_labels(data_root: str, out_file: str) -> dict:
    """The ground truth of D_u, written as a pseudo-label json (score 1)."""
    with open(osp.join(data_root, 'annotations',
                       'instancesonly_filtered_gtFine_train.json')) as f:
        full = json.load(f)
    with open(osp.join(data_root, SPLIT + '-unlabeled.json')) as f:
        unlabeled = json.load(f)
    ids = {img['id'] for img in unlabeled['images']}
    pseudo = dict(unlabeled, annotations=[
        dict(a, score=1.0) for a in full['annotations'] if a['image_id'] in ids
    ])
    os.makedirs(osp.dirname(out_file))
    with open(out_file, 'w') as f:
        json.dump(pseudo, f)
    return pseudo


@pytest.fixture(scope='module')
def work_dir(toy_data_root, tmp_path_factory):
    from mmengine.config import Config

    root = str(tmp_path_factory.mktemp('pipeline'))
    seed_dir = osp.join(root, 'seed0')
    stage_dir = osp.join(seed_dir, 'finetune')
    env = dict(os.environ, PYTHONWARNINGS='ignore',
               MMCAST_TOY_ROOT=toy_data_root + '/')
    opts = toy_cfg_options(toy_data_root, stage_dir) + [
        'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
        'param_scheduler.end=2', 'randomness.seed=0'
    ]
    proc = subprocess.run([MIM, 'train', 'mmdet', CONFIG, '--work-dir',
                           stage_dir, '--cfg-options'] + opts, cwd=REPO_ROOT,
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # The distill stage's config: where the D_u and train-GT datasets are.
    saved = os.environ.get('MMCAST_TOY_ROOT')
    os.environ['MMCAST_TOY_ROOT'] = toy_data_root + '/'
    try:
        cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', 'mmcast',
                                       'distill_toy.py'))
    finally:
        if saved is None:
            os.environ.pop('MMCAST_TOY_ROOT')
        else:
            os.environ['MMCAST_TOY_ROOT'] = saved
    cfg.unlabeled_dataset.ann_file = SPLIT + '-unlabeled.json'
    os.makedirs(osp.join(seed_dir, 'distill'))
    cfg.dump(osp.join(seed_dir, 'distill', 'distill_toy.py'))
    pseudo = _unlabeled_gt_as_pseudo_labels(
        toy_data_root, osp.join(seed_dir, 'pseudo_labels', 'stage2.json'))
    rows = dict(
        supervised_student=dict(mean_segm_AP=10.5, per_seed={
            '0': dict(segm_AP=10.0, segm_AP50=20.0),
            '1': dict(segm_AP=11.0, segm_AP50=22.0)}),
        finetune=dict(mean_segm_AP=13.0, per_seed={
            '0': dict(segm_AP=12.0, segm_AP50=24.0),
            '1': dict(segm_AP=14.0, segm_AP50=25.0)}))
    with open(osp.join(root, 'results.json'), 'w') as f:
        json.dump(dict(dataset='toy', seeds=[0, 1], rows=rows), f)
    return dict(root=root, data_root=toy_data_root, pseudo=pseudo)


def _read_png(path: str) -> np.ndarray:
    assert osp.getsize(path) > 0, path
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    assert img is not None, f'{path} is not a PNG'
    return img[..., ::-1]


def _logged(stage_dir: str) -> dict:
    """name -> (iterations, values) as the stage's json log holds them; a
    validation record counts at the iteration of the record before it."""
    (path, ) = glob.glob(osp.join(stage_dir, '*', 'vis_data',
                                  'scalars.json'))
    series, it = {}, 0
    with open(path) as f:
        for rec in map(json.loads, f):
            it = rec.get('iter', it)
            for name, value in rec.items():
                if name not in ('iter', 'step', 'epoch'):
                    its, values = series.setdefault(name, ([], []))
                    its.append(it)
                    values.append(value)
    return series


def test_plot_pipeline_draws_results_and_every_logged_curve(
        work_dir, plot, tmp_path, monkeypatch):
    figures = []
    save = plot._save

    def keep(fig, path):
        figures.append(fig)
        save(fig, path)

    monkeypatch.setattr(plot, '_save', keep)
    out_dir = str(tmp_path)
    written = plot.main([work_dir['root'], '--out-dir', out_dir])
    assert written == [osp.join(out_dir, 'results.png'),
                       osp.join(out_dir, 'curves_seed0.png')]
    for path in written:
        img = _read_png(path)
        assert img.shape[0] > 200 and img.shape[1] > 400
        assert img.std() > 10  # not a blank sheet
    results, curves = figures
    # the bars: per row (in the pipeline's order) the mean over the seeds of
    # results.json, the error bar the std, a point per seed
    with open(osp.join(work_dir['root'], 'results.json')) as f:
        rows = json.load(f)['rows']
    keys = ['supervised_student', 'finetune']
    for ax, metric in zip(results.axes, ('segm_AP', 'segm_AP50')):
        per_seed = [[rows[k]['per_seed'][s][metric] for s in ('0', '1')]
                    for k in keys]
        bars = [c for c in ax.containers if isinstance(c, BarContainer)]
        assert [bar.get_height() for c in bars for bar in c] == \
            pytest.approx([statistics.fmean(v) for v in per_seed])
        error_bars = [segment for c in bars
                      for segment in c.errorbar.lines[2][0].get_segments()]
        assert [top - bottom for (_, bottom), (_, top) in error_bars
                ] == pytest.approx([2 * statistics.stdev(v) for v in per_seed])
        points = sorted(y for c in ax.collections
                        if isinstance(c, PathCollection)
                        for _, y in c.get_offsets())
        assert points == pytest.approx(sorted(sum(per_seed, [])))
    # the curves: every panel's line is the stage's logged series
    logged = _logged(osp.join(work_dir['root'], 'seed0', 'finetune'))
    panels = [ax for ax in curves.axes if ax.get_visible()]
    assert len(panels) == 6
    for ax, (_, name, factor) in zip(panels, plot.CURVES):
        (line, ) = ax.get_lines()
        its, values = logged[name]
        assert list(line.get_xdata()) == its, name
        assert list(line.get_ydata()) == pytest.approx(
            [factor * v for v in values]), name
    # the stage's log has every curve: 2 iterations and one validation
    scalars = plot.read_scalars(osp.join(work_dir['root'], 'seed0', 'finetune'))
    for name in ('loss', 'loss_pxl', 'pxl_margin', 'pxl_fnr', 'pxl_temperature'):
        assert scalars[name][0] == [1, 2], name
    assert scalars['coco/segm_mAP'][0] == [2]
    assert plot.plot_curves(osp.join(work_dir['root'], 'seed0'),
                            str(tmp_path / 'c.png')) == [
        'loss', 'loss_pxl', 'pxl_margin', 'pxl_fnr', 'pxl_temperature',
        'coco/segm_mAP']


def test_read_scalars_places_validation_and_prefers_resumed_runs(
        plot, tmp_path, monkeypatch):
    """Validation records (logged with step 0) go to the iteration before
    them; a resumed run's records replace the killed run's; the curves
    drawn are those (the AP x100)."""
    stage_dir = tmp_path / 'seed0' / 'finetune'
    for stamp, recs in (('20260101_000000', [
            dict(loss=5.0, iter=1, step=1), dict(loss=4.0, iter=2, step=2),
            {'coco/segm_mAP': 0.1, 'step': 0}]),
                        ('20260102_000000', [
            dict(loss=3.0, iter=2, step=2), dict(loss=2.0, iter=3, step=3),
            {'coco/segm_mAP': 0.3, 'step': 0}])):
        os.makedirs(stage_dir / stamp / 'vis_data')
        with open(stage_dir / stamp / 'vis_data' / 'scalars.json', 'w') as f:
            f.write(''.join(json.dumps(r) + '\n' for r in recs))
    scalars = plot.read_scalars(str(stage_dir))
    assert scalars['loss'] == ([1, 2, 3], [5.0, 3.0, 2.0])
    assert scalars['coco/segm_mAP'] == ([2, 3], [0.1, 0.3])
    figures = []
    monkeypatch.setattr(plot, '_save', lambda fig, path: figures.append(fig))
    assert plot.plot_curves(str(tmp_path / 'seed0'), 'unused.png') == [
        'loss', 'coco/segm_mAP']
    lines = [ax.get_lines()[0] for ax in figures[0].axes if ax.get_visible()]
    assert [(list(line.get_xdata()), list(line.get_ydata()))
            for line in lines] == [([1, 2, 3], [5.0, 3.0, 2.0]),
                                   ([2, 3], [10.0, 30.0])]


def test_plot_pipeline_names_a_missing_or_empty_work_dir(plot, tmp_path):
    missing = str(tmp_path / 'nope')
    with pytest.raises(SystemExit, match=missing):
        plot.main([missing])
    with pytest.raises(SystemExit, match='not a cast_pipeline.py work dir'):
        plot.main([str(tmp_path)])
    os.makedirs(tmp_path / 'seed0' / 'finetune')
    with pytest.raises(SystemExit, match='no stage with an MMEngine json log'):
        plot.main([str(tmp_path)])


def _scaled_image_and_masks(data_root, img_path, pseudo, scale, shape):
    """The raw image as the tool scales it, and its instances' masks
    (from the pseudo-label json = the GT) at that size."""
    from mmdet.datasets.transforms import Resize

    img = cv2.imread(img_path)[..., ::-1]
    scaled = Resize(scale_factor=scale, keep_ratio=True)(dict(img=img))['img']
    assert scaled.shape[:2] == shape
    name = osp.relpath(img_path, osp.join(data_root, 'leftImg8bit', 'train'))
    img_id = next(i['id'] for i in pseudo['images'] if i['file_name'] == name)
    masks = [mask_util.decode(a['segmentation']) for a in pseudo['annotations']
             if a['image_id'] == img_id]
    boxes = [a['bbox'] for a in pseudo['annotations'] if a['image_id'] == img_id]
    inside = np.zeros(shape, bool)
    for m in masks:
        inside |= cv2.resize(m, shape[::-1], interpolation=cv2.INTER_NEAREST) > 0
    near = np.zeros(shape, np.uint8)
    for x, y, w, h in boxes:  # boxes, their labels (inside) and a margin
        x0, y0 = int(x * scale) - 8, int(y * scale) - 8
        x1, y1 = int((x + w) * scale) + 8, int((y + h) * scale) + 8
        near[max(y0, 0):y1, max(x0, 0):x1] = 1
    return scaled, inside, near == 0


def _student(work_dir: dict):
    """``inference_detector`` of the stage-3 student of seed 0, with the
    config MMEngine saved in its work dir and its last checkpoint."""
    from mmdet.apis import inference_detector, init_detector

    stage_dir = osp.join(work_dir['root'], 'seed0', 'finetune')
    (config, ) = glob.glob(osp.join(stage_dir, '*.py'))
    with open(osp.join(stage_dir, 'last_checkpoint')) as f:
        model = init_detector(config, f.read().strip(), device='cpu')
    return lambda img_path: inference_detector(model, img_path)


def _drawn_predictions(pred, scale: float, shape, thr: float):
    """The student's ``pred_instances`` scored above ``thr``, masks (N, H,
    W) and boxes (N, 4) scaled to the drawn panel of ``shape`` as the tool
    scales them."""
    import torch.nn.functional as F

    inst = pred.pred_instances
    inst = inst[inst.scores > thr]
    inst.masks = F.interpolate(inst.masks[None].float(), size=shape,
                               mode='nearest')[0].bool() if len(inst) else \
        inst.masks.new_zeros((0, *shape))
    inst.bboxes = inst.bboxes * scale
    return inst


def _assert_student_panel(sheet, box, raw, pred, scale, thr) -> int:
    """The panel at ``box`` of ``sheet`` is ``raw`` with the predictions
    above ``thr`` drawn: their masks coloured, the image untouched far from
    every drawn mask, box and label. Returns the masks' pixel count."""
    top, left, h, w = box
    diff = np.abs(sheet[top:top + h, left:left + w].astype(int) - raw).sum(-1)
    inst = _drawn_predictions(pred, scale, (h, w), thr)
    inside = inst.masks.any(0).numpy()
    near = np.zeros((h, w), np.uint8)
    for mask, (x0, y0, x1, y1) in zip(inst.masks.numpy(),
                                      inst.bboxes.int().tolist()):
        near |= cv2.dilate(mask.astype(np.uint8), np.ones((17, 17)))
        near[max(y0 - 8, 0):y1 + 8, max(x0 - 8, 0):x1 + 8] = 1
        # its label, at the box's corner or the mask's centre
        ys, xs = np.nonzero(mask) if mask.any() else ([y0], [x0])
        for x, y in ((x0, y0), (int(np.mean(xs)), int(np.mean(ys)))):
            near[max(y - 24, 0):y + 24, max(x - 128, 0):x + 128] = 1
    far = near == 0
    if inside.sum() > 50:
        assert (diff[inside] > 30).mean() > 0.8
    if far.sum() > 50:
        assert (diff[far] <= 3).mean() > 0.97
    if not len(inst):
        assert (diff <= 3).mean() > 0.99
    return int(inside.sum())


def test_show_predictions_draws_gt_pseudo_labels_and_student(work_dir, show,
                                                             tmp_path):
    out = str(tmp_path / 'pred.png')
    info = show.main([work_dir['root'], '--seed', '0', '--num-images', '2',
                      '--panel-width', '256', '--out', out])
    assert info['out'] == out
    assert info['titles'] == ['ground truth',
                              'teacher pseudo-labels (stage2.json)',
                              'CAST student, stage 3']
    assert len(info['images']) == 2
    unlabeled = {osp.join(work_dir['data_root'], 'leftImg8bit', 'train',
                          i['file_name']) for i in work_dir['pseudo']['images']}
    assert set(info['images']) <= unlabeled  # D_u images
    sheet = _read_png(out)
    assert sheet.shape[1] == 3 * 256 + 4 * show.GAP
    student = _student(work_dir)
    for row, img_path in zip(info['boxes'], info['images']):
        top, left, h, w = row[0]
        raw, inside, far = _scaled_image_and_masks(
            work_dir['data_root'], img_path, work_dir['pseudo'],
            info['scale'], (h, w))
        assert inside.sum() > 50 and far.sum() > 50
        for top, left, h, w in row[:2]:  # GT and the GT-made pseudo-labels
            panel = sheet[top:top + h, left:left + w].astype(int)
            diff = np.abs(panel - raw).sum(-1)
            # the masks are overlaid; far from every instance, nothing is
            assert (diff[inside] > 30).mean() > 0.8
            assert (diff[far] <= 3).mean() > 0.97
        # the student's panel: its predictions above the score threshold
        # (0.3) drawn on the image, nothing far from them
        _assert_student_panel(sheet, row[2], raw, student(img_path),
                              info['scale'], 0.3)
    # a threshold just under a prediction with a mask of some size: it is
    # drawn, with every prediction scored above it
    img_path = info['images'][0]
    pred = student(img_path)
    top, left, h, w = info['boxes'][0][2]
    drawn = _drawn_predictions(pred, info['scale'], (h, w), 0.0)
    big = (drawn.masks.flatten(1).sum(1) >= 100).nonzero()[:, 0]
    assert len(big), 'the student predicts no mask of 100 pixels'
    thr = float(drawn.scores[big].max()) - 1e-6
    info = show.main([work_dir['root'], '--seed', '0', '--num-images', '1',
                      '--panel-width', '256', '--out', out,
                      '--score-thr', str(thr)])
    assert info['images'] == [img_path]
    raw = _scaled_image_and_masks(work_dir['data_root'], img_path,
                                  work_dir['pseudo'], info['scale'],
                                  (h, w))[0]
    drawn_pixels = _assert_student_panel(_read_png(out), info['boxes'][0][2],
                                         raw, pred, info['scale'], thr)
    assert drawn_pixels >= 100


def test_show_predictions_names_what_is_missing(work_dir, show, tmp_path):
    with pytest.raises(SystemExit, match='seed7'):
        show.main([work_dir['root'], '--seed', '7'])
    with pytest.raises(SystemExit, match='has the stage finished'):
        show.main([work_dir['root'], '--stages', 'distill'])
    with pytest.raises(SystemExit, match='nope.json'):
        show.main([work_dir['root'], '--pseudo-labels',
                   str(tmp_path / 'nope.json')])

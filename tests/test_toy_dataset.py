# Copyright (c) mmcast contributors. All rights reserved.
"""The toy Cityscapes-layout generator (mmcast.toy.worlds)."""
import glob
import json
import os
import os.path as osp
import re
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import load_script

from mmcast.toy.cityscapes_layout import META_FILE
from mmcast.toy.scene import (CATEGORIES, LABEL_COLORS, LABEL_IDS,
                              THING_CLASSES)
from mmcast.toy.worlds import make_toy_dataset

# pycocotools' decode under NumPy 2
pytestmark = pytest.mark.filterwarnings(
    'ignore:__array__ implementation:DeprecationWarning')

SMALL = dict(num_train=6, num_val=4, height=64, width=128, seed=0)
# bigger: every class appears, and most instances are >= 100 px, the minimum
# region size of cityscapesscripts' evaluation
BIG = dict(num_train=16, num_val=12, height=96, width=192, seed=3)
CATEGORIES_BY_ID = {c['id']: c['name'] for c in CATEGORIES}


def _gen(root, **kwargs) -> str:
    out = str(root)
    make_toy_dataset(out, show_progress=False, **kwargs)
    return out


def _files(root: str) -> dict:
    out = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = osp.join(dirpath, name)
            with open(path, 'rb') as f:
                out[osp.relpath(path, root)] = f.read()
    return out


def _load_json(path: str) -> dict:
    with open(path, encoding='utf-8') as f:
        return json.load(f)


def _ann_file(root: str, split: str) -> str:
    return osp.join(root, 'annotations',
                    f'instancesonly_filtered_gtFine_{split}.json')


def _inst_png(root: str, split: str, file_name: str) -> str:
    return osp.join(
        root, 'gtFine', split,
        file_name.replace('_leftImg8bit.png', '_gtFine_instanceIds.png'))


@pytest.fixture(scope='module')
def small(tmp_path_factory) -> str:
    return _gen(tmp_path_factory.mktemp('small'), **SMALL)


@pytest.fixture(scope='module')
def big(tmp_path_factory) -> str:
    return _gen(tmp_path_factory.mktemp('big'), **BIG)


def test_labels_match_cityscapesscripts():
    import cityscapesscripts.helpers.labels as CSLabels
    for name, label_id in LABEL_IDS.items():
        assert CSLabels.name2label[name].id == label_id
        assert CSLabels.id2label[label_id].color == LABEL_COLORS[label_id]
    expected = [
        dict(id=lab.id, name=lab.name) for lab in CSLabels.labels
        if lab.hasInstances and not lab.ignoreInEval
    ]
    assert CATEGORIES == expected
    assert tuple(c['name'] for c in CATEGORIES) == THING_CLASSES
    from mmdet.datasets import CityscapesDataset
    assert CityscapesDataset.METAINFO['classes'] == THING_CLASSES


def test_layout(small):
    meta = _load_json(osp.join(small, META_FILE))
    assert meta['complete'] and meta['seed'] == 0 and meta['style'] == 'target'
    for split, num in (('train', 6), ('val', 4)):
        with open(osp.join(small, 'lists', f'{split}.txt')) as f:
            stems = f.read().split()
        assert len(stems) == num
        coco = _load_json(_ann_file(small, split))
        assert [img['file_name'] for img in coco['images']
                ] == [f'{s.split("_")[0]}/{s}_leftImg8bit.png' for s in stems]
        for img in coco['images']:
            stem = img['file_name'].split('/')[1][:-len('_leftImg8bit.png')]
            city = stem.split('_')[0]
            assert re.fullmatch(r'[a-z]+_\d{6}_000019', stem)
            rgb = Image.open(
                osp.join(small, 'leftImg8bit', split, img['file_name']))
            assert rgb.mode == 'RGB' and rgb.size == (128, 64)
            gt = osp.join(small, 'gtFine', split, city, stem + '_gtFine_')
            inst = np.array(Image.open(gt + 'instanceIds.png'))
            label = np.array(Image.open(gt + 'labelIds.png'))
            assert inst.dtype == np.uint16 and label.dtype == np.uint8
            assert inst.shape == label.shape == (64, 128)
            # instance id = label id * 1000 + index; stuff = plain label id
            np.testing.assert_array_equal(
                np.where(inst >= 1000, inst // 1000, inst), label)
            assert set(np.unique(label)) <= set(LABEL_IDS.values())
            assert img['segm_file'] == img['file_name'].replace(
                'leftImg8bit.png', 'gtFine_labelIds.png')
            assert Image.open(gt + 'color.png').size == (128, 64)
    assert not glob.glob(osp.join(small, '**', '.*.tmp'), recursive=True)


def test_deterministic(small, tmp_path):
    again = _gen(tmp_path / 'again', **SMALL)
    a, b = _files(small), _files(again)
    assert sorted(a) == sorted(b)
    assert all(a[k] == b[k] for k in a)


def test_seeds_and_styles_differ(small, tmp_path):
    other = _files(_gen(tmp_path / 'seed1', **dict(SMALL, seed=1)))
    base = _files(small)
    images = [k for k in base if k.endswith('_leftImg8bit.png')]
    assert images and all(base[k] != other[k] for k in images)

    source = _gen(tmp_path / 'source', style='source', **SMALL)
    src = _files(source)
    src_images = {
        k: v
        for k, v in src.items() if k.endswith('leftImg8bit.png')
    }
    # other cities, so no stem is shared, and other pixels
    assert not set(src_images) & set(images)
    assert not set(src_images.values()) & {base[k] for k in images}
    assert _load_json(osp.join(source, META_FILE))['style'] == 'source'

    # the palette is shifted: the mean colour of the objects differs
    def mean_thing_rgb(root: str) -> np.ndarray:
        pix = []
        for path in glob.glob(osp.join(root, 'leftImg8bit', '*', '*', '*')):
            inst = np.array(
                Image.open(
                    path.replace('leftImg8bit',
                                 'gtFine').replace('_gtFine.png',
                                                   '_gtFine_instanceIds.png')))
            pix.append(np.array(Image.open(path))[inst >= 1000])
        return np.concatenate(pix).mean(0)

    assert np.abs(mean_thing_rgb(small) - mean_thing_rgb(source)).max() > 10


def test_coco_json_matches_instance_pngs(big):
    from pycocotools.coco import COCO
    for split in ('train', 'val'):
        coco = COCO(_ann_file(big, split))
        assert sorted(coco.getCatIds()) == [c['id'] for c in CATEGORIES]
        for img_id, img in coco.imgs.items():
            inst = np.array(
                Image.open(_inst_png(big, split, img['file_name'])))
            ids = sorted(int(i) for i in np.unique(inst) if i >= 1000)
            anns = coco.loadAnns(coco.getAnnIds(imgIds=[img_id]))
            assert len(anns) == len(ids) > 0
            union = np.zeros(inst.shape, dtype=np.int32)
            for ann, inst_id in zip(anns, ids):
                mask = coco.annToMask(ann).astype(bool)
                np.testing.assert_array_equal(mask, inst == inst_id)
                assert ann['category_id'] == inst_id // 1000
                assert ann['area'] == mask.sum() >= 20
                assert ann['iscrowd'] == 0
                ys, xs = np.nonzero(mask)
                assert ann['bbox'] == [
                    xs.min(),
                    ys.min(),
                    xs.max() - xs.min() + 1,
                    ys.max() - ys.min() + 1
                ]
                union += mask
            assert union.max() == 1  # instance masks do not overlap


def test_polygons_json(small):
    from cityscapesscripts.helpers.annotation import Annotation
    paths = sorted(
        glob.glob(osp.join(small, 'gtFine', '*', '*', '*_polygons.json')))
    assert len(paths) == 10
    for path in paths:
        anno = Annotation()
        anno.fromJsonFile(path)
        assert (anno.imgHeight, anno.imgWidth) == (64, 128)
        assert all(len(obj.polygon) >= 3 for obj in anno.objects)
        labels = {obj.label for obj in anno.objects}
        assert {'sky', 'road'} <= labels and labels & set(THING_CLASSES)


def test_mmdet_converter_gives_the_same_json(tmp_path):
    import mmdet
    converter = osp.join(
        osp.dirname(mmdet.__file__), '.mim', 'tools', 'dataset_converters',
        'cityscapes.py')
    if not osp.isfile(converter):
        pytest.skip('mmdet was installed without its tools')
    module = load_script(converter)
    # the converter CLI converts train, val *and* test: give a test split
    root = _gen(tmp_path / 'toy', num_test=2, **SMALL)
    out = str(tmp_path / 'converted')
    argv = sys.argv
    try:
        sys.argv = ['cityscapes.py', root, '-o', out]
        module.main()
    finally:
        sys.argv = argv
    for split in ('train', 'val', 'test'):
        ours = _load_json(_ann_file(root, split))
        theirs = _load_json(
            osp.join(out, f'instancesonly_filtered_gtFine_{split}.json'))
        assert ours['categories'] == theirs['categories']

        # image ids follow glob order there, sorted stems here

        def by_file(coco: dict) -> dict:
            anns = {img['id']: [] for img in coco['images']}
            for ann in coco.get('annotations', []):
                anns[ann['image_id']].append({
                    k: v
                    for k, v in ann.items() if k not in ('id', 'image_id')
                })
            return {
                img['file_name']: ({
                    k: v
                    for k, v in img.items() if k != 'id'
                }, anns[img['id']])
                for img in coco['images']
            }

        assert by_file(ours) == by_file(theirs)
        assert len(ours['annotations']) == len(theirs['annotations']) > 0


def test_cityscapes_dataset_loads(big):
    from mmcv.transforms import LoadImageFromFile
    from mmdet.datasets import CityscapesDataset
    from mmdet.datasets.transforms import LoadAnnotations
    dataset = CityscapesDataset(
        data_root=big,
        ann_file='annotations/instancesonly_filtered_gtFine_train.json',
        data_prefix=dict(img='leftImg8bit/train/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=0),
        pipeline=[
            dict(type=LoadImageFromFile),
            dict(type=LoadAnnotations, with_bbox=True, with_mask=True)
        ])
    assert len(dataset) == BIG['num_train']
    labels = []
    for i in range(len(dataset)):
        item = dataset[i]
        assert item['img'].shape == (96, 192, 3)
        masks = item['gt_masks']
        assert masks.masks.shape[1:] == (96, 192)
        assert len(masks) == len(item['gt_bboxes_labels']) > 0
        assert not item['gt_ignore_flags'].any()
        assert masks.masks.sum(0).max() == 1
        labels.extend(item['gt_bboxes_labels'].tolist())
    assert sorted(set(labels)) == list(range(len(THING_CLASSES)))


def _gt_as_predictions(root: str, split: str, pred_dir: str):
    """Cityscapes-format predictions (one mask png per instance, label id,
    score 1) made from the ground truth; returns (pred txts, gt pngs)."""
    os.makedirs(pred_dir, exist_ok=True)
    preds, gts = [], []
    for gt in sorted(
            glob.glob(
                osp.join(root, 'gtFine', split, '*',
                         '*_gtFine_instanceIds.png'))):
        stem = osp.basename(gt)[:-len('_gtFine_instanceIds.png')]
        inst = np.array(Image.open(gt))
        lines = []
        for k, inst_id in enumerate(i for i in np.unique(inst) if i >= 1000):
            name = f'{stem}_{k}.png'
            Image.fromarray((inst == inst_id).astype(np.uint8) * 255).save(
                osp.join(pred_dir, name))
            lines.append(f'{name} {inst_id // 1000} 1.0\n')
        txt = osp.join(pred_dir, f'{stem}_pred.txt')
        with open(txt, 'w') as f:
            f.writelines(lines)
        preds.append(txt)
        gts.append(gt)
    return preds, gts


@pytest.fixture
def cs_args(monkeypatch):
    """cityscapesscripts' global ``args``, restored after the test."""
    import cityscapesscripts.evaluation.evalInstanceLevelSemanticLabeling as CSEval  # noqa: E501
    for key, value in vars(CSEval.args).items():
        monkeypatch.setattr(CSEval.args, key, value)
    if not hasattr(np, 'in1d'):
        # cityscapesscripts' assignGt2Preds calls np.in1d, removed in NumPy
        # 2.4; this test is about the data, not about that incompatibility
        monkeypatch.setattr(
            np,
            'in1d',
            lambda a, b, **kw: np.isin(np.ravel(a), b, **kw),
            raising=False)
    return CSEval


def test_cityscapesscripts_self_evaluation(big, tmp_path, cs_args):
    CSEval = cs_args
    pred_dir = str(tmp_path / 'pred')
    preds, gts = _gt_as_predictions(big, 'val', pred_dir)
    args = CSEval.args
    args.predictionPath = osp.abspath(pred_dir)
    args.gtInstancesFile = str(tmp_path / 'gtInstances.json')
    args.JSONOutput = False
    args.colorized = False
    args.quiet = True

    def evaluate() -> dict:
        # CSEval.evaluateImgLists minus its matches.json dump, which fails
        # under NumPy 2 (np.int64 pixel counts are not JSON serialisable)
        CSEval.setInstanceLabels(args)
        gt_instances = CSEval.getGtInstances(gts, args)
        matches = CSEval.matchGtWithPreds(preds, gts, gt_instances, args)
        aps = CSEval.evaluateMatches(matches, args)
        return CSEval.prepareJSONDataForResults(
            CSEval.computeAverages(aps, args), aps, args)

    res = evaluate()
    # meaningful: instances under minRegionSizes[0] (100 px) are ignored by
    # the evaluation, so check that nearly all of them count
    gt_instances = _load_json(args.gtInstancesFile)
    sizes = [
        inst['pixelCount'] for per_img in gt_instances.values()
        for name in THING_CLASSES for inst in per_img[name]
    ]
    assert len(sizes) >= 2 * BIG['num_val']
    assert np.mean(np.array(sizes) >= args.minRegionSizes[0]) >= 0.85
    classes = res['averages']['classes']
    evaluated = [n for n in THING_CLASSES if not np.isnan(classes[n]['ap'])]
    assert len(evaluated) == len(THING_CLASSES)
    assert res['averages']['allAp'] == pytest.approx(1.0)
    assert res['averages']['allAp50%'] == pytest.approx(1.0)

    # and a wrong class for one instance of each image is not AP 1
    for txt in preds:
        with open(txt) as f:
            lines = f.readlines()
        name, label_id, score = lines[0].split()
        wrong = 26 if int(label_id) != 26 else 24
        lines[0] = f'{name} {wrong} {score}\n'
        with open(txt, 'w') as f:
            f.writelines(lines)
    res = evaluate()
    assert res['averages']['allAp'] < 0.95


@pytest.fixture(scope='module')
def big_tabletop(tmp_path_factory) -> str:
    return _gen(tmp_path_factory.mktemp('big_tabletop'), world='tabletop',
                **BIG)


@pytest.mark.parametrize('world', ['big', 'big_tabletop'])
def test_mmdet_cityscapes_metric_self_evaluation(world, request, tmp_path,
                                                 cs_args):
    """The ground truth scores AP 1 with the 8 labels of the configs, also
    for the world that draws 5 of them (the absent ones do not count)."""
    import torch
    big = request.getfixturevalue(world)
    from mmdet.evaluation import CityScapesMetric
    metric = CityScapesMetric(
        outfile_prefix=str(tmp_path / 'cs'),
        seg_prefix=osp.join(big, 'gtFine', 'val'))
    metric.dataset_meta = dict(classes=THING_CLASSES)
    coco = _load_json(_ann_file(big, 'val'))
    samples = []
    for img in coco['images']:
        inst = np.array(Image.open(_inst_png(big, 'val', img['file_name'])))
        ids = [i for i in np.unique(inst) if i >= 1000]
        samples.append(
            dict(
                img_path=osp.join(big, 'leftImg8bit', 'val', img['file_name']),
                pred_instances=dict(
                    labels=torch.tensor([
                        THING_CLASSES.index(CATEGORIES_BY_ID[i // 1000])
                        for i in ids
                    ]),
                    masks=torch.from_numpy(np.stack([inst == i for i in ids])),
                    scores=torch.ones(len(ids)))))
    metric.process({}, samples)
    results = metric.compute_metrics(metric.results)
    assert results['mAP'] == pytest.approx(1.0)
    assert results['AP@50'] == pytest.approx(1.0)
    # and one wrong label per image is not AP 1
    for sample in samples:
        labels = sample['pred_instances']['labels']
        labels[0] = (labels[0] + 1) % 5
    metric.results.clear()
    metric.process({}, samples)
    assert metric.compute_metrics(metric.results)['mAP'] < 0.95


def test_rerun_prunes_stale_files(tmp_path):
    root = _gen(tmp_path / 'toy', num_test=2, **SMALL)
    _gen(root, **dict(SMALL, num_train=3))
    assert len(
        glob.glob(osp.join(root, 'leftImg8bit', 'train', '*', '*.png'))) == 3
    assert len(glob.glob(osp.join(root, 'gtFine', 'train', '*', '*'))) == 12
    assert not osp.exists(osp.join(root, 'leftImg8bit', 'test'))
    assert not osp.exists(_ann_file(root, 'test'))
    assert len(_load_json(_ann_file(root, 'train'))['images']) == 3
    # the kept images are the first three of the bigger run
    first = _files(_gen(tmp_path / 'three', **dict(SMALL, num_train=3)))
    assert first == _files(root)


def test_refuses_foreign_cityscapes_tree(tmp_path):
    os.makedirs(tmp_path / 'real' / 'leftImg8bit' / 'train')
    with pytest.raises(FileExistsError, match='refusing'):
        _gen(tmp_path / 'real', **SMALL)


@pytest.mark.parametrize('kwargs, match', [
    (dict(num_train=0), 'num_train'),
    (dict(num_val=-1), 'num_val'),
    (dict(height=16), 'height'),
    (dict(width=0), 'width'),
    (dict(style='night'), 'style'),
    (dict(seed=-1), 'seed'),
    (dict(num_cities=9), 'num_cities'),
])
def test_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        _gen(tmp_path / 'x', **dict(SMALL, **kwargs))
    assert not osp.exists(tmp_path / 'x')


def _tool(repo_root: str):
    return load_script(osp.join(repo_root, 'tools', 'make_toy_dataset.py'))


@pytest.mark.parametrize('argv, match', [
    (['--num-train', '0'], '--num-train'),
    (['--num-val', '-2'], '--num-val'),
    (['--height', '0'], '--height'),
    (['--width', 'wide'], '--width'),
    (['--style', 'night'], '--style'),
    (['--cities', '0'], '--cities'),
])
def test_cli_bad_arguments(repo_root, capsys, argv, match):
    tool = _tool(repo_root)
    with pytest.raises(SystemExit) as e:
        tool.parse_args(['--out', 'unused'] + argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f'argument {match}' in err


def test_cli_runs(repo_root, tmp_path, capsys):
    out = str(tmp_path / 'toy')
    _tool(repo_root).main([
        '--out', out, '--num-train', '2', '--num-val', '1', '--height', '64',
        '--width', '128', '--seed', '5', '--style', 'source', '--cities', '1',
        '--no-progress'
    ])
    assert 'train: 2 images' in capsys.readouterr().out
    meta = _load_json(osp.join(out, META_FILE))
    assert meta['style'] == 'source' and meta['seed'] == 5
    assert len(glob.glob(osp.join(out, 'leftImg8bit', '*', '*', '*'))) == 3

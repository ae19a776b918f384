# Copyright (c) mmcast contributors. All rights reserved.
"""Own COCO data as people have it, through the custom-data route.

Each test writes a tiny COCO dataset (``images/`` +
``annotations/instances_{train,val}.json``, 64×96 images: a bright
rectangle, the annotated object, on a dark background) with one case and
asserts what happens: the preflight (:class:`~mmcast.apis.pipeline.preflight.
Preflight`, as ``tools/cast_pipeline.py`` runs it) refuses it with one line
naming the file and the ids, or notes it, and then the data load right
through the datasets and pipelines of ``configs/mmcast/custom/`` (or are
pseudo-labelled by a tiny Mask2Former of the custom-cpu teacher's
architecture).
"""
import json
import os
import os.path as osp
import unicodedata
from typing import List, Optional

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import REPO_ROOT

CUSTOM_DIR = osp.join(REPO_ROOT, 'configs', 'mmcast', 'custom')
CLASSES = ('apple', 'kite')
CATEGORIES = [dict(id=3, name='apple'), dict(id=7, name='kite')]
H, W = 64, 96
# the object: x 20..56, y 16..44 (xyxy), bright on a dark background
X0, Y0, X1, Y1 = 20, 16, 56, 44
BRIGHT, DARK = 200, 30
SQUARE = [X0, Y0, X1, Y0, X1, Y1, X0, Y1]


# ------------------------------------------------------------------ the data
def scene(height: int = H, width: int = W) -> np.ndarray:
    """A gray (h, w) uint8 image: the object bright, the rest dark."""
    img = np.full((height, width), DARK, np.uint8)
    img[Y0:Y1, X0:X1] = BRIGHT
    return img


def ann(ann_id: int, image_id: int, segmentation=None, **kw) -> dict:
    """An annotation of the object (category 'apple')."""
    return dict(dict(id=ann_id, image_id=image_id, category_id=3, iscrowd=0,
                     bbox=[X0, Y0, X1 - X0, Y1 - Y0],
                     area=float((X1 - X0) * (Y1 - Y0)),
                     segmentation=[SQUARE] if segmentation is None
                     else segmentation), **kw)


def write_dataset(root: str, files: dict, anns: List[dict],
                  split: str = 'train', sizes: Optional[dict] = None) -> str:
    """``files`` (file name → BGR/gray image, written as its extension
    says) and their entries in ``annotations/instances_<split>.json``
    (ids 1, 2, ... in order; ``sizes`` overrides an entry's (h, w)).
    Returns the json's path."""
    images = []
    for i, (name, img) in enumerate(files.items(), 1):
        path = osp.join(root, 'images', name)
        os.makedirs(osp.dirname(path), exist_ok=True)
        if img is not None:  # (tofile: any file name)
            ok, encoded = cv2.imencode(osp.splitext(name)[1], img)
            assert ok, name
            encoded.tofile(path)
        h, w = (sizes or {}).get(name, (H, W))
        images.append(dict(id=i, file_name=name, height=h, width=w))
    path = osp.join(root, 'annotations', f'instances_{split}.json')
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(dict(images=images, annotations=anns,
                       categories=CATEGORIES), f)
    return path


def exif_rotated_jpeg(path: str, upright: np.ndarray) -> None:
    """A JPEG whose pixels are stored turned left, with EXIF orientation 6
    ("turn 90° clockwise to display"): viewers show ``upright``."""
    stored = Image.fromarray(np.ascontiguousarray(np.rot90(upright, 1)))
    exif = stored.getexif()
    exif[0x0112] = 6
    os.makedirs(osp.dirname(path), exist_ok=True)
    stored.save(path, exif=exif.tobytes(), quality=95)


def preflight(ann_file: str, img_dir: Optional[str], evaluated=False,
              made_here=()):
    """The preflight of one annotation file, as a stage reads it."""
    from mmcast.apis.pipeline.preflight import Preflight

    check = Preflight(made_here)
    if evaluated:
        check.evaluated.add(osp.abspath(ann_file))
    check.check_annotation(ann_file, img_dir, 'test stage')
    return check


def only_line(lines: List[str], *parts: str) -> str:
    """The one line holding every part."""
    found = [line for line in lines if all(p in line for p in parts)]
    assert len(found) == 1, (parts, lines)
    return found[0]


# ------------------------------------------------------- the custom configs
@pytest.fixture
def custom(monkeypatch):
    """``configs/mmcast/custom/<name>`` loaded for a data root, as
    ``tools/cast_pipeline.py --data-root ... --classes apple kite`` has
    them loaded; and a builder of its datasets."""
    from mmdet.utils import register_all_modules
    from mmengine.config import Config

    import mmcast  # noqa: F401  (registers mmcast modules)
    register_all_modules(init_default_scope=True)

    def load(root: str, name: str = 'adapt_teacher_selftrain_custom-cpu.py'):
        monkeypatch.setenv('MMCAST_CUSTOM_ROOT', repr(root + '/'))
        monkeypatch.setenv('MMCAST_CUSTOM_CLASSES', repr(CLASSES))
        return Config.fromfile(osp.join(CUSTOM_DIR, name))

    return load


def build(dataset_cfg: dict, **overrides):
    """A dataset of a config (not serialised: one pass in a test)."""
    from mmdet.registry import DATASETS

    return DATASETS.build(dict(dataset_cfg, serialize_data=False,
                               **overrides))


def loaded(dataset, idx: int = 0):
    """``(image (h, w, 3) uint8 BGR, gt masks (n, h, w), ignored masks)``
    of one item after the dataset's whole pipeline."""
    data = dataset[idx]
    sample = data['data_samples']
    inputs = data['inputs']
    assert inputs.dtype == torch.uint8 and inputs.shape[0] == 3
    masks = sample.gt_instances.masks.to_ndarray() \
        if 'masks' in sample.gt_instances else np.zeros((0, H, W))
    ignored = sample.ignored_instances
    return inputs.permute(1, 2, 0).numpy(), masks, ignored


def assert_on_the_object(image: np.ndarray, mask: np.ndarray,
                         bright=BRIGHT, dark=DARK) -> None:
    """The mask covers the object (``bright`` on average over the channels)
    and nothing else."""
    assert mask.shape == image.shape[:2]
    gray = image.astype(float).mean(-1)
    obj = gray > (bright + dark) / 2
    iou = (obj & mask).sum() / (obj | mask).sum()
    assert iou > 0.85, iou
    inner = cv2.erode(mask.astype(np.uint8), np.ones((5, 5))) > 0
    outer = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5))) == 0
    assert abs(np.median(gray[inner]) - bright) <= 8
    assert abs(np.median(gray[outer]) - dark) <= 8


# ------------------------------------------------------------------- images
def _grayscale():
    return scene()


def _rgba():
    # RGB (220, 120, 20) on the object, the left half fully transparent
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[..., :3] = DARK
    rgba[Y0:Y1, X0:X1, :3] = (220, 120, 20)
    rgba[:, W // 2:, 3] = 255
    return cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA)


def _16bit():
    return scene().astype(np.uint16) * 256


IMAGE_KINDS = dict(grayscale=(_grayscale, 'grayscale'),
                   rgba=(_rgba, 'with an alpha channel'),
                   bits16=(_16bit, '16-bit (divided by 256)'))


@pytest.mark.parametrize('kind', list(IMAGE_KINDS) + ['exif'])
def test_image_kinds_are_noted_and_read_as_8bit_bgr(kind, tmp_path, custom):
    """Grayscale, RGBA and 16-bit PNGs and an EXIF-rotated JPEG (its json
    size the displayed one): one note each; through the custom-cpu
    training pipeline each comes out 3-channel uint8, upright, scaled (not
    clipped), the mask on the object."""
    root = str(tmp_path / 'data')
    if kind == 'exif':
        name, said = 'photo.jpg', 'EXIF-rotated'
        upright = scene(H, W)
        exif_rotated_jpeg(osp.join(root, 'images', name), upright)
        files = {name: None}
    else:
        name, said = f'{kind}.png', IMAGE_KINDS[kind][1]
        files = {name: IMAGE_KINDS[kind][0]()}
    ann_file = write_dataset(root, files, [ann(1, 1)])
    raw = cv2.imread(osp.join(root, 'images', name), cv2.IMREAD_UNCHANGED)
    assert raw.shape[:2] == ((W, H) if kind == 'exif' else (H, W))

    check = preflight(ann_file, osp.join(root, 'images'))
    assert check.problems == []
    only_line(check.notes, ann_file, f'1 of 1 sampled images is {said}',
              repr(name))

    cfg = custom(root, 'supervised_student_custom-cpu.py')
    dataset = build(cfg.supervised_dataset, ann_file=cfg.train_ann_file)
    image, masks, _ = loaded(dataset)
    assert len(masks) == 1
    assert_on_the_object(image, masks[0] > 0,
                         bright=120 if kind == 'rgba' else BRIGHT)
    if kind == 'grayscale':
        assert (image[..., 0] == image[..., 1]).all() and \
            (image[..., 1] == image[..., 2]).all()
    if kind == 'rgba':  # BGR order, transparent or not: the alpha is dropped
        obj = image[masks[0] > 0]
        assert np.abs(np.median(obj, 0) - (20, 120, 220)).max() <= 3
    # the test view: upright at the json's aspect ratio (256 px long side)
    val = build(cfg.val_dataloader.dataset, ann_file=cfg.train_ann_file)
    data = val[0]
    assert data['inputs'].shape[1:] == (171, 256)
    assert data['data_samples'].ori_shape == (H, W)


def test_16bit_png_with_12bit_values_is_noted_as_dark(tmp_path):
    root = str(tmp_path / 'data')
    ann_file = write_dataset(
        root, {'raw12.png': scene().astype(np.uint16) * 16}, [ann(1, 1)])
    check = preflight(ann_file, osp.join(root, 'images'))
    assert check.problems == []
    only_line(check.notes, ann_file, 'values under 4096 only', 'nearly black')


@pytest.mark.parametrize('annotated', [True, False])
def test_exif_rotated_jpeg_with_the_stored_size(annotated, tmp_path):
    """The json has the stored (un-rotated) size: cv2 decodes the image
    upright, so its masks would be drawn on the other frame: refused, with
    the image id; without annotations (D_u) nothing is misplaced: a note."""
    root = str(tmp_path / 'data')
    exif_rotated_jpeg(osp.join(root, 'images', 'IMG_0001.jpg'), scene(W, H))
    ann_file = write_dataset(root, {'IMG_0001.jpg': None},
                             [ann(1, 1)] if annotated else [])
    check = preflight(ann_file, osp.join(root, 'images'))
    lines = check.problems if annotated else check.notes
    line = only_line(lines, ann_file, 'image 1 ', 'IMG_0001.jpg',
                     f'decodes as {H}x{W} (w x h) but the json says {W}x{H}',
                     'EXIF orientation 6')
    assert ('drawn on another frame' in line) == annotated
    assert bool(check.problems) == annotated


# -------------------------------------------------------------- annotations
def _degenerate():
    # a 2-point polygon (pycocotools reads 4 numbers as a box and fails),
    # a 1-point part after a good one, and the good object
    return [ann(1, 1), ann(2, 1, segmentation=[[30, 20, 40, 30]]),
            ann(3, 1, segmentation=[SQUARE, [5, 5]])]


def _zero_box():
    return [ann(1, 1), ann(2, 1, bbox=[60, 50, 0, 0], area=0.0)]


def _crowd():
    from pycocotools import mask as mask_utils

    crowd = np.zeros((H, W), np.uint8, order='F')
    crowd[48:60, 60:90] = 1
    rle = mask_utils.encode(crowd)
    rle['counts'] = rle['counts'].decode()
    return [ann(1, 1), ann(2, 1, segmentation=rle, iscrowd=1,
                           bbox=[60, 48, 30, 12], area=360.0)]


@pytest.mark.parametrize('case,note,trained,ignored', [
    (_degenerate, '2 polygons have parts with fewer than 3 points '
     '(annotations 2, 3): training drops those parts (mmdet LoadAnnotations) '
     'and ignores the 1 annotation left with none', 2, 0),
    (_zero_box, '1 annotation has a box that CocoDataset drops', 1, 0),
    (_crowd, '1 crowd annotation (iscrowd=1: 2): ignored in training', 1, 1),
], ids=['degenerate_polygon', 'zero_area_box', 'crowd_rle'])
def test_annotation_cases_are_noted_and_train(case, note, trained, ignored,
                                              tmp_path, custom):
    """Handled in training as mmdet handles them, and counted in a note."""
    root = str(tmp_path / 'data')
    ann_file = write_dataset(root, {'a.png': scene()}, case())
    check = preflight(ann_file, osp.join(root, 'images'))
    assert check.problems == []
    only_line(check.notes, ann_file, note)
    cfg = custom(root, 'supervised_student_custom-cpu.py')
    dataset = build(cfg.supervised_dataset, ann_file=cfg.train_ann_file)
    image, masks, ignored_instances = loaded(dataset)
    assert len(masks) == trained and len(ignored_instances) == ignored
    for mask in masks:  # the good polygons, exactly on the object
        assert_on_the_object(image, mask > 0)


def test_degenerate_polygons_do_not_break_the_quality_measurement(tmp_path):
    """D_l with a 2-point polygon: the pseudo-label quality leaves it out of
    the ground truth (as training ignores it) instead of failing."""
    from pycocotools import mask as mask_utils

    from mmcast.pseudo_labels.quality import pseudo_label_quality

    root = str(tmp_path / 'data')
    gt_file = write_dataset(root, {'a.png': scene()}, _degenerate())
    rle = mask_utils.merge(mask_utils.frPyObjects([SQUARE], H, W))
    rle['counts'] = rle['counts'].decode()
    pseudo = dict(images=[dict(id=1, file_name='a.png', height=H, width=W)],
                  categories=CATEGORIES,
                  annotations=[dict(ann(1, 1, segmentation=rle), score=0.9)])
    pseudo_file = str(tmp_path / 'pseudo.json')
    with open(pseudo_file, 'w') as f:
        json.dump(pseudo, f)
    quality = pseudo_label_quality(pseudo_file, gt_file, score_thrs=[0.5])
    # ground truth: annotations 1 and 3 (2 has no part of 3 points)
    assert quality['gt_per_image'] == 2
    assert quality['sweep'][0]['precision'] == 1.0
    assert quality['sweep'][0]['recall'] == 0.5


def _many_empty():
    return [ann(1, 1)] + [ann(i, 1, segmentation=[]) for i in range(2, 10)]


REFUSED = {
    'empty_polygon': (
        lambda: [ann(1, 1), ann(2, 1, segmentation=[])], False,
        ['annotation 2 has an empty segmentation']),
    'many_empty_polygons': (
        _many_empty, False,
        ['annotations 2, 3, 4, 5, 6, ... (8 in all) have an empty '
         'segmentation']),
    'degenerate_polygon_in_val': (
        lambda: [ann(1, 1), ann(2, 1, segmentation=[[30, 20, 40, 30]])],
        True, ['annotation 2 has a polygon whose first part has fewer '
               'than 3 points', 'CocoMetric']),
    'category_not_in_categories': (
        lambda: [ann(1, 1), ann(2, 1, category_id=5)], False,
        ['annotation 2 has category_id 5, which "categories" does not '
         'list']),
    'duplicate_image_id': (
        lambda: [ann(1, 1), ann(2, 1)], False,
        ['image id 1 is listed more than once (id 1: a.png, b.png)']),
    'duplicate_annotation_id': (
        lambda: [ann(1, 1), ann(1, 2)], False,
        ['annotation id 1 is used more than once']),
    'image_not_on_disk': (
        lambda: [ann(1, 1)], False,
        ['1 of 2 listed images is not in', 'image id 2 is missing',
         "'b.png'"]),
    'crowd_rle_of_another_size': (
        lambda: [ann(1, 1), ann(2, 1, iscrowd=1, segmentation=dict(
            size=[W, H], counts='PPYo1'))], False,
        ['annotation 2 has an RLE of another size than the image']),
}


@pytest.mark.parametrize('case', list(REFUSED))
def test_annotation_cases_are_refused_naming_file_and_ids(case, tmp_path):
    make, evaluated, parts = REFUSED[case]
    root = str(tmp_path / 'data')
    files = {'a.png': scene(), 'b.png': scene()}
    if case == 'image_not_on_disk':
        files['b.png'] = None
    ann_file = write_dataset(root, files, make())
    if case == 'duplicate_image_id':
        with open(ann_file) as f:
            coco = json.load(f)
        coco['images'][1]['id'] = 1
        with open(ann_file, 'w') as f:
            json.dump(coco, f)
    check = preflight(ann_file, osp.join(root, 'images'), evaluated)
    only_line(check.problems, ann_file, *parts)
    assert len(check.problems) == 1, check.problems


def test_degenerate_polygon_fails_the_stock_evaluation(tmp_path):
    """Why the preflight refuses it in val: CocoMetric's pycocotools."""
    from pycocotools.coco import COCO

    root = str(tmp_path / 'data')
    ann_file = write_dataset(
        root, {'a.png': scene()},
        [ann(1, 1), ann(2, 1, segmentation=[[30, 20, 40, 30]])], 'val')
    coco = COCO(ann_file)
    with pytest.raises(TypeError):
        coco.annToRLE(coco.anns[2])
    # in training it is only ignored: a note there
    assert not preflight(ann_file, None).problems


def test_missing_file_in_another_unicode_normalization(tmp_path):
    """The disk has 'é' decomposed (as some file systems store it), the
    json composed: refused with the other spelling."""
    root = str(tmp_path / 'data')
    nfd = unicodedata.normalize('NFD', 'pomme rouge é.png')
    nfc = unicodedata.normalize('NFC', nfd)
    ann_file = write_dataset(root, {nfd: scene(), 'b.png': scene()},
                             [ann(1, 1)])
    with open(ann_file, encoding='utf-8') as f:
        coco = json.load(f)
    coco['images'][0]['file_name'] = nfc
    with open(ann_file, 'w', encoding='utf-8') as f:
        json.dump(coco, f)
    check = preflight(ann_file, osp.join(root, 'images'))
    only_line(check.problems, ann_file, '1 of 2 listed images',
              'image id 1 is missing', 'another Unicode normalization')


def test_split_problems_name_the_file_it_was_split_from(tmp_path):
    """The pipeline writes the split before its preflight: a problem of the
    split names the train file and says to write the split again; a split
    still to be written is checked through the train file."""
    from mmcast.datasets.semi_split import write_split

    root = str(tmp_path / 'data')
    files = {f'{i}.png': scene() for i in range(4)}
    anns = [ann(i, i, category_id=5 if i == 1 else 3) for i in range(1, 5)]
    train = write_dataset(root, files, anns)
    ann_dir = osp.dirname(train)
    later = osp.join(ann_dir, 'instances_train.1@100.json')
    check = preflight(later, osp.join(root, 'images'), made_here=[ann_dir])
    only_line(check.problems, train, 'annotation 1 has category_id 5')
    paths = write_split(train, ann_dir, seed=1, percent=100)
    check = preflight(paths['labeled'], osp.join(root, 'images'))
    line = only_line(check.problems, paths['labeled'],
                     f'(split of {train})', 'annotation 1 has category_id 5')
    assert line.endswith(f'fix instances_train.json, then delete '
                         f'{ann_dir}/instances_train.1@100* so that the '
                         'split is written again')


# ------------------------------------------------- pseudo-labelling D_u
@pytest.fixture(scope='module')
def tiny_teacher():
    """A randomly initialised Mask2Former of the custom-cpu teacher's
    architecture (adapt_teacher_custom-cpu.py) with 3 queries."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config

    import mmcast  # noqa: F401
    register_all_modules(init_default_scope=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('MMCAST_CUSTOM_CLASSES', repr(CLASSES))
        cfg = Config.fromfile(
            osp.join(CUSTOM_DIR, 'adapt_teacher_custom-cpu.py'))
    cfg.model.panoptic_head.num_queries = 3
    cfg.model.test_cfg.max_per_image = 3
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    return model.eval()


def label_and_load(cfg, teacher, out_file: str):
    """The stage's PseudoLabelHook work on D_u (its unlabeled_dataset, no
    score threshold), then the stage's pseudo-labeled dataset."""
    from mmcast.pseudo_labels import label_unlabeled_set

    hook = cfg.custom_hooks[0]
    result = label_unlabeled_set(
        teacher, hook['unlabeled_dataset'], out_file, progress=False,
        filter_cfg=dict(hook['filter_cfg'], score_thr=0.0,
                        non_overlapping=False),
        header=dict(teacher='tiny'))
    dataset = build(cfg.train_dataloader.dataset.datasets[1],
                    ann_file=out_file)
    return result, dataset


def test_large_image_in_d_u_is_pseudo_labelled_at_full_size(
        tmp_path, custom, tiny_teacher):
    """A 6000×4000 photo in D_u: noted (more than 16 MP), labelled with
    masks at its full size, and served to the student resized."""
    from pycocotools import mask as mask_utils

    root = str(tmp_path / 'data')
    big = np.full((4000, 6000, 3), DARK, np.uint8)
    cv2.circle(big, (3000, 2000), 1200, (BRIGHT, ) * 3, -1)
    unlabeled = write_dataset(root, {'DSC_4711.jpg': big}, [],
                              sizes={'DSC_4711.jpg': (4000, 6000)})
    os.replace(unlabeled, osp.join(osp.dirname(unlabeled),
                                   'instances_train.1@10-unlabeled.json'))
    unlabeled = osp.join(osp.dirname(unlabeled),
                         'instances_train.1@10-unlabeled.json')
    check = preflight(unlabeled, osp.join(root, 'images'))
    assert check.problems == []
    only_line(check.notes, '1 image has more than 16 MP',
              'DSC_4711.jpg, 6000x4000')

    cfg = custom(root)
    out_file = str(tmp_path / 'pseudo_labels.json')
    result, dataset = label_and_load(cfg, tiny_teacher, out_file)
    assert result['num_skipped'] == 0
    with open(out_file) as f:
        pseudo = json.load(f)
    assert pseudo['annotations'], 'the teacher kept no instance'
    for a in pseudo['annotations']:
        assert a['segmentation']['size'] == [4000, 6000]
        assert mask_utils.area(a['segmentation']) == a['area'] > 0
    data = dataset[0]['data_samples']['unsup']
    assert data.ori_shape == (4000, 6000)
    masks = data.gt_instances.masks
    assert 0 < len(masks) <= len(pseudo['annotations'])
    assert masks.height == data.img_shape[0] and max(data.img_shape) <= 320


def test_odd_file_names_work_end_to_end(tmp_path, custom, tiny_teacher):
    """Spaces and non-ASCII characters: noted, split, trained on (D_l) and
    pseudo-labelled (D_u), matched by file_name in the quality measure."""
    from mmcast.datasets.semi_split import write_split
    from mmcast.pseudo_labels.quality import pseudo_label_quality

    root = str(tmp_path / 'data')
    names = ['pomme rouge é.png', 'sub dir/poire ü 梨.png']
    train = write_dataset(root, {n: scene() for n in names},
                          [ann(1, 1), ann(2, 2)])
    check = preflight(train, osp.join(root, 'images'))
    assert check.problems == []
    only_line(check.notes, train, "2 file names have spaces or non-ASCII "
              "characters (e.g. 'pomme rouge é.png')")
    paths = write_split(train, osp.dirname(train), seed=1, percent=10)
    for part in ('labeled', 'unlabeled'):
        check = preflight(paths[part], osp.join(root, 'images'))
        assert check.problems == [], check.problems

    cfg = custom(root)
    labeled = build(cfg.supervised_dataset)
    image, masks, _ = loaded(labeled)
    assert len(masks) == 1
    assert_on_the_object(image, masks[0] > 0)
    out_file = str(tmp_path / 'pseudo labels é.json')
    result, dataset = label_and_load(cfg, tiny_teacher, out_file)
    assert result['num_skipped'] == 0
    with open(out_file, encoding='utf-8') as f:
        pseudo = json.load(f)
    with open(paths['unlabeled'], encoding='utf-8') as f:
        assert [i['file_name'] for i in pseudo['images']] == \
            [i['file_name'] for i in json.load(f)['images']]
    data = dataset[0]['data_samples']['unsup']
    assert data.img_path.endswith(pseudo['images'][0]['file_name'])
    # the teacher's labels of D_u against its ground truth (the train file)
    quality = pseudo_label_quality(out_file, train, score_thrs=[0.0])
    assert quality['num_images'] == 1 and quality['gt_per_image'] == 1


def test_the_pipeline_preflight_refuses_and_notes(tmp_path, capsys):
    """``tools/cast_pipeline.py custom-cpu --dry-run`` (the split not yet
    written): a duplicate image id of the train file (checked for the split
    to be written) and a 2-point polygon in val (read by CocoMetric) are
    refused, a crowd annotation of the train file noted."""
    root = str(tmp_path / 'data')
    files = {f'{i}.png': scene() for i in range(4)}
    train_anns = [ann(1, 1), ann(2, 2), ann(3, 3),
                  ann(4, 4, iscrowd=1), ann(5, 4)]
    train = write_dataset(root, files, train_anns)
    with open(train) as f:
        coco = json.load(f)
    coco['images'][2]['id'] = 2  # 2.png takes the id of 1.png
    coco['annotations'][2]['image_id'] = 2
    with open(train, 'w') as f:
        json.dump(coco, f)
    val = write_dataset(root, {'0.png': scene()},
                        [ann(1, 1, segmentation=[[30, 20, 40, 30]])], 'val')
    teacher0 = str(tmp_path / 'teacher0.pth')
    open(teacher0, 'wb').close()
    from mmcast.apis import pipeline as script
    code = script.main(['custom-cpu', '--data-root', root, '--classes',
                        *CLASSES, '--work-dir', str(tmp_path / 'work'),
                        '--pretrained-teacher', teacher0, '--dry-run'])
    assert code == script.PREFLIGHT_FAILED
    out = capsys.readouterr()
    err = out.err.splitlines()
    only_line(err, train, 'image id 2 is listed more than once (id 2: '
              '1.png, 2.png)')
    only_line(err, val, 'annotation 1 has a polygon whose first part has '
              'fewer than 3 points')
    only_line(out.out.splitlines(), 'note: ', train,
              '1 crowd annotation (iscrowd=1: 4)')

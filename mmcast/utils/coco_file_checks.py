# Copyright (c) mmcast contributors. All rights reserved.
"""What a COCO instance file holds that the stages would trip over.

Each finding is either a *problem* (a stage would stop, or would train or
evaluate on wrong labels without a word) or a *note* (handled; the note says
how), one line naming the file and the first ids.

Problems: duplicate image ids (CocoDataset keeps one image and puts the
annotations of all on it), duplicate annotation ids (CocoDataset asserts),
category ids that ``categories`` lacks (dropped: the objects turn
background), annotations of unlisted images, missing keys, an empty
segmentation (LoadAnnotations fails), an RLE of another size than its
image, in an evaluated file a polygon whose first part has < 3 points
(pycocotools fails), listed images not on disk, and an annotated image whose
json size differs from the decoded one (EXIF rotation, typically).

Notes: crowd annotations (ignored in training, crowd regions in COCOeval),
boxes CocoDataset drops (zero area), polygon parts of < 3 points (dropped by
mmdet's LoadAnnotations), grayscale, alpha, 16-bit and EXIF-rotated images
(read as 8-bit BGR, upright), images over 16 MP, file names with spaces or
non-ASCII characters, and a size difference of an image without annotations.

Whole-file checks read the json only; every listed image is looked up
(``os.path.isfile``); a sample is decoded as ``LoadImageFromFile`` decodes
it (``cv2``, ``IMREAD_COLOR``: EXIF orientation applied, 8-bit BGR).
"""
import os.path as osp
import re
import unicodedata
from collections import Counter, defaultdict
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

# Images with more pixels are noted (decoded and labelled at full size).
LARGE_PIXELS = 16_000_000
# Ids named in a line; the count follows.
MAX_IDS = 5
# EXIF orientations that swap width and height (transposed and rotated).
EXIF_SWAPS = (5, 6, 7, 8)
SINGULAR = {'have': 'has', 'are': 'is', 'were': 'was'}
IMAGE_KEYS = ('id', 'file_name', 'height', 'width')
ANN_KEYS = ('id', 'image_id', 'category_id', 'bbox', 'area')


class Findings:
    """The problems and notes of one annotation file (lines, no prefix)."""

    def __init__(self) -> None:
        self.problems: List[str] = []
        self.notes: List[str] = []


def split_source(ann_file: str) -> Optional[str]:
    """The file a ``<stem>.<seed>@<tag>[-unlabeled].json`` split (as
    :func:`~mmcast.datasets.semi_split.write_split` names it) was made from,
    if it is beside the split or one folder up."""
    match = re.fullmatch(r'(.+)\.\d+@[^@]+?(-unlabeled)?\.json',
                         osp.basename(ann_file))
    if match is None:
        return None
    folder = osp.dirname(ann_file)
    for where in (folder, osp.dirname(folder)):
        path = osp.join(where, match.group(1) + '.json')
        if osp.isfile(path):
            return path
    return None


def split_fix(ann_file: str, source: str) -> str:
    """What to do about a problem of a split: fix its source, write the
    split again."""
    prefix = re.sub(r'(-unlabeled)?\.json$', '', ann_file)
    return (f'; fix {osp.basename(source)}, then delete {prefix}* so that '
            'the split is written again')


def they(noun: str, ids: Sequence, verb: str) -> str:
    """``'annotation 4 has'`` or ``'annotations 4, 9 have'`` (the first
    ids and their count, see :func:`some`); ``verb`` in the plural."""
    if len(ids) == 1:
        return f'{noun} {list(ids)[0]} {SINGULAR.get(verb, verb + "s")}'
    return f'{noun}s {some(ids)} {verb}'


def count(num: int, noun: str, verb: str = '') -> str:
    """``'1 polygon has'`` or ``'3 polygons have'`` (``verb`` in the
    plural; none: ``'3 polygons'``)."""
    words = [str(num), noun if num == 1 else noun + 's']
    if verb:
        words.append(SINGULAR.get(verb, verb + 's') if num == 1 else verb)
    return ' '.join(words)


def some(ids: Sequence) -> str:
    """The first :data:`MAX_IDS` of ``ids`` and, if more, their count."""
    shown = ', '.join(str(i) for i in list(ids)[:MAX_IDS])
    return shown if len(ids) <= MAX_IDS else \
        f'{shown}, ... ({len(ids)} in all)'


def _mmdet_drops_box(ann: dict, img: dict) -> bool:
    """Whether ``CocoDataset.parse_data_info`` skips the annotation's box."""
    x1, y1, w, h = ann['bbox']
    inter_w = max(0, min(x1 + w, img['width']) - max(x1, 0))
    inter_h = max(0, min(y1 + h, img['height']) - max(y1, 0))
    return inter_w * inter_h == 0 or ann['area'] <= 0 or w < 1 or h < 1


def check_content(coco: dict, name: str, evaluated: bool) -> Findings:
    """Whole-file checks of a COCO instance dict (no file is opened).

    Args:
        coco (dict): The loaded json (``images`` a list).
        name (str): The file, as the lines name it.
        evaluated (bool): Whether an evaluator (pycocotools ``COCOeval``)
            reads it as ground truth: polygons it cannot rasterise are
            problems there, notes elsewhere (training ignores them).

    Returns:
        Findings: The problems and notes.
    """
    out = Findings()
    images = [i for i in coco['images'] if isinstance(i, dict)]
    anns = [a for a in coco.get('annotations') or [] if isinstance(a, dict)]
    cats = {c.get('id') for c in coco.get('categories') or []
            if isinstance(c, dict)}
    ann_keys = ANN_KEYS + (('iscrowd', ) if evaluated else ())
    for what, items, keys in (('image', images, IMAGE_KEYS),
                              ('annotation', anns, ann_keys)):
        for key in keys:
            lacking = [x.get('id', f'#{i}') for i, x in enumerate(items)
                       if key not in x]
            if lacking:
                out.problems.append(
                    f'{name}: {they(what, lacking, "have")} no "{key}" '
                    '(mmdet and pycocotools need it): add it')
    if out.problems:
        return out

    ids = Counter(img['id'] for img in images)
    dup = [i for i, n in ids.items() if n > 1]
    if dup:
        files = [img['file_name'] for img in images if img['id'] == dup[0]]
        out.problems.append(
            f'{name}: {they("image id", dup, "are")} listed more than once '
            f'(id {dup[0]}: {", ".join(files[:3])}): CocoDataset keeps one '
            'image per id and puts the annotations of all on it: give every '
            'image its own id')
    dup = [i for i, n in Counter(a['id'] for a in anns).items() if n > 1]
    if dup:
        out.problems.append(
            f'{name}: {they("annotation id", dup, "are")} used more than once '
            '(CocoDataset refuses the file): give every annotation its own '
            'id')
    by_id = {img['id']: img for img in images}
    found: Dict[str, list] = defaultdict(list)
    for ann in anns:
        img = by_id.get(ann['image_id'])
        seg = ann.get('segmentation')
        parts = seg if isinstance(seg, list) else None  # None: RLE
        if ann['category_id'] not in cats:
            found['category'].append(ann)
        if img is None:
            found['image'].append(ann)
        if not seg or (parts is not None and not any(parts)):
            found['no_segmentation'].append(ann)
            continue
        if parts is not None:
            if evaluated and len(parts[0]) <= 4:  # frPyObjects raises
                found['unreadable_polygon'].append(ann)
            elif any(len(p) < 6 or len(p) % 2 for p in parts):
                found['degenerate'].append(ann)
        elif img is not None and isinstance(seg, dict) and \
                list(seg.get('size', [])) != [img['height'], img['width']]:
            found['rle_size'].append(ann)
        if ann.get('iscrowd'):
            found['crowd'].append(ann)
        try:
            if img is not None and _mmdet_drops_box(ann, img):
                found['box'].append(ann)
        except (TypeError, ValueError):
            found['bbox'].append(ann)
    _content_lines(out, name, found, evaluated, by_id)
    _image_list_notes(out, name, images)
    return out


def _content_lines(out: Findings, name: str, found: Dict[str, list],
                   evaluated: bool, by_id: dict) -> None:
    """The lines of :func:`check_content`'s per-annotation findings."""

    def anns(key: str, verb: str = 'have') -> str:
        return they('annotation', [a['id'] for a in found[key]], verb)

    def ids(key: str) -> str:
        return some([a['id'] for a in found[key]])

    if found['category']:
        missing = sorted({a['category_id'] for a in found['category']},
                         key=str)
        out.problems.append(
            f'{name}: {anns("category")} category_id {some(missing)}, which '
            '"categories" does not list (CocoDataset drops them without a '
            'word: the objects become background): add the category or fix '
            'category_id')
    if found['image']:
        out.problems.append(
            f'{name}: {anns("image", "name")} an image_id that "images" does '
            f'not list (e.g. {found["image"][0]["image_id"]}): add the image '
            'or delete them')
    if found['no_segmentation']:
        out.problems.append(
            f'{name}: {anns("no_segmentation")} an empty segmentation '
            '(mmdet\'s LoadAnnotations and COCOeval fail on it): give a '
            'polygon or RLE, or delete the annotation')
    if found['rle_size']:
        ann = found['rle_size'][0]
        img = by_id[ann['image_id']]
        out.problems.append(
            f'{name}: {anns("rle_size")} an RLE of another size than the '
            f'image (annotation {ann["id"]}: '
            f'{ann["segmentation"].get("size")}, image {img["id"]} is '
            f'{img["height"]}x{img["width"]} (h x w)): encode the masks at '
            'the image size')
    if found['bbox']:
        out.problems.append(
            f'{name}: {anns("bbox")} a bbox that is not [x, y, width, '
            'height] (CocoDataset fails on it): fix it')
    if found['unreadable_polygon']:
        out.problems.append(
            f'{name}: {anns("unreadable_polygon")} a polygon whose first '
            'part has fewer than 3 points: pycocotools cannot rasterise it '
            'and the evaluation (CocoMetric) fails: delete such parts, or '
            'the annotation')
    if found['degenerate']:
        dropped = [a for a in found['degenerate'] if not any(
            len(p) >= 6 and not len(p) % 2 for p in a['segmentation'])]
        what = ('COCOeval draws those parts as nothing' if evaluated else
                'training drops those parts (mmdet LoadAnnotations) and '
                f'ignores the {count(len(dropped), "annotation")} left with '
                'none')
        out.notes.append(
            f'{name}: {count(len(found["degenerate"]), "polygon", "have")} '
            f'parts with fewer than 3 points (annotations '
            f'{ids("degenerate")}): {what}')
    if found['crowd']:
        out.notes.append(
            f'{name}: {count(len(found["crowd"]), "crowd annotation")} '
            f'(iscrowd=1: {ids("crowd")}): ignored in training, crowd '
            'regions for COCOeval, left out of the pseudo-label quality')
    if found['box']:
        out.notes.append(
            f'{name}: {count(len(found["box"]), "annotation", "have")} a box '
            'that CocoDataset drops (zero area, under 1 px or outside the '
            f'image: {ids("box")}): not trained on; if the object is real, '
            'compute bbox and area from its mask')


def _image_list_notes(out: Findings, name: str, images: List[dict]) -> None:
    """Notes on large images and unusual file names (from the json)."""
    large = [img for img in images if img['width'] * img['height'] >
             LARGE_PIXELS]
    if large:
        big = max(large, key=lambda img: img['width'] * img['height'])
        out.notes.append(
            f'{name}: {count(len(large), "image", "have")} more than '
            f'{LARGE_PIXELS // 10**6} MP (the largest {big["file_name"]}, '
            f'{big["width"]}x{big["height"]}): read and pseudo-labelled at '
            'full size (the teacher\'s float mask of one instance takes '
            f'{big["width"] * big["height"] * 4 / 2**30:.2f} GiB); downscale '
            'them (and their annotations) if that runs out of memory')
    odd = [img['file_name'] for img in images
           if ' ' in img['file_name'] or not img['file_name'].isascii()]
    if odd:
        out.notes.append(
            f'{name}: {count(len(odd), "file name", "have")} spaces or '
            f'non-ASCII characters (e.g. {odd[0]!r}): read as they are')


def _missing_hint(img_dir: str, file_name: str) -> str:
    """Why a listed file may be missing, if another spelling exists."""
    for form in ('NFC', 'NFD'):
        other = unicodedata.normalize(form, file_name)
        if other != file_name and osp.isfile(osp.join(img_dir, other)):
            return (f' ({other!r} exists: the same name in another Unicode '
                    'normalization; rename the file or fix file_name)')
    other = file_name.replace('\\', '/')
    if other != file_name and osp.isfile(osp.join(img_dir, other)):
        return f' (use "/" in file_name: {other!r} exists)'
    return ''


def check_images_exist(images: List[dict], name: str,
                       img_dir: str) -> Findings:
    """Every listed image is a file under ``img_dir`` (none is opened)."""
    out = Findings()
    missing = [img for img in images
               if not osp.isfile(osp.join(img_dir, img['file_name']))]
    if missing:
        first = missing[0]['file_name']
        out.problems.append(
            f'{name}: {len(missing)} of {len(images)} listed images '
            f'{SINGULAR["are"] if len(missing) == 1 else "are"} not in '
            f'{img_dir} ({they("image id", [i["id"] for i in missing], "are")}'
            f' missing, e.g. {first!r}{_missing_hint(img_dir, first)}): a '
            'stage stops at the first one it reads: put them there, or '
            'delete their entries and annotations')
    return out


def pixel_format(path: str, content: bytes) -> Dict[str, object]:
    """What an image file stores, from its header (no pixel decoded).

    Returns:
        dict: ``gray``, ``alpha`` and ``bits16`` (bool; a PNG's bit depth
        is read from its IHDR chunk, as Pillow opens 16-bit colour PNGs as
        8-bit ``RGB``) and ``orientation`` (the EXIF tag, 1 when none).
    """
    from PIL import Image

    try:
        with Image.open(path) as img:
            mode, info = img.mode, img.info
            orientation = int(img.getexif().get(0x0112, 1) or 1)
    except Exception:  # noqa: BLE001 - not for Pillow: cv2 decides
        return dict(gray=False, alpha=False, bits16=False, orientation=1)
    png16 = content[:8] == b'\x89PNG\r\n\x1a\n' and content[24:25] == b'\x10'
    return dict(
        gray=mode in ('1', 'L', 'LA', 'I', 'F') or mode.startswith('I;16'),
        alpha=mode in ('LA', 'RGBA', 'PA', 'La', 'RGBa') or
        'transparency' in info,
        bits16=png16 or mode.startswith('I;16') or mode == 'I',
        orientation=orientation)


def check_decoded(images: Iterable[dict], name: str, img_dir: str,
                  annotated: set) -> Findings:
    """Decode ``images`` as ``LoadImageFromFile`` does and compare.

    Args:
        images (Iterable[dict]): The sampled image entries (files exist).
        name (str): The annotation file, as the lines name it.
        img_dir (str): Their folder.
        annotated (set): Ids of the images with annotations in the file: a
            json size that differs from the decoded image is a problem
            there (their masks would be drawn on another frame).

    Returns:
        Findings: Undecodable files and annotated images whose size
        differs are problems; grayscale, alpha, 16-bit and EXIF-rotated
        images (and size differences without annotations) are notes.
    """
    import cv2
    import mmcv

    out = Findings()
    kinds: Dict[str, list] = defaultdict(list)
    images = list(images)
    for img in images:
        path = osp.join(img_dir, img['file_name'])
        with open(path, 'rb') as f:
            content = f.read()
        decoded = mmcv.imfrombytes(content, flag='color', backend='cv2')
        if decoded is None:
            out.problems.append(f'{path}: cannot be decoded as an image '
                                f'(listed in {name}): replace the file')
            continue
        stored = pixel_format(path, content)
        orientation = stored['orientation']
        got, said = decoded.shape[:2], (img['height'], img['width'])
        if tuple(got) != said:
            exif = (f' (EXIF orientation {orientation}: cv2 turns it upright;'
                    ' the json has the stored size)' if orientation in
                    EXIF_SWAPS and tuple(got[::-1]) == said else '')
            line = (f'{name}: image {img["id"]} ({path}) decodes as '
                    f'{got[1]}x{got[0]} (w x h) but the json says '
                    f'{said[1]}x{said[0]}{exif}')
            if img['id'] in annotated:
                out.problems.append(
                    line + ': its masks would be drawn on another frame: '
                    'write the decoded size and annotate the image as it '
                    'decodes (upright)')
            else:
                out.notes.append(line + ': it has no annotations here, the '
                                 'pipeline uses the decoded size')
            continue
        if stored['gray']:
            kinds['grayscale (the gray channel repeated)'].append(img)
        if stored['alpha']:
            kinds['with an alpha channel (dropped)'].append(img)
        if stored['bits16']:
            kinds['16-bit (divided by 256)'].append(img)
            raw = cv2.imdecode(np.frombuffer(content, np.uint8),
                               cv2.IMREAD_UNCHANGED)
            if raw is not None and raw.max() < 4096:
                kinds['16-bit with values under 4096 only (divided by 256 '
                      'they come out nearly black: scale them to 8 bits '
                      'yourself)'].append(img)
        if orientation != 1:
            kinds['EXIF-rotated (decoded upright, as the json\'s size '
                  'says)'].append(img)
    for kind, imgs in kinds.items():
        out.notes.append(
            f'{name}: {len(imgs)} of {len(images)} sampled images '
            f'{"is" if len(imgs) == 1 else "are"} {kind}'
            f' (e.g. {imgs[0]["file_name"]!r}): LoadImageFromFile reads them '
            'as 8-bit 3-channel BGR')
    return out


def check_image_files(coco: dict, name: str, img_dir: str, num_images: int,
                      who: str) -> Findings:
    """The images of a COCO dict: all exist, a sample decodes as listed.

    Args:
        coco (dict): The loaded json.
        name (str): The annotation file, as the lines name it.
        img_dir (str): The image folder (it exists).
        num_images (int): Images decoded (first, last, evenly spaced).
        who (str): The reader, for the wrong-folder line.

    Returns:
        Findings: When no sampled image is in ``img_dir``, one line (wrong
        folder); else those of :func:`check_images_exist` and
        :func:`check_decoded`.
    """
    images = [img for img in coco['images'] if isinstance(img, dict) and
              all(k in img for k in IMAGE_KEYS)]
    n = min(num_images, len(images))
    picks = [images[i] for i in sorted(
        {round(i * (len(images) - 1) / max(n - 1, 1)) for i in range(n)})]
    missing = [osp.join(img_dir, img['file_name']) for img in picks
               if not osp.isfile(osp.join(img_dir, img['file_name']))]
    if missing and len(missing) == len(picks):
        out = Findings()
        out.problems.append(
            f'{len(missing)} of {len(picks)} sampled images of {name} are '
            f'not in {img_dir}, e.g. {missing[0]} (read by {who}): wrong '
            'image folder for this annotation file, or images missing')
        return out
    out = check_images_exist(images, name, img_dir)
    if not out.problems:
        annotated = {a.get('image_id') for a in coco.get('annotations') or []
                     if isinstance(a, dict)}
        found = check_decoded(picks, name, img_dir, annotated)
        out.problems += found.problems
        out.notes += found.notes
    return out

# Copyright (c) mmcast contributors. All rights reserved.
"""The data a run needs before its stages: the toy scenes, the split of your
own dataset and its checks, the tiny teachers' files; and the split told on
the console."""
import contextlib
import json
import os.path as osp
import unicodedata
from typing import Dict, Iterator, List, Optional

from mmcast.utils.atomic_io import atomic_dump_json
from mmcast.utils.file_hashing import file_sha256

from .config_inputs import dataset_inputs
from .config_loader import ConfigLoader
from .errors import PipelineError
from .planning import Plan
from .run_spec import TOY_PERCENT, RunSpec
from .settings import (CUSTOM_CLASSES_ENV, CUSTOM_PERCENT_ENV, CUSTOM_ROOT_ENV,
                       CUSTOM_SPLIT_SEED_ENV, CUSTOM_TEMPLATE)
from .work_dir_lock import DATA_LOCK, FolderLock, describe_holder


@contextlib.contextmanager
def data_lock(folder: str) -> Iterator[None]:
    """Hold ``folder`` while the pipeline writes data there: pipelines of
    other work dirs sharing a data root wait for each other instead of
    writing the same files at once."""
    lock = FolderLock(folder, DATA_LOCK)
    lock.acquire(wait=True, on_wait=lambda holder: print(
        f'waiting for another pipeline that writes {folder} '
        f'({describe_holder(holder)})', flush=True))
    try:
        yield
    finally:
        lock.release()


def toy_data_current(root: str, **expected) -> bool:
    """Whether ``root`` holds a complete toy dataset made as expected."""
    meta = osp.join(root, 'toy_meta.json')
    if not osp.isfile(meta):
        return False
    with open(meta, encoding='utf-8') as f:
        meta = json.load(f)
    meta.setdefault('world', 'streets')
    return bool(meta.get('complete')) and all(
        meta.get(k) == v for k, v in expected.items())


def prepare_toy_data(spec: RunSpec) -> None:
    """Toy target and source data and the target's 10 % split; with
    ``--toy-unlabeled``, the target's extra train images go to the
    unlabeled part only (the labeled 10 % of the first TRAIN images are the
    images of the split without them)."""
    from mmcast.datasets.semi_split import write_split
    from mmcast.toy.worlds import make_toy_dataset

    toy = spec.toy
    height, width = toy.image_size
    with data_lock(osp.dirname(toy.root)):
        for root, style, train in (
                (toy.root, 'target', toy.num_train + toy.extra_unlabeled),
                (toy.source_root, 'source', toy.num_source)):
            if not toy_data_current(root, num_train=train,
                                    num_val=toy.num_val, height=height,
                                    width=width, world=toy.world):
                print(f'generating {root} ({toy.world} world, {style} '
                      'style)', flush=True)
                make_toy_dataset(root, num_train=train, num_val=toy.num_val,
                                 height=height, width=width, seed=0,
                                 style=style, world=toy.world)
        ann_dir = osp.join(toy.root, 'annotations')
        write_split(
            osp.join(ann_dir, 'instancesonly_filtered_gtFine_train.json'),
            osp.join(ann_dir, 'semi'), seed=1, percent=TOY_PERCENT,
            labeled_pool=toy.num_train)


def prepare_tiny_teacher_assets(spec: RunSpec) -> str:
    """The tiny teacher's offline files (idempotent): the tiny BERT folder
    and SAM 2 checkpoint, or the tiny SAM 3 and its vocabulary, written into
    ``<work-dir>/tiny_teachers`` (the stages' ``MMCAST_TINY_TEACHERS``)."""
    spec.teacher_settings['tiny_assets'](spec.tiny_teachers)
    return spec.tiny_teachers


def _custom_settings(loader: ConfigLoader):
    """``custom_dataset.py`` as the stages read it (through the baseline's
    config, which every run has)."""
    return loader.config_file(loader.stage_config('supervised_student'))


def prepare_custom_split(loader: ConfigLoader, dry: bool) -> List[str]:
    """Write the labeled / unlabeled split the custom configs read if it is
    missing (seed and percent of ``custom_dataset.py``); a dry run prints
    the command only. Returns the folders the run writes it into (for the
    preflight; none once written).

    Raises:
        PipelineError: The split cannot be written from its train file.
    """
    from mmcast.datasets.semi_split import write_split

    cfg = _custom_settings(loader)
    root = cfg.data_root
    wanted = [loader.in_repo(root + cfg.labeled_ann_file),
              loader.in_repo(root + cfg.unlabeled_ann_file)]
    train_ann = loader.in_repo(root + cfg.train_ann_file)
    why = 'is missing'
    if all(osp.isfile(p) for p in wanted):
        why = split_outdated(train_ann, *wanted)
        if why is None:
            return []
    out_dir = osp.dirname(wanted[0])
    command = (f'python tools/split_semi.py {train_ann} --percent '
               f'{cfg.percent:g} --seed {cfg.split_seed}')
    if out_dir != osp.dirname(train_ann):
        command += f' --out-dir {out_dir}'
    if dry:
        print(f'the labeled / unlabeled split {why}; a run writes it '
              f'like: {command}', flush=True)
        # (the preflight takes folders; check_custom_dataset has checked
        # the annotation files that are not made here)
        return sorted({osp.dirname(p) for p in wanted})
    print(f'the labeled / unlabeled split {why}: writing it (the same seed '
          f'and share): {command}', flush=True)
    try:
        with data_lock(out_dir):
            paths = write_split(train_ann, out_dir, cfg.split_seed,
                                cfg.percent)
    except (FileNotFoundError, ValueError, KeyError) as e:
        raise PipelineError(
            f'preflight: cannot write the split of {train_ann} ({e}; '
            f'data_root of {CUSTOM_TEMPLATE} or --data-root)')
    for path in (paths['labeled'], paths['unlabeled']):
        print(f'  {path}', flush=True)
    atomic_dump_json(dict(source=train_ann, sha256=file_sha256(train_ann)),
                     split_source_record(paths['labeled']), indent=2)
    return []


def split_source_record(labeled_file: str) -> str:
    """The file beside a split's labeled part that records the annotation
    file it was drawn from and that file's sha256."""
    return labeled_file[:-len('.json')] + '.source.json'


def split_outdated(train_ann: str, labeled: str,
                   unlabeled: str) -> Optional[str]:
    """Why the split ``labeled`` / ``unlabeled`` is no longer the split of
    ``train_ann`` (``'is out of date: its annotation file changed (8 images
    added, 0 removed)'``), or ``None`` while it is. A split without its
    source record (drawn by an earlier version, or by hand) is current
    while it holds the same images."""
    record = split_source_record(labeled)
    if osp.isfile(record):
        with open(record, encoding='utf-8') as f:
            if json.load(f).get('sha256') == file_sha256(train_ann):
                return None
    ids = {}
    for name, path in (('train', train_ann), ('labeled', labeled),
                       ('unlabeled', unlabeled)):
        with open(path, encoding='utf-8') as f:
            ids[name] = {img['id'] for img in json.load(f)['images']}
    drawn = ids['labeled'] | ids['unlabeled']
    added, removed = ids['train'] - drawn, drawn - ids['train']
    if not osp.isfile(record) and not added and not removed:
        return None
    return (f'is out of date: {osp.basename(train_ann)} changed since it was '
            f'drawn ({len(added)} images added, {len(removed)} removed)')


def check_custom_dataset(spec: RunSpec, loader: ConfigLoader) -> List[str]:
    """Problems with the custom dataset the configs read: data root and
    classes not the ones asked for (``custom_dataset.py`` lost its override
    lines), missing annotation files, classes that are no category of an
    annotation file (``CocoDataset`` would drop them without a word) or not
    in the order of its categories (its labels would not match the
    names)."""
    cfg = _custom_settings(loader)
    problems = []
    asked = (('data_root', CUSTOM_ROOT_ENV,
              spec.data_root and spec.data_root + '/'),
             ('classes', CUSTOM_CLASSES_ENV, spec.classes),
             ('percent', CUSTOM_PERCENT_ENV, spec.percent),
             ('split_seed', CUSTOM_SPLIT_SEED_ENV, spec.split_seed))
    for key, env, given in asked:
        value = tuple(cfg[key]) if key == 'classes' else cfg[key]
        if given is not None and value != given:
            problems.append(
                f'{CUSTOM_TEMPLATE}: {key} is {value!r}, not {given!r} of '
                f'the command line: keep its line that reads ${env}')
    classes = tuple(cfg.classes)
    for name in (cfg.train_ann_file, cfg.val_ann_file):
        ann_file = loader.in_repo(cfg.data_root + name)
        if not osp.isfile(ann_file):
            problems.append(
                f'missing annotation file {ann_file}: put the dataset there '
                f'or point data_root of {CUSTOM_TEMPLATE} (or --data-root) '
                'at it')
            continue
        try:
            with open(ann_file, encoding='utf-8') as f:
                names = [c['name'] for c in json.load(f)['categories']]
        except (ValueError, AttributeError, TypeError, KeyError) as e:
            problems.append(f'{ann_file}: not a COCO instance annotation '
                            f'file ({type(e).__name__}: {e})')
            continue
        missing = [c for c in classes if c not in names]
        in_order = [n for n in names if n in classes]
        if missing:
            problems.append(
                f'{ann_file}: no category named {missing} (classes: '
                f'{list(classes)}; its categories: {names}): set classes in '
                f'{CUSTOM_TEMPLATE} or --classes to names of its categories' +
                _normalisation_note(missing, names))
        elif in_order != list(classes):
            problems.append(
                f'{ann_file}: classes {list(classes)} are not in the order of '
                f'its categories, {in_order} (CocoDataset numbers the labels '
                f'in that order): reorder classes in {CUSTOM_TEMPLATE} or '
                '--classes')
    return problems


def print_split(loader: ConfigLoader, plan: Plan,
                image_counts: Dict[str, int]) -> None:
    """One line with the images of D_l, D_u and val (as the preflight
    counted them, ``image_counts``), and the files they come from."""
    seed = next(iter(plan.per_seed))
    baseline = plan.seed_stage(seed, 'supervised_student')

    def files(node) -> List[str]:
        return [loader.in_repo(ann) for ann, _ in dataset_inputs(node)]

    labeled = files(loader.load(baseline).train_dataloader)
    val = [loader.val_ann_file(baseline)]
    unlabeled = []
    # CAST's D_u, else Guided Distillation's
    semi = plan.seed_stage(seed, 'distill') or plan.seed_stage(
        seed, 'guided_distillation')
    if semi is not None:
        cfg = loader.load(semi)
        unlabeled = sorted({
            p for p in files([cfg.train_dataloader,
                              cfg.get('custom_hooks', [])])
            if p not in labeled + val})
    parts, lines = [], []
    for name, what, paths in (('D_l', 'labeled', labeled),
                              ('D_u', 'unlabeled', unlabeled),
                              ('val', 'val', val)):
        counts = [image_counts.get(osp.abspath(p)) for p in paths]
        if not paths or None in counts:
            continue  # made by the run (toy data on a dry run)
        parts.append(f'{sum(counts)} {what}')
        lines += [f'  {name}: {p}' for p in paths]
    if parts:
        print('split: ' + ' / '.join(parts) + ' images', flush=True)
        print('\n'.join(lines), flush=True)


def _normalisation_note(missing: List[str], names: List[str]) -> str:
    """For class names that equal a category only once both are in one
    Unicode normal form (``café`` typed as ``e`` + a combining accent, the
    category as ``é``): which, and in what forms; else ``''``."""
    found = []
    for name in missing:
        for category in names:
            if unicodedata.normalize('NFC', name) == \
                    unicodedata.normalize('NFC', category):
                found.append(f'{name!r} is {_form(name)}, the category '
                             f'{category!r} {_form(category)}')
    if not found:
        return ''
    return ('; they differ only in Unicode normalisation (' +
            '; '.join(found) + '): write both in one form, e.g. NFC')


def _form(text: str) -> str:
    """The Unicode normal form ``text`` is in (``NFC``, ``NFD``) and its
    code points."""
    form = 'NFC' if unicodedata.is_normalized('NFC', text) else 'NFD' \
        if unicodedata.is_normalized('NFD', text) else 'mixed'
    points = ' '.join(f'U+{ord(c):04X}' for c in text)
    return f'{form} ({points})'

# Copyright (c) mmcast contributors. All rights reserved.
"""The data a run needs before its stages: the toy scenes, the split of your
own dataset and its checks, the tiny teachers' files."""
import argparse
import contextlib
import json
import os.path as osp
import sys
from typing import Dict, Iterator, List

from .settings import (CUSTOM_CLASSES_ENV, CUSTOM_PERCENT_ENV, CUSTOM_ROOT_ENV,
                       CUSTOM_SPLIT_SEED_ENV, CUSTOM_TEMPLATE,
                       PREFLIGHT_FAILED, REPO_ROOT)
from .stage import Stage
from .work_dir_lock import DATA_LOCK, FolderLock, describe_holder


# the toy target's labeled share of its --toy-sizes TRAIN images
TOY_PERCENT = 10


def toy_extra_unlabeled(args: argparse.Namespace) -> int:
    """How many generated train images ``--toy-unlabeled`` adds to the toy
    target's D_u (0 without it).

    Raises:
        SystemExit: ``--toy-unlabeled`` for another dataset, or fewer than
            the split's own unlabeled images.
    """
    from mmcast.datasets.semi_split import num_labeled_images
    if args.toy_unlabeled is None:
        return 0
    if args.dataset != 'toy':
        raise SystemExit(f'--toy-unlabeled is for the toy data, not '
                         f'{args.dataset}')
    n_train = args.toy_sizes[0]
    own = n_train - num_labeled_images(n_train, TOY_PERCENT)
    if args.toy_unlabeled < own:
        raise SystemExit(
            f'--toy-unlabeled {args.toy_unlabeled}: the split of the '
            f'{n_train} train images (--toy-sizes) leaves {own} unlabeled '
            f'already; for fewer, give fewer train images')
    return args.toy_unlabeled - own


class DataPreparation:
    """The data a run needs before its stages: the toy scenes, the split of your
    own dataset and its checks, the tiny teachers' files.

    A part of :class:`~mmcast.apis.pipeline.CASTPipeline`; it uses the
    attributes that class sets.
    """

    @staticmethod
    def _toy_data_current(root: str, **expected) -> bool:
        """Whether ``root`` holds a complete toy dataset made as expected."""
        meta = osp.join(root, 'toy_meta.json')
        if not osp.isfile(meta):
            return False
        with open(meta, encoding='utf-8') as f:
            meta = json.load(f)
        meta.setdefault('world', 'streets')
        return bool(meta.get('complete')) and all(
            meta.get(k) == v for k, v in expected.items())

    def prepare_toy_data(self) -> None:
        """Toy target and source data and the target's 10 % split; with
        ``--toy-unlabeled``, the target's extra train images go to the
        unlabeled part only (the labeled 10 % of the first TRAIN images
        are the images of the split without them)."""
        n_train, n_val, n_source = self.args.toy_sizes
        height, width = self.args.toy_image_size
        world = self.args.toy_world
        with self.data_lock(osp.dirname(self.toy_root)):
            self._prepare_toy_data(n_train, n_val, n_source, height, width,
                                   world)

    def _prepare_toy_data(self, n_train: int, n_val: int, n_source: int,
                          height: int, width: int, world: str) -> None:
        from mmcast.datasets.semi_split import write_split
        from mmcast.toy.worlds import make_toy_dataset

        for root, style, train, val in ((self.toy_root, 'target',
                                         n_train + self.toy_extra_unlabeled,
                                         n_val),
                                        (self.toy_source_root, 'source',
                                         n_source, n_val)):
            if not self._toy_data_current(root, num_train=train, num_val=val,
                                          height=height, width=width,
                                          world=world):
                print(f'generating {root} ({world} world, {style} style)',
                      flush=True)
                make_toy_dataset(root, num_train=train, num_val=val,
                                 height=height, width=width, seed=0,
                                 style=style, world=world)
        ann_dir = osp.join(self.toy_root, 'annotations')
        write_split(osp.join(ann_dir, 'instancesonly_filtered_gtFine_train.json'),
                    osp.join(ann_dir, 'semi'), seed=1, percent=TOY_PERCENT,
                    labeled_pool=n_train)

    @staticmethod
    @contextlib.contextmanager
    def data_lock(folder: str) -> Iterator[None]:
        """Hold ``folder`` while the pipeline writes data there: pipelines
        of other work dirs sharing a data root wait for each other instead
        of writing the same files at once."""
        lock = FolderLock(folder, DATA_LOCK)
        lock.acquire(wait=True, on_wait=lambda holder: print(
            f'waiting for another pipeline that writes {folder} '
            f'({describe_holder(holder)})', flush=True))
        try:
            yield
        finally:
            lock.release()

    def custom_settings(self):
        """``custom_dataset.py`` as the stages read it (through the
        baseline's config, which every run has)."""
        return self.config_file(self.stage_config('supervised_student'))

    @staticmethod
    def _in_repo(path: str) -> str:
        """A config path as the stages (run in the repository) see it."""
        return osp.normpath(osp.join(REPO_ROOT, path))

    def prepare_custom_split(self, dry: bool) -> None:
        """Write the labeled / unlabeled split the custom configs read if it
        is missing (seed and percent of ``custom_dataset.py``); a dry run
        prints the command only."""
        from mmcast.datasets.semi_split import write_split

        cfg = self.custom_settings()
        root = cfg.data_root
        wanted = [self._in_repo(root + cfg.labeled_ann_file),
                  self._in_repo(root + cfg.unlabeled_ann_file)]
        if all(osp.isfile(p) for p in wanted):
            return
        train_ann = self._in_repo(root + cfg.train_ann_file)
        out_dir = osp.dirname(wanted[0])
        command = (f'python tools/split_semi.py {train_ann} --percent '
                   f'{cfg.percent:g} --seed {cfg.split_seed}')
        if out_dir != osp.dirname(train_ann):
            command += f' --out-dir {out_dir}'
        if dry:
            print(f'the labeled / unlabeled split is missing; a run writes '
                  f'it like: {command}', flush=True)
            # (the preflight takes folders; check_custom_dataset has checked
            # the annotation files that are not made here)
            self.made_here += sorted({osp.dirname(p) for p in wanted})
            return
        print(f'writing the labeled / unlabeled split: {command}', flush=True)
        try:
            with self.data_lock(out_dir):
                paths = write_split(train_ann, out_dir, cfg.split_seed,
                                    cfg.percent)
        except (FileNotFoundError, ValueError, KeyError) as e:
            print(f'preflight: cannot write the split of {train_ann} ({e}; '
                  f'data_root of {CUSTOM_TEMPLATE} or --data-root)',
                  file=sys.stderr)
            raise SystemExit(PREFLIGHT_FAILED)
        for path in (paths['labeled'], paths['unlabeled']):
            print(f'  {path}', flush=True)

    def check_custom_dataset(self) -> List[str]:
        """Problems with the custom dataset the configs read: data root and
        classes not the ones asked for (``custom_dataset.py`` lost its
        override lines), missing annotation files, classes that are no
        category of an annotation file (``CocoDataset`` would drop them
        without a word) or not in the order of its categories (its labels
        would not match the names)."""
        cfg = self.custom_settings()
        problems = []
        asked = (('data_root', CUSTOM_ROOT_ENV),
                 ('classes', CUSTOM_CLASSES_ENV),
                 ('percent', CUSTOM_PERCENT_ENV),
                 ('split_seed', CUSTOM_SPLIT_SEED_ENV))
        for key, env in asked:
            value = tuple(cfg[key]) if key == 'classes' else cfg[key]
            if env in self.env and repr(value) != self.env[env]:
                problems.append(
                    f'{CUSTOM_TEMPLATE}: {key} is {value!r}, not '
                    f'{self.env[env]} of the command line: keep its line '
                    f'that reads ${env}')
        classes = tuple(cfg.classes)
        for name in (cfg.train_ann_file, cfg.val_ann_file):
            ann_file = self._in_repo(cfg.data_root + name)
            if not osp.isfile(ann_file):
                problems.append(
                    f'missing annotation file {ann_file}: put the dataset '
                    f'there or point data_root of {CUSTOM_TEMPLATE} (or '
                    '--data-root) at it')
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
                    f'{list(classes)}; its categories: {names}): set classes '
                    f'in {CUSTOM_TEMPLATE} or --classes to names of its '
                    'categories')
            elif in_order != list(classes):
                problems.append(
                    f'{ann_file}: classes {list(classes)} are not in the '
                    f'order of its categories, {in_order} (CocoDataset '
                    'numbers the labels in that order): reorder classes in '
                    f'{CUSTOM_TEMPLATE} or --classes')
        return problems

    def print_split(self, per_seed: Dict[int, List[Stage]]) -> None:
        """One line with the images of D_l, D_u and val (as the preflight
        counted them), and the files they come from."""
        from mmcast.utils.preflight import dataset_inputs

        stages = {st.key: st for st in next(iter(per_seed.values()))}
        baseline = stages['supervised_student']

        def files(node) -> List[str]:
            return [self._in_repo(ann) for ann, _ in dataset_inputs(node)]

        labeled = files(self.load_config(baseline).train_dataloader)
        val = [self.val_ann_file(baseline)]
        unlabeled = []
        # CAST's D_u, else Guided Distillation's
        semi = stages.get('distill') or stages.get('guided_distillation')
        if semi is not None:
            cfg = self.load_config(semi)
            unlabeled = sorted({
                p for p in files([cfg.train_dataloader,
                                  cfg.get('custom_hooks', [])])
                if p not in labeled + val})
        parts, lines = [], []
        for name, what, paths in (('D_l', 'labeled', labeled),
                                  ('D_u', 'unlabeled', unlabeled),
                                  ('val', 'val', val)):
            counts = [self.image_counts.get(osp.abspath(p)) for p in paths]
            if not paths or None in counts:
                continue  # made by the run (toy data on a dry run)
            parts.append(f'{sum(counts)} {what}')
            lines += [f'  {name}: {p}' for p in paths]
        if parts:
            print('split: ' + ' / '.join(parts) + ' images', flush=True)
            print('\n'.join(lines), flush=True)

    def prepare_tiny_teacher_assets(self) -> str:
        """The tiny teacher's offline files (idempotent): the tiny BERT
        folder and SAM 2 checkpoint, or the tiny SAM 3 and its vocabulary.

        Written into ``<work-dir>/tiny_teachers`` and passed to the stages
        as ``MMCAST_TINY_TEACHERS``.
        """
        root = self.env['MMCAST_TINY_TEACHERS']
        self.teacher_cfg['tiny_assets'](root)
        return root

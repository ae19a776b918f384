# Copyright (c) mmcast contributors. All rights reserved.
"""Pseudo-label an unlabeled set with a teacher, offline.

Writes a COCO json (RLE masks with scores, header in ``info``) that
``PseudoLabeledDataset``, ``CocoDataset`` and ``browse_dataset`` read, and
overlays of the first images in ``<out dir>/pseudo_label_vis/``. A killed run
resumes where it stopped; an up-to-date output is not redone (``--force``).

Examples::

    python tools/pseudo_label.py configs/teacher.py work_dirs/teacher.pth \\
        --unlabeled-ann data/cityscapes/annotations/semi/unlabeled@10.json \\
        --data-root data/cityscapes/ --img-prefix leftImg8bit/train/ \\
        --out work_dirs/pseudo/cityscapes_u10.json
    # 2 processes (gloo on CPU, nccl on GPUs)
    torchrun --nproc_per_node=2 tools/pseudo_label.py ... --launcher pytorch

The test pipeline and metainfo come from the teacher config's
``test_dataloader.dataset`` (annotation-loading steps removed). Without
``--img-prefix`` the image folder follows the annotation file: the folder of
the config's dataset that reads that file, else of one of the same split
(``train``, ``val``, ``train2017``, ...), else the test folder with its split
replaced. When more than ``--max-unreadable`` of the images cannot be read
the tool stops, naming the folder and the first such file, and writes
nothing.
"""
import argparse
import copy
import os
import os.path as osp
import re
import sys
from typing import Iterator, Optional, Tuple

from mmengine.config import DictAction

ANNOTATION_TRANSFORMS = ('LoadAnnotations', 'LoadPanopticAnnotations',
                         'LoadTextAnnotations')
# A split name in an annotation file or folder name: train, val2017, ...
SPLIT = re.compile(r'(?<![a-z])(train|val|test)(\d{4})?(?![a-z])')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Pseudo-label an unlabeled COCO-format set with a '
        'teacher detector (offline, resumable, multi-process)')
    parser.add_argument('config', help='teacher config file')
    parser.add_argument('checkpoint', help='teacher checkpoint file')
    parser.add_argument(
        '--unlabeled-ann', required=True,
        help='COCO json of the unlabeled images (a path; if it does not '
        'exist as given it is taken relative to --data-root)')
    parser.add_argument('--out', required=True, help='output COCO json')
    parser.add_argument(
        '--data-root', default=None,
        help='dataset root (default: the teacher config\'s)')
    parser.add_argument(
        '--img-prefix', default=None,
        help='image folder under --data-root, e.g. leftImg8bit/train/ '
        '(default: the folder of the config\'s dataset that reads '
        '--unlabeled-ann, or of its split)')
    parser.add_argument(
        '--max-unreadable', type=float, default=0.05,
        help='fraction of images that may be missing or undecodable '
        '(skipped and counted); above it the tool stops and writes nothing')
    parser.add_argument('--dataset-type', default=None,
                        help='dataset class (default: the teacher config\'s)')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='keep instances with score > this')
    parser.add_argument('--max-per-image', type=int, default=100)
    parser.add_argument('--mask-thr', type=float, default=0.5,
                        help='binarise float masks at this value')
    parser.add_argument('--min-area', type=int, default=1,
                        help='drop masks with fewer pixels after painting')
    parser.add_argument(
        '--allow-overlap', action='store_true',
        help='keep overlapping masks (default: paint them in score order)')
    parser.add_argument('--batch-size', type=int, default=2,
                        help='images per teacher forward, per process')
    parser.add_argument('--num-workers', type=int, default=0)
    parser.add_argument('--vis-num', type=int, default=4,
                        help='overlay images to save (0: none)')
    parser.add_argument(
        '--flip-tta', action='store_true',
        help='label every image and its mirror image, fused by mask voting '
        '(an instance only one view finds keeps half its score)')
    parser.add_argument('--force', action='store_true',
                        help='relabel even if --out is up to date')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override teacher config settings, key=value (mmengine '
        'DictAction syntax)')
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def _fail(message: str) -> None:
    print(f'error: {message}', file=sys.stderr)
    sys.exit(2)


def split_of(path: str) -> Optional[str]:
    """The split an annotation file or folder is named after, if any."""
    found = SPLIT.findall(osp.basename(osp.normpath(path)).lower())
    return ''.join(found[-1]) if found else None


def _datasets(node) -> Iterator[dict]:
    """Every dataset config (a dict with ``ann_file`` and ``data_prefix``)."""
    if isinstance(node, dict):
        if 'ann_file' in node and 'data_prefix' in node and \
                node.get('type') != 'PseudoLabeledDataset':
            yield node
        for value in node.values():
            yield from _datasets(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _datasets(value)


def default_img_prefix(cfg, ann_file: str, data_root: str,
                       test_prefix: str) -> Tuple[str, str]:
    """The image folder of ``ann_file`` by the teacher config, and why.

    Args:
        cfg (Config): The teacher config.
        ann_file (str): The unlabeled annotation file as given.
        data_root (str): The data root it is relative to.
        test_prefix (str): The test dataset's image folder.

    Returns:
        tuple[str, str]: The folder (relative to ``data_root``, as
        ``data_prefix.img``) and where it comes from.
    """
    wanted = osp.normpath(osp.join(data_root, ann_file))
    loaders = [cfg.get(k) for k in ('train_dataloader', 'val_dataloader',
                                    'test_dataloader')]
    candidates = list(_datasets(loaders + [cfg.get('custom_hooks')]))
    for ds in candidates:
        path = osp.join(ds.get('data_root') or data_root, ds['ann_file'])
        if osp.normpath(path) == wanted and \
                (ds.get('data_root') or data_root) == data_root:
            return ds['data_prefix']['img'], f'the dataset reading {ann_file}'
    split = split_of(ann_file)
    if split is None:
        return test_prefix, 'the test dataset (no split in the file name)'
    for ds in candidates:
        if split_of(ds['ann_file']) == split and \
                (ds.get('data_root') or data_root) == data_root:
            return ds['data_prefix']['img'], f'the config\'s {split} dataset'
    test_split = split_of(test_prefix)
    if test_split is not None:
        prefix = re.sub(rf'(?<![a-z]){test_split}(?![a-z0-9])', split,
                        test_prefix)
        return prefix, f'the test folder with {test_split} -> {split}'
    return test_prefix, 'the test dataset'


def _dataset_cfg(cfg, args) -> dict:
    test_loader = cfg.get('test_dataloader') or cfg.get('val_dataloader')
    base = copy.deepcopy(test_loader['dataset']) if test_loader else {}
    if base.get('type') in ('ConcatDataset', 'RepeatDataset',
                            'ClassBalancedDataset'):
        _fail('the teacher config\'s test dataset is a wrapper; give '
              '--dataset-type and a plain test_dataloader.dataset')
    ds = {
        k: v
        for k, v in base.items()
        if k not in ('ann_file', 'filter_cfg', 'indices', 'test_mode')
    }
    if args.dataset_type:
        ds['type'] = args.dataset_type
    ds.setdefault('type', 'CocoDataset')
    if args.data_root is not None:
        ds['data_root'] = args.data_root
    if args.img_prefix is not None:
        ds['data_prefix'] = dict(img=args.img_prefix)
    else:
        prefix, why = default_img_prefix(
            cfg, args.unlabeled_ann, ds.get('data_root', ''),
            ds.get('data_prefix', {}).get('img', ''))
        print(f'image folder: {prefix} ({why}; --img-prefix to change)')
        ds['data_prefix'] = dict(img=prefix)
    ann = args.unlabeled_ann
    ds['ann_file'] = osp.abspath(ann) if osp.exists(ann) else ann
    pipeline = [
        t for t in base.get('pipeline', [])
        if t.get('type') not in ANNOTATION_TRANSFORMS
    ]
    if not pipeline:
        _fail('the teacher config has no test_dataloader.dataset.pipeline')
    ds['pipeline'] = pipeline
    ds['test_mode'] = True
    return ds


def init_processes(launcher: str) -> None:
    """The process group of a multi-process run (nccl on GPUs, gloo on
    CPUs, where MMEngine's ``pytorch`` launcher needs mmcast's)."""
    import torch
    from mmengine.dist import init_dist

    from mmcast.utils import allow_cpu_pytorch_launcher
    if launcher == 'none':
        return
    if not torch.cuda.is_available():
        allow_cpu_pytorch_launcher()
    init_dist(launcher,
              backend='nccl' if torch.cuda.is_available() else 'gloo')


def main(argv=None) -> int:
    args = parse_args(argv)
    # fail before the slow imports on the mistakes that are easy to make
    if '://' not in args.checkpoint and not osp.isfile(args.checkpoint):
        _fail(f'teacher checkpoint not found: {args.checkpoint}')
    if not osp.isfile(args.config):
        _fail(f'teacher config not found: {args.config}')

    import torch
    from mmengine.config import Config
    from mmengine.dist import get_dist_info
    from mmengine.registry import init_default_scope
    from mmengine.utils import import_modules_from_strings

    from mmdet.utils import register_all_modules
    from mmcast.models.teachers.labeling_teacher import LabelingTeacher
    from mmcast.pseudo_labels import (LabelingSettings, OfflineLabelingJob,
                                      UnreadableImagesError,
                                      build_labeling_dataset, read_header,
                                      save_pseudo_label_overlays)
    from mmcast.utils.checkpoint_loading import CheckpointError

    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg['custom_imports'])
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    init_processes(args.launcher)
    try:
        settings = LabelingSettings(
            dict(score_thr=args.score_thr, max_per_image=args.max_per_image,
                 mask_thr=args.mask_thr, min_area=args.min_area,
                 non_overlapping=not args.allow_overlap),
            batch_size=args.batch_size, num_workers=args.num_workers,
            max_unreadable=args.max_unreadable)
    except ValueError as e:
        _fail(str(e))
    out_file = osp.abspath(args.out)
    dataset = build_labeling_dataset(_dataset_cfg(cfg, args))
    teacher = LabelingTeacher.of_files(
        args.config, args.checkpoint,
        'cuda' if torch.cuda.is_available() else 'cpu', dataset.metainfo,
        model_cfg=cfg.model, test_time_flip=args.flip_tta)
    job = OfflineLabelingJob(teacher, dataset, out_file, settings,
                             force=args.force, name='pseudo_label')
    try:
        outcome = job.run()
    except (CheckpointError, UnreadableImagesError) as e:
        _fail(str(e))
    if get_dist_info()[0] != 0:
        return 0
    if not outcome['relabeled']:
        print('use --force to relabel it all the same')
        return 0
    final = job.result['header'] or read_header(out_file)
    print(f'pseudo-labels: {out_file}\n'
          f'  images {final["num_images"]}, instances '
          f'{final["num_instances"]}, skipped {final["num_skipped"]}, '
          f'{job.result["images_per_s"]:.2f} img/s on rank 0')
    if args.vis_num > 0:
        meta = dataset.metainfo
        written = save_pseudo_label_overlays(
            out_file, dataset.data_prefix.get('img', ''),
            osp.join(osp.dirname(out_file), 'pseudo_label_vis'),
            num_images=args.vis_num,
            classes=list(meta.get('classes', [])) or None,
            palette=meta.get('palette'))
        if written:
            print(f'  overlays: {osp.dirname(written[0])}/ '
                  f'({len(written)} images)')
    return 0


if __name__ == '__main__':
    sys.exit(main())

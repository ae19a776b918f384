# Copyright (c) mmcast contributors. All rights reserved.
"""Pseudo-label an unlabeled set with a teacher, offline.

Writes a COCO json (RLE masks with scores, header in ``info``) that
``PseudoLabeledDataset``, ``CocoDataset`` and ``browse_dataset`` read, and
overlays of the first images in ``<out dir>/pseudo_label_vis/``. A run
killed or stopped (Ctrl-C, SIGTERM: exit 130, 143, saying the images kept)
resumes where it stopped; an up-to-date output is not redone (``--force``).

Examples (the second in 2 processes: gloo on CPU, nccl on GPUs)::

    python tools/pseudo_label.py configs/teacher.py work_dirs/teacher.pth \\
        --unlabeled-ann data/cityscapes/annotations/semi/unlabeled@10.json \\
        --data-root data/cityscapes/ --img-prefix leftImg8bit/train/ \\
        --out work_dirs/pseudo/cityscapes_u10.json
    torchrun --nproc_per_node=2 tools/pseudo_label.py ... --launcher pytorch

The test pipeline, metainfo and (without ``--img-prefix``) image folder
come from the teacher config (``mmcast.pseudo_labels.unlabeled_set_cfg``).
With more than ``--max-unreadable`` of the images unreadable the tool
stops, naming the folder and the first such file, and writes nothing.
"""
import argparse
import os.path as osp
import sys

from mmengine.config import DictAction


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Pseudo-label an unlabeled COCO-format set with a '
        'teacher detector (offline, resumable, multi-process)')
    parser.add_argument('config', help='teacher config file')
    parser.add_argument('checkpoint', help='teacher checkpoint file')
    parser.add_argument('--unlabeled-ann', required=True, help='COCO json '
                        'of the unlabeled images (a path; if it does not '
                        'exist as given it is taken relative to --data-root)')
    parser.add_argument('--out', required=True, help='output COCO json')
    parser.add_argument('--data-root', default=None,
                        help='dataset root (default: the teacher config\'s)')
    parser.add_argument(
        '--img-prefix', default=None,
        help='image folder under --data-root, e.g. leftImg8bit/train/ '
        '(default: the folder of the config\'s dataset that reads '
        '--unlabeled-ann, or of its split)')
    parser.add_argument('--max-unreadable', type=float, default=0.05,
                        help='fraction of images that may be missing or '
                        'undecodable (skipped and counted); above it the '
                        'tool stops and writes nothing')
    parser.add_argument('--dataset-type', default=None,
                        help='dataset class (default: the teacher config\'s)')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='keep instances with score > this')
    parser.add_argument('--max-per-image', type=int, default=100)
    parser.add_argument('--mask-thr', type=float, default=0.5,
                        help='binarise float masks at this value')
    parser.add_argument('--min-area', type=int, default=1,
                        help='drop masks with fewer pixels after painting')
    parser.add_argument('--allow-overlap', action='store_true', help='keep '
                        'overlapping masks (default: paint in score order)')
    parser.add_argument('--batch-size', type=int, default=2,
                        help='images per teacher forward, per process')
    parser.add_argument('--num-workers', type=int, default=0)
    parser.add_argument('--vis-num', type=int, default=4,
                        help='overlay images to save (0: none)')
    parser.add_argument('--flip-tta', action='store_true', help='label every '
                        'image and its mirror image, fused by mask voting (an '
                        'instance only one view finds keeps half its score)')
    parser.add_argument('--force', action='store_true',
                        help='relabel even if --out is up to date')
    parser.add_argument('--launcher', default='none', help='job launcher',
                        choices=['none', 'pytorch', 'slurm', 'mpi'])
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override teacher config settings, key=value '
                        '(mmengine DictAction syntax)')
    return parser.parse_args(argv)


def _fail(message: str) -> None:
    print(f'error: {message}', file=sys.stderr)
    sys.exit(2)


def main(argv=None) -> int:
    args = parse_args(argv)
    # fail before the slow imports on the mistakes that are easy to make
    if '://' not in args.checkpoint and not osp.isfile(args.checkpoint):
        _fail(f'teacher checkpoint not found: {args.checkpoint}')
    if not osp.isfile(args.config):
        _fail(f'teacher config not found: {args.config}')
    try:
        from mmcast.pseudo_labels import labeling_interrupts
    except KeyboardInterrupt:  # Ctrl-C in the imports: nothing began
        print('interrupted before labelling began; run the same command to '
              'start it', file=sys.stderr)
        return 130
    with labeling_interrupts.LabelingInterrupts() as stop:
        return label(args, stop)
    return stop.status


def label(args, stop) -> int:
    import torch

    from mmcast.models.teachers.labeling_teacher import LabelingTeacher
    from mmcast.pseudo_labels import (
        LabelingSettings, OfflineLabelingJob, UnreadableImagesError,
        build_labeling_dataset, unlabeled_set_cfg)
    from mmcast.utils.checkpoint_loading import CheckpointError
    from mmcast.utils.config_reading import read_config
    from mmcast.utils.cpu_distributed import init_processes

    cfg = read_config(args.config, args.cfg_options)
    init_processes(args.launcher, args.local_rank)
    try:
        settings = LabelingSettings(
            dict(score_thr=args.score_thr, max_per_image=args.max_per_image,
                 mask_thr=args.mask_thr, min_area=args.min_area,
                 non_overlapping=not args.allow_overlap),
            batch_size=args.batch_size, num_workers=args.num_workers,
            max_unreadable=args.max_unreadable)
        dataset_cfg, why = unlabeled_set_cfg(
            cfg, args.unlabeled_ann, args.data_root, args.img_prefix,
            args.dataset_type)
    except ValueError as e:
        _fail(str(e))
    if why is not None:
        print(f'image folder: {dataset_cfg["data_prefix"]["img"]} ({why}; '
              '--img-prefix to change)')
    dataset = build_labeling_dataset(dataset_cfg)
    teacher = LabelingTeacher.of_files(
        args.config, args.checkpoint,
        'cuda' if torch.cuda.is_available() else 'cpu', dataset.metainfo,
        model_cfg=cfg.model, test_time_flip=args.flip_tta)
    stop.job = job = OfflineLabelingJob(
        teacher, dataset, osp.abspath(args.out), settings, force=args.force,
        name='pseudo_label')
    try:
        outcome = job.run()
    except (CheckpointError, UnreadableImagesError) as e:
        _fail(str(e))
    for line in job.report(outcome, args.vis_num):  # rank 0's
        print(line, flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())

# Copyright (c) mmcast contributors. All rights reserved.
"""Teacher throughput: pseudo-labelling vs plain inference, in images/s.

Runs the same teacher twice over the same images:

1. plain inference, what ``mim test`` does without a metric: a DataLoader
   over the teacher config's test pipeline and ``model.test_step`` per
   batch;
2. offline pseudo-labelling with :func:`mmcast.pseudo_labels.
   label_unlabeled_set` (the engine of ``tools/pseudo_label.py``: the same
   forward plus filtering, mask painting, RLE encoding and the resumable
   json shards), into a temporary output.

and prints both rates and their ratio (pseudo-labelling / plain; 1.0 means
the labelling overhead is free).

Examples::

    # toy teacher (tiny Grounding-DINO + tiny SAM 2) on the toy data
    python -m mmcast.toy.tiny_teachers --out work_dirs/tiny_teachers
    python tools/benchmark/teacher_throughput.py \\
        configs/mmcast/toy/teacher_gdino-tiny_sam2-tiny_toy.py \\
        work_dirs/tiny_teachers/teacher_gdino-tiny_sam2-tiny.pth \\
        --unlabeled-ann data/toy/annotations/instancesonly_filtered_gtFine_train.json \\
        --data-root data/toy/ --img-prefix leftImg8bit/train/ --num-images 20
    # the paper's teacher on Cityscapes (GPU)
    python tools/benchmark/teacher_throughput.py \\
        configs/mmcast/teachers/grounding_dino_sam2_cityscapes.py \\
        checkpoints/grounding_dino_swin-l_pretrain_all-56d69e78.pth \\
        --unlabeled-ann data/cityscapes/semi_anns/\\
instancesonly_filtered_gtFine_train.1@10-unlabeled.json \\
        --data-root data/cityscapes/ --img-prefix leftImg8bit/train/ \\
        --num-images 100 --batch-size 2
"""
import argparse
import copy
import json
import os.path as osp
import sys
import tempfile
import time

from mmengine.config import DictAction

ANNOTATION_TRANSFORMS = ('LoadAnnotations', 'LoadPanopticAnnotations',
                         'LoadTextAnnotations')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Teacher throughput: pseudo-labelling vs plain '
        'inference (images/s)')
    parser.add_argument('config', help='teacher config file')
    parser.add_argument(
        'checkpoint', help='teacher checkpoint ("none": as built)')
    parser.add_argument('--unlabeled-ann', required=True,
                        help='COCO json of the images to run on')
    parser.add_argument('--data-root', default=None)
    parser.add_argument('--img-prefix', default=None)
    parser.add_argument('--num-images', type=int, default=50,
                        help='images timed (the first N of the json)')
    parser.add_argument('--warmup', type=int, default=2,
                        help='untimed batches before the plain run')
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument('--num-workers', type=int, default=0)
    parser.add_argument('--device', default=None,
                        help='cuda / cpu (default: cuda if available)')
    parser.add_argument('--skip-pseudo-label', action='store_true',
                        help='time the plain inference only')
    parser.add_argument('--json-out', default=None,
                        help='also write the numbers to this json file')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override teacher config settings, key=value')
    return parser.parse_args(argv)


def dataset_cfg(cfg, args) -> dict:
    """The teacher config's test dataset on the given images."""
    loader = cfg.get('test_dataloader') or cfg.get('val_dataloader')
    if not loader:
        raise SystemExit('error: the teacher config has no test_dataloader')
    base = copy.deepcopy(loader['dataset'])
    ds = {
        k: v
        for k, v in base.items()
        if k not in ('ann_file', 'filter_cfg', 'indices', 'test_mode')
    }
    ds.setdefault('type', 'CocoDataset')
    if args.data_root is not None:
        ds['data_root'] = args.data_root
    if args.img_prefix is not None:
        ds['data_prefix'] = dict(img=args.img_prefix)
    ann = args.unlabeled_ann
    ds['ann_file'] = osp.abspath(ann) if osp.exists(ann) else ann
    ds['pipeline'] = [
        t for t in base.get('pipeline', [])
        if t.get('type') not in ANNOTATION_TRANSFORMS
    ]
    ds['test_mode'] = True
    ds['indices'] = args.num_images
    return ds


def _sync(device: str) -> None:
    import torch
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def time_plain_inference(model, dataset, args, device: str) -> dict:
    """``mim test`` without a metric: DataLoader + ``model.test_step``."""
    import torch
    from mmengine.dataset import pseudo_collate
    from torch.utils.data import DataLoader

    loader = DataLoader(
        dataset,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        shuffle=False,
        collate_fn=pseudo_collate)
    with torch.no_grad():
        for i, batch in enumerate(loader):  # warm-up
            if i >= args.warmup:
                break
            model.test_step(batch)
        _sync(device)
        num = 0
        start = time.perf_counter()
        for batch in loader:
            outs = model.test_step(batch)
            num += len(outs)
        _sync(device)
        elapsed = time.perf_counter() - start
    return dict(images=num, seconds=elapsed, images_per_s=num / elapsed)


def time_pseudo_labelling(model, dataset, args, device: str) -> dict:
    """``tools/pseudo_label.py``'s engine (the default filter) into a
    throw-away output."""
    from mmcast.models.teachers.labeling_teacher import LabelingTeacher
    from mmcast.pseudo_labels import DEFAULT_FILTER_CFG, label_unlabeled_set
    with tempfile.TemporaryDirectory() as tmp, LabelingTeacher(
            model).labeling(DEFAULT_FILTER_CFG['score_thr']) as teacher:
        out_file = osp.join(tmp, 'pseudo.json')
        _sync(device)
        start = time.perf_counter()
        result = label_unlabeled_set(
            teacher,
            dataset,
            out_file,
            batch_size=args.batch_size,
            num_workers=args.num_workers,
            rank=0,
            world_size=1,
            progress=False)
        _sync(device)
        elapsed = time.perf_counter() - start
        with open(out_file, encoding='utf-8') as f:
            num_anns = len(json.load(f).get('annotations', []))
    num = result.get('num_processed', len(dataset))
    return dict(images=num, seconds=elapsed, images_per_s=num / elapsed,
                pseudo_labels=num_anns,
                reported_images_per_s=result.get('images_per_s'))


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.checkpoint != 'none' and not osp.isfile(args.checkpoint):
        print(f'error: checkpoint not found: {args.checkpoint}',
              file=sys.stderr)
        return 2

    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.utils import import_modules_from_strings

    import mmcast  # noqa: F401
    from mmcast.models.teachers import build_frozen_teacher
    from mmdet.registry import DATASETS
    from mmdet.utils import register_all_modules

    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg['custom_imports'])
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')

    # as tools/pseudo_label.py: a stage-1b (CASTDistiller) checkpoint is
    # read as its student's weights
    model = build_frozen_teacher(
        cfg.model, None if args.checkpoint == 'none' else args.checkpoint)
    model = model.to(device)

    dataset = DATASETS.build(dataset_cfg(cfg, args))
    plain = time_plain_inference(model, dataset, args, device)
    report = dict(
        config=args.config, checkpoint=args.checkpoint, device=device,
        batch_size=args.batch_size, plain=plain)
    print(f'plain inference (test_step):  {plain["images"]} images in '
          f'{plain["seconds"]:.2f} s = {plain["images_per_s"]:.3f} images/s')
    if not args.skip_pseudo_label:
        pseudo = time_pseudo_labelling(model, dataset, args, device)
        report['pseudo_label'] = pseudo
        report['ratio'] = pseudo['images_per_s'] / plain['images_per_s']
        print(f'pseudo-labelling:             {pseudo["images"]} images in '
              f'{pseudo["seconds"]:.2f} s = {pseudo["images_per_s"]:.3f} '
              f'images/s ({pseudo["pseudo_labels"]} pseudo-labels)')
        print(f'ratio pseudo-labelling / plain: {report["ratio"]:.3f}')
    if args.json_out:
        with open(args.json_out, 'w', encoding='utf-8') as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C: one line, exit 130
        print('interrupted: nothing measured is kept (the figures come at the '
              'end); run the same command to measure again',
              file=sys.stderr)
        sys.exit(130)

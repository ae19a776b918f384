# Copyright (c) mmcast contributors. All rights reserved.
"""Stage 2 under ``torchrun --nproc_per_node=2`` (gloo on CPU)."""
import json
import os
import os.path as osp
import subprocess
import sys

import mmdet
import torch

import mmcast  # noqa: F401  (MMEngine checkpoints load with weights_only)


def test_distill_stage_runs_on_two_processes(repo_root, toy_data_root, tmp_path):
    root = toy_data_root.rstrip('/') + '/'
    work_dir = str(tmp_path)
    pseudo = osp.join(work_dir, 'pseudo.json')
    unlabeled = 'annotations/semi/instancesonly_filtered_gtFine_train.1@25-unlabeled.json'
    train_py = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', 'train.py')
    options = [
        'model.teacher_checkpoint=None', 'train_cfg.max_iters=2',
        'train_cfg.val_interval=2', 'param_scheduler.end=2',
        'default_hooks.logger.interval=1', 'model.student.train_cfg.num_points=256',
        'train_dataloader.batch_size=2', 'train_dataloader.sampler.batch_size=2',
        f'train_dataloader.dataset.datasets.0.data_root={root}',
        'train_dataloader.dataset.datasets.0.ann_file='
        'annotations/semi/instancesonly_filtered_gtFine_train.1@25.json',
        f'train_dataloader.dataset.datasets.1.unlabeled_ann_file={root}{unlabeled}',
        f'train_dataloader.dataset.datasets.1.data_prefix.img={root}leftImg8bit/train/',
        f'train_dataloader.dataset.datasets.1.ann_file={pseudo}',
        f'custom_hooks.0.out_file={pseudo}',
        f'custom_hooks.0.unlabeled_dataset.data_root={root}',
        f'custom_hooks.0.unlabeled_dataset.ann_file={unlabeled}',
        f'custom_hooks.0.quality_dataset.data_root={root}',
        'custom_hooks.0.quality_dataset.ann_file='
        'annotations/semi/instancesonly_filtered_gtFine_train.1@25.json',
        # L_pxl draws its negatives from the global batch of 4 images
        'model.student.panoptic_head.loss_pixel_contrast.negatives_from=global',
        'model.student.panoptic_head.loss_pixel_contrast.draw=rejection',
        'model.student.panoptic_head.loss_pixel_contrast.num_negatives=4',
        f'val_dataloader.dataset.data_root={root}',
        f'val_evaluator.0.ann_file={root}annotations/instancesonly_filtered_gtFine_val.json',
        f'val_evaluator.1.seg_prefix={root}gtFine/val',
        f'val_evaluator.1.outfile_prefix={work_dir}/cityscapes_metric',
    ]
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore',
               MMCAST_CPU_DIST='1')  # the pytorch launcher on CPU
    proc = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--standalone',
         '--nproc_per_node=2',
         train_py, 'configs/mmcast/distill_toy.py', '--launcher', 'pytorch',
         '--work-dir', work_dir, '--cfg-options'] + options,
        cwd=repo_root, capture_output=True, text=True, env=env)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    # the pseudo-labelling was sharded: rank 0 did half of the 6 images
    assert 'pseudo-labeling rank 0: 3 images' in log
    with open(pseudo) as f:
        images = [img['id'] for img in json.load(f)['images']]
    assert len(images) == len(set(images)) == 6
    ckpt = torch.load(osp.join(work_dir, "iter_2.pth"), weights_only=True,
                      map_location='cpu')
    assert ckpt['meta']['iter'] == 2
    # each rank's random states, gathered where the checkpoint was due
    ranks = ckpt['random_states']
    assert len(ranks) == 2 and all(
        set(states) >= {'python', 'numpy', 'torch'} for states in ranks)
    assert all(k.startswith('student.') for k in ckpt['state_dict']
               if k != '_extra_state')
    assert 'coco/segm_mAP' in log
    assert 'loss_pxl' in log

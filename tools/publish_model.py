# Copyright (c) mmcast contributors. All rights reserved.
"""Publish the deployable model of any mmcast stage checkpoint.

Writes ``<OUT_DIR>/<NAME>-<sha8>.pth`` (the stock MMDetection
``Mask2Former`` that ``mim test`` of the stage config evaluates, loadable
without mmcast) and ``<OUT_DIR>/<NAME>.py`` (its plain MMDetection config),
both atomically (see :mod:`mmcast.deploy.publish`). Evaluate or run them
with stock MMDetection::

    python tools/publish_model.py work_dirs/finetune_toy/finetune_toy.py \
        work_dirs/finetune_toy/iter_400.pth checkpoints --name cast_r18_toy
    mim test mmdet checkpoints/cast_r18_toy.py \
        --checkpoint checkpoints/cast_r18_toy-1a2b3c4d.pth
"""
import argparse

from mmengine.config import DictAction
from mmengine.logging import print_log

from mmcast.deploy.metadata import DeployError
from mmcast.deploy.publish import PublishError, publish
from mmcast.utils.checkpoint_loading import CheckpointError


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Keep the deployable student of a stage checkpoint as '
        'a stock MMDetection Mask2Former (weights + config)')
    parser.add_argument('config', help='the stage config it was trained with')
    parser.add_argument('checkpoint', help='the stage checkpoint')
    parser.add_argument('out_dir', help='folder for <name>-<sha8>.pth and '
                        '<name>.py')
    parser.add_argument(
        '--name', help='name of the published model (default: the config '
        'file name without .py)')
    parser.add_argument(
        '--fp16', action='store_true',
        help='store floating-point weights as float16 (half the size)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the stage config, as in mim test')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    try:
        out = publish(args.config, args.checkpoint, args.out_dir, args.name,
                      args.fp16, args.cfg_options)
    except (CheckpointError, DeployError, PublishError,
            FileNotFoundError) as e:
        raise SystemExit(f'publish_model: {e}')
    print_log(f'published model: {out["checkpoint"]}', logger='current')
    print_log(f'its config:      {out["config"]}', logger='current')
    print_log(f'capacity: up to {out["capacity"]} instances per image '
              f'({out["num_queries"]} queries, test_cfg.max_per_image='
              f'{out["max_per_image"]}; in the checkpoint\'s meta)',
              logger='current')
    print(f'sha256: {out["sha256"]}')


if __name__ == '__main__':
    main()

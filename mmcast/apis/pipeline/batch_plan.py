# Copyright (c) mmcast contributors. All rights reserved.
"""Each training stage's global batch and lr from the run's GPU count.

The global batch of a stage is GPUs (``--nproc`` × ``--nnodes``) × images
per GPU (``--batch-per-gpu``, default the config's). Its lr follows from
the recipe's lr at the recipe's global batch
(``auto_scale_lr.base_batch_size``; a config without one is a recipe for
its own batch on one GPU) by mmcast's one rule, the square-root rule of
:mod:`mmcast.engine.batch_scaling`; the iterations stay. The pipeline
passes the lr (and the batch) as options, so a stage's dumped config says
what it trained with, and prints, before the stages start, every stage's
global batch, lr, iterations and epochs. A semi-supervised stage with a
source that gets no image per GPU is a preflight problem.
"""
import math
import os.path as osp
import re
from typing import Dict, List, Optional, Tuple

from mmcast.engine.batch_scaling import (LR_RULE, scaled_lr,
                                         semi_batch_problem, source_slots)
from .config_inputs import dataset_inputs
from .config_loader import ConfigLoader
from .overrides import Overrides
from .run_spec import RunSpec
from .stage import Stage, StageBatch

LR_KEY = 'optim_wrapper.optimizer.lr'


def listed_images(split_file: str) -> Optional[int]:
    """The labeled images of a split file made from a published list
    (``...1@perc_10.json``: the lines of ``cityscapes/perc_10``) before the
    file is written; ``None`` for other files."""
    from mmcast.datasets.semi_split import (published_split_file,
                                            published_split_names)
    found = re.search(r'\.\d+@([A-Za-z_][\w.]*)\.json$', split_file)
    names = [n for n in published_split_names()
             if found and n.endswith('/' + found.group(1))]
    if not names:
        return None
    with open(published_split_file(names[0]), encoding='utf-8') as f:
        return sum(1 for line in f if line.strip())


def stage_batch(spec: RunSpec, loader: ConfigLoader, config: str,
                overrides: Overrides) -> Tuple[StageBatch, Overrides]:
    """The batch and lr a training stage of ``config`` with ``overrides``
    runs with, and the overrides that give it its images per GPU and scaled
    lr (none where they are the config's)."""
    cfg = loader.merged(config, overrides)
    train_loader = cfg.train_dataloader
    sampler = train_loader.get('sampler') or {}
    own = train_loader.batch_size
    per_gpu = spec.batch_per_gpu or own
    gpus = spec.launch.nproc * spec.launch.nnodes
    scale = cfg.get('auto_scale_lr') or {}
    recipe_batch = scale.get('base_batch_size') or own
    recipe_lr = cfg.optim_wrapper.optimizer.lr  # or the one given
    lr_given = LR_KEY in overrides
    lr = recipe_lr if lr_given else scaled_lr(recipe_lr, gpus * per_gpu,
                                              recipe_batch)
    ratio = sampler.get('source_ratio') if sampler.get(
        'type') == 'MultiSourceSampler' else None
    options = []
    if per_gpu != own:
        options.append(('train_dataloader.batch_size', per_gpu))
    if 'batch_size' in sampler and sampler['batch_size'] != per_gpu:
        options.append(('train_dataloader.sampler.batch_size', per_gpu))
    if not math.isclose(lr, recipe_lr, rel_tol=1e-9):
        options.append((LR_KEY, float(f'{lr:.6g}')))
    if scale.get('enable'):  # the lr above is already the scaled one
        options.append(('auto_scale_lr.enable', False))
    batch = StageBatch(
        gpus=gpus, per_gpu=per_gpu,
        slots=source_slots(per_gpu, ratio) if ratio else [per_gpu],
        lr=lr, recipe_lr=recipe_lr, recipe_batch=recipe_batch,
        lr_given=lr_given, source_files=_source_files(train_loader),
        problem=semi_batch_problem(per_gpu, ratio) if ratio else None)
    return batch, Overrides.of(options)


def _source_files(train_loader) -> List[str]:
    """The annotation file of each source of a train dataloader (of the
    ``ConcatDataset``'s datasets, in order), in the repository."""
    dataset = train_loader.dataset
    sources = dataset.get('datasets') or [dataset]
    files = []
    for source in sources:
        found = [ann for ann, _ in dataset_inputs(source)]
        files.append(ConfigLoader.in_repo(found[0]) if found else '')
    return files


def batch_problems(stages: List[Stage]) -> List[str]:
    """Preflight problems: the stages whose batch leaves a source without an
    image."""
    return [f'{st.label} ({st.config}): {st.batch.problem}'
            for st in stages if st.batch is not None and st.batch.problem]


def print_batches(stages: List[Stage], image_counts: Dict[str, int]) -> None:
    """Before the stages start: the global batch, lr, iterations and epochs
    of every training stage (the first seed's; the others' are alike);
    ``image_counts``: the images of each annotation file the preflight
    read."""
    seeds = sorted({st.seed for st in stages if st.seed is not None})
    shown = [st for st in stages if st.batch is not None and
             st.seed in (None, seeds[0] if seeds else None)]
    if not shown:
        return
    gpus = shown[0].batch.gpus
    counts = dict(image_counts)
    for stage in shown:
        for path in stage.batch.source_files:
            if path and osp.abspath(path) not in counts:
                listed = listed_images(path)
                if listed:
                    counts[osp.abspath(path)] = listed
    print(f'batch and lr ({gpus} GPU(s); each recipe\'s lr scaled to the '
          f'global batch by the {LR_RULE} rule, iterations as the recipe '
          'defines):', flush=True)
    for stage in shown:
        print(f'  {stage.label} ' +
              stage.batch.describe(stage.max_iters, counts), flush=True)

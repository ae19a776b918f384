# Copyright (c) mmcast contributors. All rights reserved.
"""The pipeline addresses the parts of a stage config it sets by type.

Every shipped stage config with pseudo-labels gets its pseudo-label file in
its ``PseudoLabeledDataset`` and ``PseudoLabelHook``, and its results files in
its ``CocoMetric`` / ``CityScapesMetric``; with the config's hooks, datasets
and evaluators reordered, ``tools/cast_pipeline.py``'s plan still sets those
parts and nothing else. A config without the part (or with two) is refused
with its file name.
"""
import copy
import glob
import os.path as osp

import pytest
from mmengine.config import Config, DictAction

from conftest import REPO_ROOT, is_config_alias, pipeline_of
from mmcast.apis import (ConfigHandoffError, config_value, evaluator_options,
                         find_item, pseudo_label_options)
from mmcast.apis.pipeline.launchers import cfg_options_args


def _pseudo_label_configs() -> dict:
    """Every shipped config whose hooks label D_u, loaded once."""
    configs = {}
    for path in sorted(glob.glob(osp.join(REPO_ROOT, 'configs', 'mmcast',
                                          '**', '*.py'), recursive=True)):
        if '_base_' in path or is_config_alias(path):
            continue  # an alias loads as its target, checked once
        cfg = Config.fromfile(path)
        if any(h.get('type') == 'PseudoLabelHook'
               for h in cfg.get('custom_hooks', [])):
            configs[osp.relpath(path, REPO_ROOT)] = cfg
    return configs


def _merge(cfg: Config, options) -> Config:
    """``cfg`` with ``--cfg-options`` as mim train parses them."""
    action = DictAction(option_strings=['--cfg-options'], dest='cfg_options')

    class Namespace:
        pass

    ns = Namespace()
    action(None, ns, list(options))
    merged = copy.deepcopy(cfg)
    merged.merge_from_dict(ns.cfg_options)
    return merged


def _of_type(items, type_name):
    return [i for i in items if i['type'] == type_name]


def _reordered(cfg: Config) -> Config:
    """The config with its datasets, hooks and evaluators reversed."""
    cfg = copy.deepcopy(cfg)
    cfg.train_dataloader.dataset.datasets = \
        cfg.train_dataloader.dataset.datasets[::-1]
    cfg.custom_hooks = cfg.custom_hooks[::-1]
    for mode in ('val', 'test'):
        if isinstance(cfg[f'{mode}_evaluator'], list):
            cfg[f'{mode}_evaluator'] = cfg[f'{mode}_evaluator'][::-1]
    return cfg


def test_every_pseudo_label_config_gets_its_file():
    configs = _pseudo_label_configs()
    assert len(configs) >= 10
    for path, cfg in configs.items():
        for variant in (cfg, _reordered(cfg)):
            merged = _merge(variant, cfg_options_args(
                pseudo_label_options(variant, '/x.json')))
            (dataset, ) = _of_type(merged.train_dataloader.dataset.datasets,
                                   'PseudoLabeledDataset')
            (hook, ) = _of_type(merged.custom_hooks, 'PseudoLabelHook')
            assert dataset.ann_file == hook.out_file == '/x.json', path
            others = [d for d in merged.train_dataloader.dataset.datasets
                      if d['type'] != 'PseudoLabeledDataset']
            assert all(d.get('ann_file') != '/x.json' for d in others)


def test_evaluators_found_in_any_order():
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs/mmcast/distill_toy.py'))
    for variant in (cfg, _reordered(cfg)):
        merged = _merge(variant, cfg_options_args(
            evaluator_options(variant, '/c', '/cs')))
        for mode in ('val', 'test'):
            evaluators = merged[f'{mode}_evaluator']
            assert _of_type(evaluators, 'CocoMetric')[0].outfile_prefix == \
                '/c'
            assert _of_type(evaluators, 'CityScapesMetric')[0] \
                .outfile_prefix == '/cs'
    custom = Config.fromfile(osp.join(
        REPO_ROOT, 'configs/mmcast/custom/distill_custom-cpu.py'))
    merged = _merge(custom, cfg_options_args(
        evaluator_options(custom, '/c', '/cs')))
    assert merged.val_evaluator.type == 'CocoMetric'  # a single metric
    assert merged.val_evaluator.outfile_prefix == '/c'


def test_missing_or_ambiguous_parts_are_named(tmp_path):
    cfg = Config.fromfile(osp.join(REPO_ROOT,
                                   'configs/mmcast/finetune_toy.py'))
    with pytest.raises(ConfigHandoffError, match='finetune_toy.py.*'
                       'PseudoLabeledDataset'):
        pseudo_label_options(cfg, '/x.json')
    distill = Config.fromfile(osp.join(REPO_ROOT,
                                       'configs/mmcast/distill_toy.py'))
    distill.custom_hooks = distill.custom_hooks * 2
    with pytest.raises(ConfigHandoffError, match='2 PseudoLabelHook'):
        find_item(distill, 'custom_hooks', 'PseudoLabelHook')
    assert config_value(distill, 'custom_hooks.1.type') == \
        distill.custom_hooks[1]['type']
    assert config_value(distill, 'custom_hooks.9.type') is None


def test_pipeline_plan_targets_reordered_configs(tmp_path, monkeypatch):
    """The toy plan of seed 0 with every stage config reordered: stages 1b
    and 2 set their own PseudoLabeledDataset / PseudoLabelHook, Guided
    Distillation its GuidedTeacherHook."""
    pipeline = pipeline_of('toy', '--work-dir', str(tmp_path), '--seeds',
                           '0', '--methods', 'cast', 'gd')
    load = pipeline.loader.read

    def reordered(path):
        cfg = load(path)
        if 'datasets' in cfg.train_dataloader.dataset:
            cfg = _reordered(cfg)
        return cfg

    monkeypatch.setattr(pipeline.loader, 'read', reordered)
    plan = pipeline.plan()
    stages = {s.key: s for s in plan.per_seed[0]}
    for key in ('adapt_teacher_selftrain', 'distill'):
        stage = stages[key]
        merged = _merge(reordered(stage.config),
                        cfg_options_args(stage.overrides))
        (dataset, ) = _of_type(merged.train_dataloader.dataset.datasets,
                               'PseudoLabeledDataset')
        (hook, ) = _of_type(merged.custom_hooks, 'PseudoLabelHook')
        assert dataset.ann_file == hook.out_file
        assert dataset.ann_file.startswith(str(tmp_path))
    gd = stages['guided_distillation']
    merged = _merge(reordered(gd.config), cfg_options_args(gd.overrides))
    (hook, ) = _of_type(merged.custom_hooks, 'GuidedTeacherHook')
    assert hook.burn_in_iters < gd.max_iters

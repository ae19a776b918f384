# Copyright (c) mmcast contributors. All rights reserved.
"""What the pipeline hands a stage config, addressed by type, not position.

A stage config keeps the parts the pipeline sets in lists: the
pseudo-labeled set among ``train_dataloader.dataset.datasets``, the
``PseudoLabelHook`` among ``custom_hooks``, the ``CocoMetric`` and
``CityScapesMetric`` among the evaluators. ``--cfg-options`` addresses a list
item by its index (``custom_hooks.0.out_file=...``); these functions find
the index from the item's ``type``, so that a config whose hooks or datasets
are reordered (or gain one) still gets its hand-offs where they belong, and
a config without the expected part is refused with its name.
"""
from typing import Optional, Sequence

from mmengine.config import Config

from mmcast.utils.config_types import type_name_of
from .overrides import Overrides


class ConfigHandoffError(KeyError):
    """A stage config without (or with two of) a part the pipeline sets."""

    def __str__(self) -> str:
        return str(self.args[0])


def config_value(cfg: Config, dotted: str):
    """The value at a ``--cfg-options`` key (list items by index), or None.
    """
    node = cfg
    for part in dotted.split('.'):
        if isinstance(node, (list, tuple)) and part.isdigit() and \
                int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, (dict, Config)) and part in node:
            node = node[part]
        else:
            return None
    return node


def find_item(cfg: Config, dotted: str, type_name: str,
              required: bool = True) -> Optional[str]:
    """The ``--cfg-options`` key of the one ``type_name`` item at
    ``dotted``.

    Args:
        cfg (Config): A stage config (its ``filename`` names it in errors).
        dotted (str): Where the item lives: a list of dicts (the key gets
            ``.<index>``) or a single dict (the key is ``dotted``).
        type_name (str): The item's ``type`` (registry scope ignored).
        required (bool): Raise when there is none; else return None.

    Returns:
        str | None: e.g. ``'custom_hooks.1'`` or ``'val_evaluator'``.

    Raises:
        ConfigHandoffError: No such item (when ``required``), or several.
    """
    node = config_value(cfg, dotted)
    if isinstance(node, dict):
        found = [dotted] if type_name_of(node) == type_name else []
    elif isinstance(node, (list, tuple)):
        found = [f'{dotted}.{i}' for i, item in enumerate(node)
                 if type_name_of(item) == type_name]
    else:
        found = []
    where = getattr(cfg, 'filename', None) or 'the config'
    if len(found) > 1:
        raise ConfigHandoffError(
            f'{where}: {len(found)} {type_name} in {dotted} '
            f'({", ".join(found)}); the pipeline sets exactly one')
    if not found and required:
        raise ConfigHandoffError(
            f'{where}: no {type_name} in {dotted}; the pipeline sets its '
            'options there')
    return found[0] if found else None


def train_dataset_key(cfg: Config, type_name: str) -> str:
    """The key of the ``type_name`` training dataset: among a
    ``ConcatDataset``'s ``datasets`` or the training dataset itself."""
    dataset = config_value(cfg, 'train_dataloader.dataset')
    if type_name_of(dataset) == type_name:
        return 'train_dataloader.dataset'
    return find_item(cfg, 'train_dataloader.dataset.datasets', type_name)


def pseudo_label_options(cfg: Config, out_file: str) -> Overrides:
    """Options that make a stage read and write its pseudo-labels at
    ``out_file``: the ``PseudoLabeledDataset``'s ``ann_file`` and the
    ``PseudoLabelHook``'s ``out_file``."""
    dataset = train_dataset_key(cfg, 'PseudoLabeledDataset')
    hook = find_item(cfg, 'custom_hooks', 'PseudoLabelHook')
    return Overrides.of([(f'{dataset}.ann_file', out_file),
                         (f'{hook}.out_file', out_file)])


def hook_option(cfg: Config, type_name: str, key: str,
                value) -> Overrides:
    """``custom_hooks.<index of type_name>.<key>`` set to ``value``."""
    return Overrides.of([
        (f'{find_item(cfg, "custom_hooks", type_name)}.{key}', value)])


def evaluator_options(cfg: Config, coco_prefix: str,
                      cityscapes_prefix: Optional[str] = None,
                      modes: Sequence[str] = ('val', 'test')) -> Overrides:
    """Options that make the ``CocoMetric`` write its results at
    ``coco_prefix`` and the ``CityScapesMetric`` (where there is one) at
    ``cityscapes_prefix``, for the val and test evaluators."""
    coco = [(f'{find_item(cfg, f"{mode}_evaluator", "CocoMetric")}'
             '.outfile_prefix', coco_prefix) for mode in modes]
    cityscapes = [
        (f'{key}.outfile_prefix', cityscapes_prefix) for key in (
            find_item(cfg, f'{mode}_evaluator', 'CityScapesMetric',
                      required=False) for mode in modes)
        if key and cityscapes_prefix
    ]
    return Overrides.of(coco + cityscapes)

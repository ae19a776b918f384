# Copyright (c) mmcast contributors. All rights reserved.
"""Helpers shared by the teacher wrappers.

* class-name bookkeeping: resolving dataset class names, mapping a member's
  label ids to the dataset's label ids through a name map;
* local-path checks that fail early with a clear :class:`FileNotFoundError`
  (no hub access on the training machines);
* recovering the original RGB image of a sample, either from its file or by
  undoing the data preprocessor on the batched input tensor.
"""
import os.path as osp
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.structures import InstanceData
from torch import Tensor

ClassNames = Union[str, Sequence[str]]

BERT_HINT = (
    'Download it on a machine with internet access, e.g. '
    '`huggingface-cli download bert-base-uncased --local-dir {path}` '
    '(or `python -c "from transformers import AutoTokenizer, BertModel; '
    "AutoTokenizer.from_pretrained('bert-base-uncased').save_pretrained('{path}'); "
    "BertModel.from_pretrained('bert-base-uncased').save_pretrained('{path}')\"`), "
    'copy the folder here and set `lang_model_name` / '
    '`language_model.name` in the config to that folder.')
SAM2_HINT = (
    'Download the SAM 2.1 checkpoint on a machine with internet access, e.g. '
    '`wget https://dl.fbaipublicfiles.com/segment_anything_2/092824/'
    '{name}` (or `huggingface-cli download facebook/sam2.1-hiera-large '
    '{name} --local-dir checkpoints`), copy it to {path} and set '
    '`sam2.checkpoint` in the config to that path.')
DETECTOR_HINT = (
    'Download the detector weights on a machine with internet access (for '
    'MMDetection zoo models: `mim download mmdet --config CONFIG_NAME '
    '--dest checkpoints`), copy the file to {path} or point the config at it.')


def resolve_class_names(classes: ClassNames) -> tuple:
    """Return a tuple of class names.

    Args:
        classes (str | Sequence[str]): the names themselves, or the name of a
            dataset registered in MMDetection's ``DATASETS`` (e.g.
            ``'CityscapesDataset'``, ``'ADE20KInstanceDataset'``) whose
            ``METAINFO['classes']`` is used.
    """
    if isinstance(classes, str):
        from mmdet.registry import DATASETS
        from mmdet.utils import register_all_modules
        register_all_modules(init_default_scope=False)
        dataset_cls = DATASETS.get(classes)
        if dataset_cls is None:
            raise KeyError(f'{classes!r} is neither a sequence of class names '
                           'nor a dataset registered in mmdet DATASETS')
        return tuple(dataset_cls.METAINFO['classes'])
    names = tuple(str(c) for c in classes)
    if len(set(names)) != len(names):
        raise ValueError(f'duplicate class names in {names}')
    return names


def build_label_mapping(src_classes: Sequence[str],
                        dst_classes: Sequence[str],
                        class_name_map: Optional[Dict[str, str]] = None
                        ) -> List[int]:
    """Map source label ids to destination label ids through class names.

    Args:
        src_classes: class names of the producing model, index = its label.
        dst_classes: class names of the dataset, index = dataset label.
        class_name_map: source name -> destination name. When given, only
            the source classes listed in it are kept (a value of ``None``
            drops the class explicitly); when ``None``, names are matched
            as they are.

    Returns:
        list[int]: for every source label the destination label, ``-1`` for
        dropped classes.

    Raises:
        ValueError: a map target that is not a dataset class, or a map key
            that is not a source class.
    """
    dst_index = {name: i for i, name in enumerate(dst_classes)}
    if class_name_map is not None:
        unknown_src = [k for k in class_name_map if k not in src_classes]
        if unknown_src:
            raise ValueError(f'class_name_map keys {unknown_src} are not '
                             f'classes of the model ({list(src_classes)})')
        unknown_dst = [
            v for v in class_name_map.values()
            if v is not None and v not in dst_index
        ]
        if unknown_dst:
            raise ValueError(f'class_name_map values {unknown_dst} are not '
                             f'dataset classes ({list(dst_classes)})')
    mapping = []
    for name in src_classes:
        if class_name_map is not None:
            target = class_name_map.get(name)
        else:
            target = name
        mapping.append(dst_index.get(target, -1) if target is not None else -1)
    return mapping


def remap_instances(instances: InstanceData,
                    mapping: Optional[Sequence[int]]) -> InstanceData:
    """Relabel ``instances`` with ``mapping`` and drop unmapped ones."""
    if mapping is None or len(instances) == 0:
        return instances
    labels = instances.labels
    table = labels.new_tensor(list(mapping) + [-1])
    safe = torch.where((labels >= 0) & (labels < len(mapping)), labels,
                       labels.new_full(labels.shape, len(mapping)))
    new_labels = table[safe]
    keep = new_labels >= 0
    out = instances[keep]
    out.labels = new_labels[keep]
    return out


def resolve_config_path(path: str) -> str:
    """Turn ``'mmdet::dir/cfg.py'`` into the file inside the installed
    package (its ``.mim/configs``); other paths are returned unchanged."""
    if '::' not in path:
        return path
    from mmengine.utils import get_installed_path
    package, rel = path.split('::', 1)
    full = osp.join(get_installed_path(package), '.mim', 'configs', rel)
    if not osp.isfile(full):
        raise FileNotFoundError(f'config {path!r} not found (looked at '
                                f'{full})')
    return full


def load_model_cfg(model: Union[dict, str],
                   cfg_options: Optional[dict] = None):
    """A model config given inline or as the ``model`` of a config file.

    Args:
        model: a model config dict, or the path of a config file (relative,
            absolute or ``mmdet::...``) whose ``model`` is used.
        cfg_options: merged into the model config (``Config.merge_from_dict``
            semantics: nested dicts, dotted keys and ``_delete_``).

    Returns:
        ConfigDict: a copy, safe to modify.
    """
    import copy

    from mmengine.config import Config, ConfigDict
    if isinstance(model, str):
        model = Config.fromfile(resolve_config_path(model)).model
    model = copy.deepcopy(model)
    if cfg_options:
        wrapper = Config(dict(model=model))
        wrapper.merge_from_dict(
            {f'model.{k}': v
             for k, v in cfg_options.items()}, allow_list_keys=True)
        model = wrapper.model
    return ConfigDict(model) if not isinstance(model, ConfigDict) else model


def check_local_dir(path: str, what: str, hint: str) -> None:
    """Raise a clear :class:`FileNotFoundError` if ``path`` is no folder."""
    if not isinstance(path, str) or not osp.isdir(path):
        raise FileNotFoundError(
            f'{what} not found at {path!r}: mmcast loads it from a local '
            f'folder only (no model hub access). ' + hint.format(path=path))


def check_local_file(path: str, what: str, hint: str, **fmt) -> None:
    """Raise a clear :class:`FileNotFoundError` if ``path`` is no file."""
    if not isinstance(path, str) or not osp.isfile(path):
        raise FileNotFoundError(
            f'{what} not found at {path!r}: mmcast loads it from a local '
            f'file only (no download at run time). ' +
            hint.format(path=path, **fmt))


def undo_preprocess(batch_inputs: Tensor, data_preprocessor,
                    img_shapes: Sequence[tuple]) -> List[Tensor]:
    """Invert a (Det)DataPreprocessor on a padded, normalised batch.

    Returns one float tensor (3, h, w) per sample, cropped to its
    ``img_shape`` and in the channel order the image loader produced
    (MMDetection loads BGR), with pixel values in [0, 255].
    """
    out = []
    mean = getattr(data_preprocessor, 'mean', None)
    std = getattr(data_preprocessor, 'std', None)
    normalise = getattr(data_preprocessor, '_enable_normalize', False)
    convert = getattr(data_preprocessor, '_channel_conversion', False)
    for img, (h, w) in zip(batch_inputs, img_shapes):
        img = img[:, :int(h), :int(w)].float()
        if normalise:
            img = img * std.to(img) + mean.to(img)
        if convert and img.shape[0] == 3:
            img = img.flip(0)
        out.append(img)
    return out


def original_rgb_image(data_sample,
                       batch_input: Optional[Tensor] = None,
                       data_preprocessor=None,
                       source: str = 'auto',
                       backend_args: Optional[dict] = None) -> np.ndarray:
    """The original image of ``data_sample`` as an RGB uint8 array (H, W, 3).

    Args:
        data_sample: a ``DetDataSample`` with ``ori_shape`` and, for
            ``source`` 'file' / 'auto', ``img_path``.
        batch_input: this sample's (normalised, padded) input tensor, used by
            the 'inputs' source.
        data_preprocessor: the preprocessor that produced ``batch_input``.
        source: 'file' reads ``img_path`` at full resolution; 'inputs'
            undoes the preprocessing, crops the padding, undoes a flip and
            resizes back to ``ori_shape`` (lower detail when the test
            pipeline down-scales); 'auto' uses the file when it exists.
    """
    meta = data_sample.metainfo
    ori_h, ori_w = meta['ori_shape'][:2]
    img_path = meta.get('img_path')
    if source not in ('auto', 'file', 'inputs'):
        raise ValueError(f'unknown image source {source!r}')
    use_file = source == 'file' or (source == 'auto' and isinstance(
        img_path, str) and _exists(img_path, backend_args))
    if use_file:
        import mmcv
        from mmengine.fileio import get
        if not isinstance(img_path, str):
            raise FileNotFoundError(
                'image_source="file" needs `img_path` in the data samples')
        img = mmcv.imfrombytes(
            get(img_path, backend_args=backend_args),
            flag='color',
            channel_order='rgb')
        if img.shape[:2] != (ori_h, ori_w):
            img = mmcv.imresize(img, (ori_w, ori_h))
        return np.ascontiguousarray(img)
    if batch_input is None or data_preprocessor is None:
        raise ValueError('image_source="inputs" needs the batch inputs and '
                         'the data preprocessor')
    img = undo_preprocess(batch_input[None], data_preprocessor,
                          [meta['img_shape'][:2]])[0]
    img = img.flip(0)  # loader order (BGR) -> RGB
    if meta.get('flip', False):
        direction = meta.get('flip_direction', 'horizontal')
        dims = {'horizontal': [2], 'vertical': [1], 'diagonal': [1, 2]}
        img = img.flip(dims[direction])
    if tuple(img.shape[1:]) != (ori_h, ori_w):
        img = F.interpolate(
            img[None], (ori_h, ori_w), mode='bilinear',
            align_corners=False)[0]
    img = img.clamp(0, 255).round().byte().permute(1, 2, 0)
    return img.cpu().numpy()


def _exists(path: str, backend_args: Optional[dict]) -> bool:
    if osp.isfile(path):
        return True
    if '://' in path:
        try:
            from mmengine.fileio import exists
            return exists(path, backend_args=backend_args)
        except Exception:  # pragma: no cover - backend specific
            return False
    return False

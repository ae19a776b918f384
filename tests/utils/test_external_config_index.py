# Copyright (c) mmcast contributors. All rights reserved.
"""MMEngine's look-up of ``mmdet::`` base configs, remembered per process:
the same files found, MMDetection's metafiles read once."""
import pytest
from mmengine.config import Config
from mmengine.config import utils as config_utils

from mmcast.utils.external_config_index import cache_external_config_index

BASES = ("_base_ = ['mmdet::_base_/default_runtime.py', "
         "'mmdet::_base_/datasets/cityscapes_instance.py']\n")
MODEL = "_base_ = 'mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco.py'\n"


def _load_counting(path: str, monkeypatch) -> tuple:
    """``Config.fromfile(path)`` → (config, YAML files MMEngine read)."""
    read = []
    load = config_utils.load

    def counting(file, *args, **kwargs):
        read.append(file)
        return load(file, *args, **kwargs)

    monkeypatch.setattr(config_utils, 'load', counting)
    cfg = Config.fromfile(path)
    monkeypatch.setattr(config_utils, 'load', load)
    return cfg, read


@pytest.mark.parametrize('text', [BASES, MODEL], ids=['base', 'model'])
def test_the_same_files_found_and_the_index_read_once(text, tmp_path,
                                                      monkeypatch):
    path = tmp_path / 'config.py'
    path.write_text(text)
    cache_external_config_index()
    cache_external_config_index()  # idempotent: one cache
    first, _ = _load_counting(str(path), monkeypatch)
    again, read = _load_counting(str(path), monkeypatch)
    assert read == []
    assert again.to_dict() == first.to_dict()
    if text == BASES:
        assert first.default_scope == 'mmdet'
        assert first.val_dataloader.dataset.type == 'CityscapesDataset'
    else:  # a model config of the index, with its own _base_ chain
        assert first.model.type == 'Mask2Former'
        assert first.model.backbone.depth == 50


def test_a_missing_base_is_still_named(tmp_path):
    path = tmp_path / 'config.py'
    path.write_text("_base_ = 'mmdet::_base_/no_such_runtime.py'\n")
    cache_external_config_index()
    for _ in range(2):
        with pytest.raises(FileNotFoundError, match='no_such_runtime.py'):
            Config.fromfile(str(path))


def test_configs_loaded_from_two_threads_at_once(tmp_path, monkeypatch):
    """MMEngine's own package look-up reloads ``pkg_resources`` on every
    call, and two threads that load configs at once then fail with
    ``Expected str, Requirement, or Distribution``; remembered, the package
    is looked up once and every load succeeds."""
    import importlib
    import threading

    path = tmp_path / 'config.py'
    path.write_text(BASES)
    cache_external_config_index()
    reloads = []
    reload = importlib.reload

    def counting(module):
        reloads.append(module.__name__)
        return reload(module)

    monkeypatch.setattr(importlib, 'reload', counting)
    start = threading.Barrier(4)
    loaded, errors = [], []

    def load() -> None:
        start.wait()
        try:
            for _ in range(10):
                loaded.append(Config.fromfile(str(path)).to_dict())
        except Exception as error:  # told below
            errors.append(error)

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert len(loaded) == 40 and all(c == loaded[0] for c in loaded)
    assert reloads.count('pkg_resources') <= 1  # mmdet, if not yet asked

# Copyright (c) mmcast contributors. All rights reserved.
"""Shared fixtures: small toy datasets generated once per test session."""
import contextlib
import importlib.util
import os
import os.path as osp
import re
import shutil
import sys
import tempfile
from types import ModuleType
from typing import Optional

import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# the GPU suite runs on its own: make test-gpu (tests/gpu/run.py)
collect_ignore = ['gpu']
# make test runs two pytest-xdist workers, one thread each (the machine's
# two cores); a plain pytest run keeps both threads
if os.environ.get('PYTEST_XDIST_WORKER'):
    os.environ['OMP_NUM_THREADS'] = '1'
os.environ.setdefault('OMP_NUM_THREADS', '2')
sys.path.insert(0, REPO_ROOT)


def _cache_external_config_lookups() -> None:
    """Read MMDetection's model index once per test process, as the
    pipeline does (the suite loads each shipped config many times)."""
    from mmcast.utils.external_config_index import \
        cache_external_config_index
    cache_external_config_index()


_cache_external_config_lookups()


def config_names() -> dict:
    """Short config name -> conventional name (``configs/mmcast/cast/``), of
    the table of stage configs (``configs/mmcast/stages.json``)."""
    from mmcast.apis.pipeline import stage_rows
    return {row['short']: osp.basename(row['config'])
            for row in stage_rows(REPO_ROOT) if row['short']}


def conventional_config(short: str) -> str:
    """``configs/mmcast/cast/<name>.py`` of the short name ``short``."""
    return f'configs/mmcast/cast/{config_names()[short]}.py'


def is_config_alias(path: str) -> bool:
    """Whether ``path`` is a short-name alias (``configs/mmcast/<short>.py``,
    nothing but a ``_base_`` on its conventional config)."""
    rel = osp.relpath(osp.join(REPO_ROOT, path), REPO_ROOT)
    return osp.dirname(rel) == osp.join('configs', 'mmcast') and \
        osp.splitext(osp.basename(rel))[0] in config_names()


def pipeline_of(*argv: str):
    """The :class:`~mmcast.apis.pipeline.CASTPipeline` of a command line of
    ``tools/cast_pipeline.py`` (its options checked, nothing run)."""
    from mmcast.apis.pipeline import CASTPipeline, RunSpec, parse_args
    return CASTPipeline(RunSpec.from_args(parse_args(list(argv))))


class _WritingRunner:
    """Made on first use (:func:`run_writing`): a ``StageRunner`` whose
    stage 'runs' write what MMEngine leaves in a work dir (``iter_<N>.pth``,
    ``last_checkpoint``, a json log whose mask AP is the count of runs so
    far, so that a stage made again gets a new AP); the planning, the
    runner's decisions, the completion records and the results rows are the
    real ones."""
    cls = None

    @classmethod
    def get(cls):
        if cls.cls is None:
            import json

            import torch

            from mmcast.apis.pipeline import StageRunner

            class WritingRunner(StageRunner):
                runs = 0

                def _run(self, stage, cmd) -> None:
                    WritingRunner.runs += 1
                    self.ran.append(stage.key)
                    os.makedirs(stage.work_dir, exist_ok=True)
                    if stage.max_iters is not None:
                        final = osp.join(stage.work_dir,
                                         f'iter_{stage.max_iters}.pth')
                        torch.save(dict(state_dict=dict(w=torch.tensor(
                            float(WritingRunner.runs)))), final)
                        with open(osp.join(stage.work_dir,
                                           'last_checkpoint'), 'w') as f:
                            f.write(final)
                    runs = WritingRunner.runs
                    log = osp.join(stage.work_dir, f'run{runs}', 'vis_data',
                                   f'run{runs}.json')
                    os.makedirs(osp.dirname(log), exist_ok=True)
                    with open(log, 'w') as f:
                        f.write(json.dumps({'coco/segm_mAP': runs / 100,
                                            'coco/segm_mAP_50': runs / 100})
                                + '\n')

            cls.cls = WritingRunner
        return cls.cls


def run_writing(pipeline, capsys=None):
    """Run ``pipeline``'s plan with stages that only write their files
    (:class:`_WritingRunner`) → ``(stage keys run, seed 0's rows, the
    console)``."""
    from mmcast.apis.pipeline import Planner

    plan = Planner(pipeline.spec, pipeline.loader).plan()
    runner = _WritingRunner.get()(pipeline.spec, pipeline.loader)
    runner.ran = []
    results = runner.run(plan)
    out = capsys.readouterr().out if capsys is not None else ''
    return runner.ran, results.get(min(results), {}), out


@pytest.fixture(scope='session')
def package_copy(tmp_path_factory) -> str:
    """A copy of mmcast's source (``.py`` files), made once per session."""
    root = str(tmp_path_factory.mktemp('package_copy'))
    shutil.copytree(osp.join(REPO_ROOT, 'mmcast'), osp.join(root, 'mmcast'),
                    ignore=shutil.ignore_patterns('__pycache__'))
    return root


@pytest.fixture
def pinned_code(package_copy, tmp_path, monkeypatch) -> str:
    """The stage records' code identity read from this test's own copy of
    mmcast's source (so that an edit elsewhere while the suite runs is not
    taken as a code change); returns the copy's package folder, for the
    test to edit."""
    from mmcast.apis.pipeline import provenance
    package = str(tmp_path / 'source' / 'mmcast')
    shutil.copytree(osp.join(package_copy, 'mmcast'), package)
    monkeypatch.setattr(provenance, 'PACKAGE_DIR', package)
    return package


def load_script(path: str) -> ModuleType:
    """Import a script that is not in a package (``tools/...py``) by path."""
    name = '_script_' + osp.splitext(osp.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_losses_train(log_vars: dict) -> None:
    """A training step's logged values: every one finite, and a positive
    ``loss_mask`` in every decoder layer (an fp16 loss normaliser that
    overflows makes it 0 or NaN)."""
    import math
    bad = [key for key, value in log_vars.items()
           if not math.isfinite(float(value))]
    assert not bad, bad
    mask_losses = {k: float(v) for k, v in log_vars.items()
                   if k.endswith('loss_mask')}
    assert mask_losses and all(v > 0 for v in mask_losses.values()), \
        mask_losses


# module-scoped fixtures of every test, cheap to build on each worker
PER_WORKER_FIXTURES = ('module_keeps_default_scope', )


def xdist_group(item: pytest.Item) -> Optional[str]:
    """The pytest-xdist group of a test (``--dist loadgroup``), or None.

    A test that uses a module- or class-scoped fixture goes with the
    module's other such tests, split by the parameters of those fixtures,
    so that each fixture is built on one worker only (the same value of an
    indirect parametrization shares the fixture's group); a group the test
    names itself (``pytest.mark.xdist_group``) is kept; any other test is
    scheduled on its own. xdist reads a group name up to the last ``]``
    of the test id, so the names hold no brackets.
    """
    mark = item.get_closest_marker('xdist_group')
    if mark is not None:
        return mark.args[0] if mark.args else mark.kwargs['name']
    shared = sorted(
        name for name in item._fixtureinfo.names_closure
        if name not in PER_WORKER_FIXTURES
        and item._fixtureinfo.name2fixturedefs.get(name) and item._fixtureinfo
        .name2fixturedefs[name][-1].scope in ('module', 'class', 'package'))
    if not shared:
        return None
    callspec = getattr(item, 'callspec', None)
    group = item.nodeid.split('::')[0]
    for name in shared:
        if callspec is not None and name in callspec.params:
            value = callspec.params[name]
            value = value if isinstance(value, (str, int, float, bool)) \
                else f'#{callspec.indices[name]}'
            group += f'::{name}={value}'
    return re.sub(r'[\[\]@]', '_', group)


# what the suite's temporary files need, with room: they take up to 19 GB at
# once (measured on two workers), and a real-size smoke part refuses to start
# with under 12 GiB free (its random weights and checkpoints) while the rest
# of the suite's folders are still there
FREE_DISK_GIB = 35


def pytest_sessionstart(session) -> None:
    """Stop at once, with one line, when the disk of the temporary files
    is too full for the suite (each test would fail on its own otherwise,
    with whatever error its first full write gives)."""
    if os.environ.get('PYTEST_XDIST_WORKER'):
        return  # checked once, by the controller
    folder = session.config.option.basetemp or tempfile.gettempdir()
    while not osp.isdir(folder):
        folder = osp.dirname(folder)
    free = shutil.disk_usage(folder).free
    if free < FREE_DISK_GIB * 2**30:
        pytest.exit(
            f'{folder}: {free / 2**30:.1f} GiB free; the test suite needs '
            f'{FREE_DISK_GIB} GiB free there for its temporary files (up to '
            '19 GB at once): free space, or point --basetemp at another disk',
            returncode=2)


def pytest_configure(config) -> None:
    config.addinivalue_line(
        'markers', 'slow_fixture(minutes): the module builds fixtures that '
        'take minutes on one core (whole pipelines, real-size models); its '
        'tests run first, the longest first')


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items: list) -> None:
    """Give every test its xdist group (see :func:`xdist_group`) and put the
    modules marked ``slow_fixture`` first, longest first, so that the two
    workers of ``make test`` (``--dist loadgroup --no-loadscope-reorder``)
    start with the long groups and end together."""
    for item in items:
        group = xdist_group(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))

    def minutes(item: pytest.Item) -> float:
        mark = item.get_closest_marker('slow_fixture')
        return mark.args[0] if mark else 0

    items.sort(key=minutes, reverse=True)


@contextlib.contextmanager
def _kept_default_scope():
    """Put MMEngine's default scopes back as they were: a test or module
    that sets one (``mmseg`` for SwinMTL, a runner's own) leaves the next,
    which may run after it on the same pytest-xdist worker, unchanged."""
    saved = dict(_default_scopes())
    yield
    scopes = _default_scopes()
    if list(scopes) != list(saved):
        scopes.clear()
        scopes.update(saved)


def _default_scopes() -> dict:
    """``DefaultScope``'s instances by name, the current one last (empty
    before MMEngine is imported)."""
    if 'mmengine.registry' not in sys.modules:
        return {}
    from mmengine.registry import DefaultScope
    return DefaultScope._instance_dict


@pytest.fixture(autouse=True)
def test_forgets_its_visualizers():
    """A runner of this test lends no visualizer (and save dir, which a
    passed test's ``tmp_path`` loses) to the runners of later tests on the
    same pytest-xdist worker."""
    yield
    if 'mmengine.visualization' in sys.modules:
        from mmcast.testing import forget_visualizers
        forget_visualizers()


@pytest.fixture(autouse=True, scope='module')
def module_keeps_default_scope():
    with _kept_default_scope():
        yield


@pytest.fixture(autouse=True)
def test_keeps_default_scope():
    with _kept_default_scope():
        yield


@pytest.fixture(scope='session')
def repo_root() -> str:
    """Absolute path of the repository."""
    return REPO_ROOT


@pytest.fixture(scope='session')
def toy_data_root(tmp_path_factory) -> str:
    """A tiny toy dataset (8 train / 4 val images, 64×128) with a 25 % split."""
    from mmcast.datasets.semi_split import write_split
    from mmcast.toy.worlds import make_toy_dataset

    root = str(tmp_path_factory.mktemp('toy'))
    make_toy_dataset(root, num_train=8, num_val=4, height=64, width=128,
                     seed=0, show_progress=False)
    write_split(
        osp.join(root, 'annotations', 'instancesonly_filtered_gtFine_train.json'),
        osp.join(root, 'annotations', 'semi'), seed=1, percent=25)
    return root


def toy_runner_config(path: str, data_root: str, work_dir: str,
                      *options: str):
    """A toy config pointed at ``data_root`` and CPU-sized
    (:func:`toy_cfg_options`), training in ``work_dir``, with ``options``
    (``key=value``) parsed as ``--cfg-options`` are."""
    import argparse

    from mmengine.config import Config, DictAction
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(['--cfg-options'] + toy_cfg_options(
        data_root, work_dir) + [f'work_dir={work_dir}', *options])
    cfg = Config.fromfile(path)
    cfg.merge_from_dict(args.cfg_options)
    return cfg


def toy_cfg_options(data_root: str, work_dir: str) -> list:
    """``--cfg-options`` pointing a toy config at ``data_root``, CPU-sized."""
    root = data_root.rstrip('/') + '/'
    return [
        f'train_dataloader.dataset.data_root={root}',
        f'val_dataloader.dataset.data_root={root}',
        f'test_dataloader.dataset.data_root={root}',
        f'val_evaluator.0.ann_file={root}annotations/instancesonly_filtered_gtFine_val.json',
        f'val_evaluator.1.seg_prefix={root}gtFine/val',
        f'val_evaluator.1.outfile_prefix={work_dir}/cityscapes_metric',
        f'test_evaluator.0.ann_file={root}annotations/instancesonly_filtered_gtFine_val.json',
        f'test_evaluator.1.seg_prefix={root}gtFine/val',
        f'test_evaluator.1.outfile_prefix={work_dir}/cityscapes_metric',
        'default_hooks.logger.interval=1',
        'model.train_cfg.num_points=256',
    ]


def without_pseudo_label_file(node):
    """A config node with the values naming a stage's pseudo-label file
    (``ann_file`` / ``out_file`` ending in ``pseudo_labels.json``) left
    out: two stage configs compared but for their own pseudo-label file."""
    if isinstance(node, dict):
        return {k: without_pseudo_label_file(v) for k, v in node.items()
                if k not in ('ann_file', 'out_file') or
                not str(v).endswith('pseudo_labels.json')}
    if isinstance(node, (list, tuple)):
        return [without_pseudo_label_file(v) for v in node]
    return node


def _unlabeled_gt_as_pseudo_labels(data_root: str, split: str,
                                   out_file: str) -> None:
    """The ground truth of the toy split's D_u (``split`` + ``-unlabeled``),
    written as a pseudo-label json (score 1)."""
    import json
    with open(osp.join(data_root, 'annotations',
                       'instancesonly_filtered_gtFine_train.json')) as f:
        full = json.load(f)
    with open(osp.join(data_root, split + '-unlabeled.json')) as f:
        unlabeled = json.load(f)
    ids = {img['id'] for img in unlabeled['images']}
    with open(out_file, 'w') as f:
        json.dump(dict(unlabeled, annotations=[
            dict(a, score=1.0) for a in full['annotations']
            if a['image_id'] in ids]), f)


def toy_distill_runner_config(path: str, data_root: str, work_dir: str,
                              split: str):
    """A toy CAST stage-2 config (``path``) on the toy data at
    ``data_root``, CPU-sized, for 2 iterations on the split ``split``
    (``annotations/semi/…@25``), its D_u labeled from a pseudo-label file
    written beforehand: no teacher, no ``PseudoLabelHook`` (the config's
    other hooks kept)."""
    root = data_root.rstrip('/') + '/'
    pseudo = osp.join(work_dir, 'pseudo_labels.json')
    _unlabeled_gt_as_pseudo_labels(root, split, pseudo)
    cfg = toy_runner_config(
        path, root, work_dir, 'model.teacher_checkpoint=None',
        'model.student.train_cfg.num_points=256', 'train_cfg.max_iters=2',
        'train_cfg.val_interval=2', 'param_scheduler.end=2',
        f'train_dataloader.dataset.datasets.0.data_root={root}',
        f'train_dataloader.dataset.datasets.0.ann_file={split}.json',
        'train_dataloader.dataset.datasets.1.unlabeled_ann_file='
        f'{root}{split}-unlabeled.json',
        'train_dataloader.dataset.datasets.1.data_prefix.img='
        f'{root}leftImg8bit/train/',
        f'train_dataloader.dataset.datasets.1.ann_file={pseudo}')
    # toy_runner_config's options written for a single detector
    del cfg.train_dataloader.dataset.data_root
    del cfg.model.train_cfg
    cfg.model.teacher = None
    cfg.custom_hooks = [h for h in cfg.custom_hooks
                        if h.type != 'PseudoLabelHook']
    return cfg

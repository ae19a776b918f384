# Copyright (c) mmcast contributors. All rights reserved.
"""Every mmcast config parses; the real-size CAST stage configs agree.

Checks, without data, weights or training: the configs parse; the student
models build (teacher off, no checkpoint loaded); the Swin-L teacher builds
once (Cityscapes, through ``CASTDistiller``'s config-path route); the stages
chain through the default work dirs as the stage graph hands over
(``configs/mmcast/stage_graph.json``); the split files are the ones
``tools/split_semi.py`` writes; class counts, projection-head channels,
pseudo-label paths, hooks, optimiser groups and the keys that
``tools/cast_pipeline.py`` overrides are consistent.
"""
import copy
import glob
import json
import os.path as osp
from functools import lru_cache

import pytest
from mmengine.config import Config

from conftest import REPO_ROOT, conventional_config
from mmcast.apis.pipeline.settings import STUDENT_STAGES
from mmcast.apis.pipeline.stage_graph import TEACHER0, cast_chain, stage_graph
from mmcast.apis.pipeline.stage_table import stage_rows

DATASETS = ('cityscapes', 'ade20k', 'coco')
# the stages of the recipe with a short-name config (the table of stage
# configs), in its order
STAGES = tuple(dict.fromkeys(
    row['stage'] for row in stage_rows()
    if row['dataset'] in DATASETS and row['short'] and not row['variant']))
NUM_CLASSES = dict(cityscapes=8, ade20k=100, coco=80)
# data_root, full train json (relative), --out-dir of tools/split_semi.py
# (relative to data_root), the splits the base configs name: label
# percentages of a seeded draw (seed 1), or a published list (Cityscapes:
# Guided Distillation's perc_10, the default of every stage)
SPLITS = dict(
    cityscapes=('data/cityscapes/',
                'annotations/instancesonly_filtered_gtFine_train.json',
                'annotations/semi', ('cityscapes/perc_10', )),
    ade20k=('data/ADEChallengeData2016/', 'ade20k_instance_train.json',
            'semi_anns', (10, )),
    coco=('data/coco/', 'annotations/instances_train2017.json', 'semi_anns',
          (1, 2, 5, 10)))
# PseudoLabelHook + D_u
SEMI_STAGES = tuple(k for k in STAGES if stage_graph()[k].pseudo_labels)
PXL_STAGES = ('adapt_teacher', 'adapt_teacher_selftrain', 'distill')
REAL_CONFIGS = [(ds, st) for ds in DATASETS for st in STAGES]
# the short-name aliases in configs/mmcast/ load as their targets in cast/
# (tests/test_config_names.py)
ALL_CONFIGS = sorted(
    osp.relpath(p, REPO_ROOT)
    for p in glob.glob(osp.join(REPO_ROOT, 'configs/mmcast/cast/*.py')) +
    glob.glob(osp.join(REPO_ROOT, 'configs/mmcast/toy/*.py')) +
    glob.glob(osp.join(REPO_ROOT, 'configs/mmcast/guided_distillation/*.py')))


def stage_path(stage: str, ds: str) -> str:
    return conventional_config(f'{stage}_{ds}')


def work_dir(stage: str, ds: str) -> str:
    """The default work dir of a stage config (named after its file)."""
    return 'work_dirs/' + osp.splitext(osp.basename(stage_path(stage,
                                                                ds)))[0]


@lru_cache(maxsize=None)
def _load(path: str) -> Config:
    return Config.fromfile(osp.join(REPO_ROOT, path))


def load(path: str) -> Config:
    """A fresh copy of the parsed config (parsing is cached)."""
    return copy.deepcopy(_load(path))


def detectors(cfg: Config):
    """The detector configs trained by a stage (the student of a wrapper)."""
    model = cfg.model
    return [model.student] if model.type == 'CASTDistiller' else [model]


@pytest.fixture(scope='module')
def registered():
    from mmdet.utils import register_all_modules

    import mmcast  # noqa: F401
    register_all_modules(init_default_scope=True)


# ---------------------------------------------------------------- parsing
def test_there_are_configs():
    assert len(ALL_CONFIGS) >= len(REAL_CONFIGS) + 5
    for ds, stage in REAL_CONFIGS:
        assert stage_path(stage, ds) in ALL_CONFIGS


def leftover_delete_keys(node, where='') -> list:
    """Paths of ``_delete_`` keys that survived inheritance.

    MMEngine consumes ``_delete_`` only where a base defines the key; a
    leftover one reaches the built object (e.g. ``DataLoader.__init__() got
    an unexpected keyword argument '_delete_'``).
    """
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            path = f'{where}.{key}' if where else str(key)
            found += [path] if key == '_delete_' else leftover_delete_keys(
                value, path)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            found += leftover_delete_keys(value, f'{where}.{i}')
    return found


@pytest.mark.parametrize('path', ALL_CONFIGS)
def test_config_parses(path):
    cfg = load(path)
    assert 'model' in cfg and 'train_dataloader' in cfg
    assert leftover_delete_keys(cfg.to_dict()) == []


def _types(node) -> set:
    """Every ``type`` string inside a config node."""
    if isinstance(node, dict):
        found = {node['type']} if isinstance(node.get('type'), str) else set()
        return found.union(*(_types(v) for v in node.values()))
    if isinstance(node, (list, tuple)):
        return set().union(*(_types(v) for v in node))
    return set()


def test_every_config_naming_an_mmcast_part_imports_mmcast():
    """A fresh ``mim train`` process finds mmcast's parts only through
    ``custom_imports`` (the in-process smoke run would not notice: mmcast
    is imported there by the first config)."""
    from mmengine.registry import Registry

    import mmcast  # noqa: F401
    from mmdet import registry
    ours = {name for reg in vars(registry).values()
            if isinstance(reg, Registry)
            for name, cls in reg.module_dict.items()
            if cls.__module__.startswith('mmcast.')}
    assert {'CASTDistiller', 'PseudoLabelHook'} <= ours
    checked = 0
    for path in glob.glob(osp.join(REPO_ROOT, 'configs/mmcast/**/*.py'),
                          recursive=True):
        if '_base_' in path:
            continue
        cfg = _load(osp.relpath(path, REPO_ROOT))  # read only
        if _types(cfg.to_dict()) & ours:
            checked += 1
            imports = cfg.get('custom_imports', {}).get('imports', [])
            assert any(i.split('.')[0] == 'mmcast' for i in imports), path
    assert checked > 50


@pytest.mark.parametrize('ds,stage', REAL_CONFIGS)
def test_stage_config_basics(ds, stage):
    cfg = load(stage_path(stage, ds))
    assert cfg.custom_imports == dict(
        imports=['mmcast'], allow_failed_imports=False)
    assert cfg.default_scope == 'mmdet'
    # schedule: AMP AdamW, clip 0.01, poly over the whole run, by iteration
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    assert cfg.optim_wrapper.clip_grad.max_norm == 0.01
    assert cfg.train_cfg.type == 'IterBasedTrainLoop'
    assert cfg.param_scheduler.type == 'PolyLR'
    assert cfg.param_scheduler.power == 0.9
    assert cfg.param_scheduler.end == cfg.train_cfg.max_iters
    assert cfg.default_hooks.checkpoint.by_epoch is False
    assert cfg.env_cfg.dist_cfg.backend == 'nccl'
    if stage in STUDENT_STAGES:  # spec "Student schedule"
        assert cfg.optim_wrapper.optimizer.lr == (1e-4 if ds == 'ade20k'
                                                  else 5e-5)
        assert cfg.optim_wrapper.optimizer.weight_decay == 0.1
    keys = cfg.optim_wrapper.paramwise_cfg.custom_keys
    assert keys['backbone'].lr_mult == 0.1
    # 8 images per iteration in total with the documented GPU counts
    if stage in SEMI_STAGES:
        loader = cfg.train_dataloader
        assert loader.sampler.type == 'MultiSourceSampler'
        assert loader.sampler.batch_size == loader.batch_size >= 2
    if stage == 'distill':
        assert cfg.train_cfg.max_iters == (160000 if ds == 'ade20k'
                                           else 90000)


# -------------------------------------------------------- stage chaining
def config_value(cfg: Config, key: str):
    """The value at the dotted ``key`` of ``cfg``."""
    node = cfg
    for part in key.split('.'):
        node = node[int(part)] if part.isdigit() else node[part]
    return node


def test_the_stages_are_cast_and_its_baseline():
    assert STAGES == cast_chain() + ('supervised_student', )
    assert SEMI_STAGES


@pytest.mark.parametrize('ds', DATASETS)
def test_stages_chain_through_default_work_dirs(ds):
    cfgs = {st: load(stage_path(st, ds)) for st in STAGES}
    iters = {st: c.train_cfg.max_iters for st, c in cfgs.items()}

    def ckpt(stage):
        # the finished checkpoint of its default work dir, whatever its
        # iterations (mmcast/utils/work_dir_checkpoint.py)
        return f'work-dir://{work_dir(stage, ds)}'

    teacher0 = cfgs['adapt_teacher'].load_from
    assert teacher0.startswith('checkpoints/mask2former_swin-l')
    # each hand-off of the graph: θ_T^0, or the stage's default work dir
    handoffs = 0
    for stage in STAGES:
        for key, source in stage_graph()[stage].handoffs:
            handoffs += 1
            assert config_value(cfgs[stage], key) == (
                teacher0 if source == TEACHER0 else ckpt(source)), key
    assert handoffs == 5
    # 1b and 2 are taught by the architecture of 1a
    for stage in ('adapt_teacher_selftrain', 'distill'):
        assert cfgs[stage].model.type == 'CASTDistiller'
        assert cfgs[stage].model.teacher == stage_path('adapt_teacher', ds)
    assert osp.isfile(osp.join(REPO_ROOT, cfgs['distill'].model.teacher))
    # 3: the stage-2 student
    assert cfgs['finetune'].model.init_cfg == dict(
        type='Pretrained', checkpoint=ckpt('distill'), prefix='student.')
    assert cfgs['finetune'].model.backbone.init_cfg is None
    # baseline: as many iterations as stages 2 + 3
    assert iters['supervised_student'] == iters['distill'] + iters['finetune']


@pytest.mark.parametrize('ds,stage', REAL_CONFIGS)
def test_cast_pipeline_override_keys(ds, stage):
    """The keys tools/cast_pipeline.py sets exist at those positions."""
    cfg = load(stage_path(stage, ds))
    opts = {'train_cfg.max_iters': 7, 'param_scheduler.end': 7,
            'default_hooks.checkpoint.interval': 1, 'randomness.seed': 0}
    # the stage graph's hand-offs
    opts.update({key: f'/x/{source}.pth'
                 for key, source in stage_graph()[stage].handoffs})
    if stage in SEMI_STAGES:
        assert cfg.custom_hooks[0].type == 'PseudoLabelHook'
        assert cfg.train_dataloader.dataset.datasets[1].type == \
            'PseudoLabeledDataset'
        opts['train_dataloader.dataset.datasets.1.ann_file'] = '/x/pl.json'
        opts['custom_hooks.0.out_file'] = '/x/pl.json'
    cfg.merge_from_dict(opts)
    for key, value in opts.items():
        assert config_value(cfg, key) == value, key
    if stage in SEMI_STAGES:  # the rest of the dataset entry is kept
        assert cfg.train_dataloader.dataset.datasets[1].pipeline


# ------------------------------------------------------------ data files
@pytest.mark.parametrize('ds', DATASETS)
def test_split_files_are_what_split_semi_writes(ds, tmp_path):
    from mmcast.datasets.semi_split import published_split_file, write_split

    data_root, train_json, out_dir, percents = SPLITS[ds]
    src = tmp_path / data_root / train_json
    src.parent.mkdir(parents=True, exist_ok=True)
    names = [f'{i}.png' for i in range(100)]
    for split in percents:
        if isinstance(split, str):  # a list's images, and as many others
            with open(published_split_file(split)) as f:
                names += [ln.strip().replace('gtFine_instanceIds',
                                             'leftImg8bit') for ln in f]
    images = [dict(id=i + 1, file_name=name, height=4, width=4)
              for i, name in enumerate(names)]
    src.write_text(json.dumps(dict(images=images, annotations=[],
                                   categories=[dict(id=1, name='x')])))
    base = load(f'configs/mmcast/_base_/datasets/semi_{ds}_instance.py')
    assert base.data_root == data_root
    for split in percents:
        listed = isinstance(split, str)
        paths = write_split(str(src), str(tmp_path / data_root / out_dir),
                            seed=1, percent=None if listed else split,
                            image_list_file=split if listed else None)
        rel = {k: osp.relpath(v, tmp_path / data_root)
               for k, v in paths.items()}
        tag = osp.basename(split) if listed else split
        default = '@perc_10' if ds == 'cityscapes' else '@10'
        assert rel['labeled'] == base.labeled_ann_file.replace(
            f'{default}.', f'@{tag}.')
        assert rel['unlabeled'] == base.unlabeled_ann_file.replace(
            f'{default}-', f'@{tag}-')
    # every stage reads exactly these files
    for stage in STAGES:
        cfg = load(stage_path(stage, ds))
        assert cfg.data_root == data_root
        datasets = cfg.train_dataloader.dataset.get('datasets')
        labeled = datasets[0] if datasets else cfg.train_dataloader.dataset
        assert labeled.data_root == data_root
        assert labeled.ann_file == base.labeled_ann_file
        if stage in SEMI_STAGES:
            assert datasets[1].unlabeled_ann_file == \
                data_root + base.unlabeled_ann_file
            hook = cfg.custom_hooks[0]
            assert hook.unlabeled_dataset.data_root == data_root
            assert hook.unlabeled_dataset.ann_file == base.unlabeled_ann_file
            assert hook.unlabeled_dataset.test_mode is True


@pytest.mark.parametrize('ds,stage',
                         [(ds, st) for ds in DATASETS for st in SEMI_STAGES])
def test_pseudo_label_hook_writes_what_the_dataset_reads(ds, stage,
                                                         registered):
    from mmdet.registry import DATASETS as DATASET_REGISTRY

    cfg = load(stage_path(stage, ds))
    hook = cfg.custom_hooks[0]
    pl_cfg = cfg.train_dataloader.dataset.datasets[1]
    assert hook.out_file == f'{work_dir(stage, ds)}/pseudo_labels.json'
    joined = osp.join(pl_cfg.data_root, pl_cfg.ann_file) \
        if pl_cfg.data_root else pl_cfg.ann_file
    assert joined == hook.out_file
    # the dataset class joins its paths the same way (nothing is read)
    dataset = DATASET_REGISTRY.build(dict(pl_cfg, lazy_init=True))
    assert osp.abspath(dataset.ann_file) == osp.abspath(hook.out_file)
    assert osp.abspath(dataset.unlabeled_ann_file) == osp.abspath(
        osp.join(hook.unlabeled_dataset.data_root,
                 hook.unlabeled_dataset.ann_file))
    assert dataset.data_prefix['img'] == osp.join(
        hook.unlabeled_dataset.data_root,
        hook.unlabeled_dataset.data_prefix['img'])
    assert tuple(pl_cfg.metainfo.classes) == tuple(cfg.classes)
    assert hook.filter_cfg == dict(score_thr=0.3, max_per_image=100,
                                   mask_thr=0.5)
    # labeled + pseudo-labeled: one metainfo (a dict, the labeled set's), as
    # PseudoLabelHook/CASTDistiller and the checkpoints' dataset_meta expect
    concat = copy.deepcopy(cfg.train_dataloader.dataset)
    concat.datasets = [dict(d, lazy_init=True) for d in concat.datasets]
    concat = DATASET_REGISTRY.build(dict(concat, lazy_init=True))
    assert isinstance(concat.metainfo, dict)
    assert tuple(concat.metainfo['classes']) == tuple(cfg.classes)
    assert concat.metainfo['palette'] == \
        concat.datasets[0].metainfo['palette']


# -------------------------------------------------------------- hooks
@pytest.mark.parametrize('ds,stage', REAL_CONFIGS)
def test_temperature_hook_iff_pixel_contrast(ds, stage, registered):
    from mmdet.registry import HOOKS

    cfg = load(stage_path(stage, ds))
    hooks = [h.type for h in cfg.get('custom_hooks', [])]
    for hook in cfg.get('custom_hooks', []):
        HOOKS.build(copy.deepcopy(hook))  # arguments are accepted
    pxl_on = any(
        d.panoptic_head.get('loss_pixel_contrast') is not None
        and d.panoptic_head.type == 'CASTMask2FormerHead'
        for d in detectors(cfg))
    assert pxl_on == (stage in PXL_STAGES)
    assert ('ContrastTemperatureHook' in hooks) == pxl_on
    assert ('PseudoLabelHook' in hooks) == (stage in SEMI_STAGES)
    if pxl_on:
        hook = next(h for h in cfg.custom_hooks
                    if h.type == 'ContrastTemperatureHook')
        assert (hook.start, hook.end) == (0.3, 0.07)


# ------------------------------------------------ model-level agreement
def _check_detector(det, num_classes):
    head = det.panoptic_head
    assert head.num_things_classes == num_classes
    assert head.num_stuff_classes == 0
    assert det.panoptic_fusion_head.num_things_classes == num_classes
    assert list(head.loss_cls.class_weight) == [1.0] * num_classes + [0.1]
    assert det.test_cfg.instance_on and not det.test_cfg.panoptic_on
    if head.type == 'CASTMask2FormerHead' and \
            head.get('loss_pixel_contrast') is not None:
        level = head.contrast_level
        proj = head.projection_head
        assert proj.in_channels == head.in_channels[level]
        backbone = det.backbone
        if backbone.type == 'DINOv2MultiLevel':
            deepest = backbone.out_channels[level]
        else:
            assert backbone.type == 'SwinTransformer'
            deepest = backbone.embed_dims * 2**(len(backbone.depths) - 1)
            deepest = [deepest // 8, deepest // 4, deepest // 2,
                       deepest][level]
        assert proj.in_channels == deepest
        assert (proj.hidden_channels, proj.out_channels, proj.num_layers,
                proj.get('bias', False)) == (128, 128, 3, False)
        loss = head.loss_pixel_contrast
        assert (loss.loss_weight, loss.num_negatives, loss.temperature,
                loss.neg_margin, loss.sampler) == (0.1, 200, 0.3, 0.5,
                                                   'fused')


@pytest.mark.parametrize('ds,stage', REAL_CONFIGS)
def test_classes_and_projection_channels_agree(ds, stage):
    cfg = load(stage_path(stage, ds))
    num_classes = NUM_CLASSES[ds]
    assert len(cfg.classes) == num_classes
    for det in detectors(cfg):
        _check_detector(det, num_classes)
    teacher = cfg.model.get('teacher')
    if teacher is not None:  # the teacher config of stages 1b and 2
        _check_detector(load(teacher).model, num_classes)


def test_teacher_architecture_is_mmdet_swin_l_mask2former():
    import mmdet
    ref = Config.fromfile(
        osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs', 'mask2former',
                 'mask2former_swin-l-p4-w12-384-in21k_16xb1-lsj-100e_'
                 'coco-panoptic.py')).model
    ours = load('configs/mmcast/_base_/models/'
                'cast_teacher_mask2former_swin-l.py').model
    assert ours.type == 'CASTMask2Former'
    assert ours.panoptic_head.type == 'CASTMask2FormerHead'
    for key in ref.backbone:
        if key != 'init_cfg':
            assert ours.backbone[key] == ref.backbone[key], key
    for key in ('in_channels', 'strides', 'feat_channels', 'out_channels',
                'num_queries', 'num_transformer_feat_level', 'pixel_decoder',
                'positional_encoding', 'transformer_decoder',
                'enforce_decoder_input_project', 'loss_mask', 'loss_dice'):
        assert ours.panoptic_head[key] == ref.panoptic_head[key], key
    # the same matching, computed in float32 under AMP
    assert ours.train_cfg.assigner.type == 'FP32HungarianAssigner'
    ref.train_cfg.assigner.type = 'FP32HungarianAssigner'
    assert ours.train_cfg == ref.train_cfg


# ------------------------------------------------------------ model builds
def _build(cfg_model):
    from mmdet.registry import MODELS
    model_cfg = copy.deepcopy(cfg_model)
    if model_cfg.type == 'CASTDistiller':
        model_cfg.teacher = None
        model_cfg.teacher_checkpoint = None
    return MODELS.build(model_cfg)  # init_weights is not called: no loading


@pytest.mark.parametrize(
    'ds,stage',
    [(ds, st) for ds in DATASETS
     for st in ('distill', 'finetune', 'supervised_student')])
def test_student_stage_models_build(ds, stage, registered):
    import torch

    cfg = load(stage_path(stage, ds))
    model = _build(cfg.model)
    student = model.student if stage == 'distill' else model
    head = student.panoptic_head
    assert head.num_classes == NUM_CLASSES[ds]
    assert head.cls_embed.out_features == NUM_CLASSES[ds] + 1
    assert len(head.loss_cls.class_weight) == NUM_CLASSES[ds] + 1
    assert student.panoptic_fusion_head.num_classes == NUM_CLASSES[ds]
    assert student.data_preprocessor.pad_size_divisor == 28
    # the paper-size (52M) student: 256-d DPT fusion blocks and decoder
    assert head.transformer_decoder.embed_dims == 256
    assert head.pixel_decoder.feat_channels == 256
    assert getattr(head, 'with_pixel_contrast', False) == (stage == 'distill')
    if stage == 'distill' and ds == 'cityscapes':
        # the projection head reads the deepest (stride-28) map
        with torch.no_grad():
            feats = student.extract_feat(torch.zeros(1, 3, 56, 112))
            deepest = feats[head.contrast_level]
            assert deepest.shape[-2:] == (2, 4)
            z = head.projection_head(deepest)
        assert z.shape == (1, 128, 2, 4)


@pytest.fixture(scope='module')
def distiller_with_swin_teacher(registered):
    """distill_cityscapes's CASTDistiller with its teacher built from the
    stage-1a config path (the one Swin-L build of this module)."""
    cfg = load(stage_path('distill', 'cityscapes'))
    cfg.model.teacher_checkpoint = None
    from mmdet.registry import MODELS
    return cfg, MODELS.build(cfg.model)


def test_swin_l_teacher_builds_from_config_path(distiller_with_swin_teacher):
    import torch

    _, model = distiller_with_swin_teacher
    teacher = model.teacher
    assert type(teacher).__name__ == 'CASTMask2Former'
    assert not any(p.requires_grad for p in teacher.parameters())
    assert 'teacher' not in ''.join(model.state_dict().keys())
    head = teacher.panoptic_head
    assert head.num_classes == 8 and head.num_queries == 200
    assert head.with_pixel_contrast
    assert teacher.backbone.num_features[-1] == 1536
    assert head.projection_head.mlp[0].in_channels == 1536
    with torch.no_grad():
        feats = teacher.extract_feat(torch.zeros(1, 3, 64, 64))
    assert [f.shape[1] for f in feats] == [192, 384, 768, 1536]
    model.check_classes(load(stage_path('distill', 'cityscapes')).classes)


def _groups(model, optim_cfg):
    from mmengine.optim import build_optim_wrapper
    optim_cfg = copy.deepcopy(optim_cfg)
    optim_cfg.type = 'OptimWrapper'  # AmpOptimWrapper needs a GPU
    wrapper = build_optim_wrapper(model, optim_cfg)
    by_param = {}
    for group in wrapper.optimizer.param_groups:
        for p in group['params']:
            by_param[id(p)] = (group['lr'], group['weight_decay'])
    return {n: by_param[id(p)] for n, p in model.named_parameters()}


def test_student_optimizer_groups(distiller_with_swin_teacher):
    cfg, model = distiller_with_swin_teacher
    groups = _groups(model, cfg.optim_wrapper)
    lr, wd = 5e-5, 0.1
    expect = {
        'student.backbone.layers.0.attn.qkv.weight': (lr * 0.1, wd),
        'student.backbone.layers.11.ffn.layers.1.weight': (lr * 0.1, wd),
        'student.backbone.layers.3.ln1.weight': (lr * 0.1, 0.0),
        'student.backbone.layers.10.ln2.bias': (lr * 0.1, 0.0),
        'student.backbone.layers.5.attn.gamma1.weight': (lr * 0.1, 0.0),
        'student.backbone.ln1.weight': (lr * 0.1, 0.0),
        'student.backbone.pos_embed': (lr * 0.1, 0.0),
        'student.backbone.cls_token': (lr * 0.1, 0.0),
        'student.backbone.patch_embed.projection.weight': (lr * 0.1, wd),
        # the new DPT read-out trains at the head's rate
        'student.backbone.reassemble_projects.0.weight': (lr, wd),
        'student.backbone.readout_projects.0.0.weight': (lr, wd),
        'student.panoptic_head.query_feat.weight': (lr, 0.0),
        'student.panoptic_head.query_embed.weight': (lr, 0.0),
        'student.panoptic_head.level_embed.weight': (lr, 0.0),
        'student.panoptic_head.cls_embed.weight': (lr, wd),
        'student.panoptic_head.transformer_decoder.post_norm.weight':
        (lr, 0.0),
        'student.panoptic_head.projection_head.mlp.0.weight': (lr, wd),
    }
    for name, (e_lr, e_wd) in expect.items():
        got = groups[name]
        assert got == pytest.approx((e_lr, e_wd)), (name, got)
    # every ViT parameter is slowed down
    for name, (g_lr, _) in groups.items():
        if name.startswith('student.backbone.layers.'):
            assert g_lr == pytest.approx(lr * 0.1), name


def test_teacher_optimizer_groups(distiller_with_swin_teacher):
    _, model = distiller_with_swin_teacher
    teacher = copy.deepcopy(model.teacher).requires_grad_(True)
    cfg = load(stage_path('adapt_teacher', 'cityscapes'))
    groups = _groups(teacher, cfg.optim_wrapper)
    lr, wd = 5e-5, 0.01
    expect = {
        'backbone.stages.2.blocks.17.attn.w_msa.qkv.weight': (lr * 0.1, wd),
        'backbone.stages.2.blocks.17.norm1.weight': (lr * 0.1, 0.0),
        'backbone.stages.2.blocks.17.attn.w_msa.relative_position_bias_table':
        (lr * 0.1, 0.0),
        'backbone.stages.2.downsample.norm.weight': (lr * 0.1, 0.0),
        'backbone.patch_embed.norm.weight': (lr * 0.1, 0.0),
        'backbone.norm3.weight': (lr * 0.1, 0.0),
        'panoptic_head.query_feat.weight': (lr, 0.0),
        'panoptic_head.pixel_decoder.level_encoding.weight': (lr, wd),
        'panoptic_head.cls_embed.weight': (lr, wd),
    }
    for name, (e_lr, e_wd) in expect.items():
        got = groups[name]
        assert got == pytest.approx((e_lr, e_wd)), (name, got)


# ------------------------------------------------------- config inheritance
SHARED_HEAD = 'configs/mmcast/_base_/models/mask2former_instance_head.py'
# What only a written-out Mask2Former head/decoder definition contains.
HEAD_MARKERS = ("type='FP32LossMask2FormerHead'", "MaskFormerFusionHead'",
                "type='MSDeformAttnPixelDecoder'",
                "type='FP32HungarianAssigner'", 'num_transformer_feat_level=',
                'enforce_decoder_input_project=')


def base_files(path: str) -> list:
    """The config files ``path`` inherits from, transitively (repo-relative
    paths; ``mmdet::`` bases by their scope-qualified name)."""
    import ast
    with open(osp.join(REPO_ROOT, path)) as f:
        tree = ast.parse(f.read())
    found = []
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and getattr(node.targets[0], 'id', None) == '_base_'):
            bases = ast.literal_eval(node.value)
            for base in [bases] if isinstance(bases, str) else bases:
                if '::' in base:
                    found.append(base)
                    continue
                rel = osp.relpath(
                    osp.normpath(
                        osp.join(osp.dirname(osp.join(REPO_ROOT, path)),
                                 base)), REPO_ROOT)
                found += [rel] + base_files(rel)
    return found


def mask2former_detectors(model) -> list:
    """Mask2Former configs in a (wrapped) model config."""
    return [
        m for m in (model, model.get('student'), model.get('teacher'))
        if isinstance(m, dict) and 'panoptic_head' in m
    ]


def test_mask2former_head_is_written_once():
    """One Mask2Former head definition: no config file other than
    the shared base writes one out (they override it), and every model base
    with a Mask2Former inherits it."""
    config_files = sorted(
        osp.relpath(p, REPO_ROOT) for p in glob.glob(
            osp.join(REPO_ROOT, 'configs/mmcast/**/*.py'), recursive=True))
    assert SHARED_HEAD in config_files
    for path in config_files:
        with open(osp.join(REPO_ROOT, path)) as f:
            text = f.read()
        written = [m for m in HEAD_MARKERS if m in text]
        if path == SHARED_HEAD:
            assert written == list(HEAD_MARKERS)
        else:
            assert written == [], (path, written)
    # the model bases (whatever else has a Mask2Former inherits one of them)
    for path in config_files:
        if '_base_/models/' not in path or path == SHARED_HEAD:
            continue
        model = load(path).get('model')
        if model is not None and mask2former_detectors(model):
            assert SHARED_HEAD in base_files(path), path
    # the toy R-18 head overrides every width it inherits
    toy = load('configs/mmcast/_base_/models/mask2former_r18_toy.py').model
    layer_cfgs = (toy.panoptic_head.pixel_decoder.encoder.layer_cfg,
                  toy.panoptic_head.transformer_decoder.layer_cfg)
    widths = {
        cfg.embed_dims
        for layer in layer_cfgs for cfg in layer.values()
    }
    assert widths == {toy.panoptic_head.feat_channels} == {64}


@pytest.mark.parametrize('ds,stage', REAL_CONFIGS)
def test_stage_settings_come_from_the_stage_base(ds, stage):
    """What a stage changes lives in one stage base; the per-dataset stage
    configs add only their dataset and its numbers."""
    stage_base = f'configs/mmcast/_base_/cast_stages/{stage}.py'
    path = stage_path(stage, ds)
    assert stage_base in base_files(path)
    assert f'configs/mmcast/_base_/datasets/semi_{ds}_instance.py' in \
        base_files(path)
    with open(osp.join(REPO_ROOT, path)) as f:
        text = f.read()
    for stage_setting in ('custom_imports', "type='PseudoLabelHook'",
                          'ContrastTemperatureHook', 'optim_wrapper',
                          'loss_pixel_contrast', 'semi_train_cfg'):
        assert stage_setting not in text, (path, stage_setting)

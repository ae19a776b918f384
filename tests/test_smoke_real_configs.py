# Copyright (c) mmcast contributors. All rights reserved.
"""Every real-size config runs: stages train 2 iterations and validate,
teachers train (adaptation) or test on the validation split.

Three parts of ``tools/smoke_real_configs.py`` runs on CPU at 64x128
(Cityscapes, ADE20K, COCO; one pytest-xdist group each): per dataset 1a →
1b → 2 → 3 chained as in ``tools/cast_pipeline.py`` plus the baseline (on
Cityscapes also the DINOv3-S DPT and the EoMT DINOv3-S students' 2 → 3 from
the same 1b teacher, and their baselines), Guided Distillation from that
baseline (Cityscapes, COCO; on Cityscapes the EoMT student's too),
and the configs of ``configs/mmcast/teachers`` (Grounding-DINO adaptation,
Grounding-DINO + SAM 2 for Cityscapes and ADE20K, the ensemble, SAM 3
adaptation and the SAM 3 teacher), all with random weights at the configs'
real architectures (Swin-L, DINOv2-S, DINOv3-S, BERT-base, Hiera-L, SAM 3's
ViT-L) on synthetic data in the dataset's real layout. Cityscapes runs
``--quick`` first (the chain that fits one GPU call: its hand-offs, its
2-image evaluation and its speed columns are checked), then the rest of
Cityscapes taking the quick runs over (``--resume``): each config runs
once. Each part runs its configs in the tool's own process
(``--in-process``: mmdet's train / test script, the one ``mim`` starts).
Slow: minutes a config on a shared CPU.
"""
import glob
import json
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
from mmengine.config import Config

from conftest import REPO_ROOT, load_script, toy_cfg_options
from mmcast.apis.pipeline import stage_rows
from mmcast.apis.pipeline.stage_graph import stage_graph
from mmcast.apis.pipeline.stage_table import config_file, stage_config_path
from mmcast.testing.smoke_plan import quick_plan

pytestmark = pytest.mark.slow_fixture(12)

DATASETS = ('cityscapes', 'ade20k', 'coco')
STAGES = (('adapt_teacher', '1a'), ('adapt_teacher_selftrain', '1b'),
          ('distill', '2'), ('finetune', '3'), ('supervised_student',
                                                'baseline'))
STAGE_CONFIGS = [(f'configs/mmcast/{stage}_{ds}.py', label)
                 for ds in DATASETS for stage, label in STAGES]
GD_CONFIGS = [
    f'configs/mmcast/guided_distillation/guided-distillation_dinov2-s_{ds}.py'
    for ds in ('cityscapes', 'coco')
]
# the DINOv3-S student's stages on Cityscapes, each run right after the
# DINOv2-S one
DINOV3_CONFIGS = [(f'configs/mmcast/{stage}_cityscapes_dinov3-s.py', label)
                  for stage, label in STAGES[2:]]
# the EoMT DINOv3-S student's, each run right after the DINOv3-S DPT one
EOMT_CONFIGS = [(f'configs/mmcast/{stage}_cityscapes_eomt-dinov3-s.py', label)
                for stage, label in STAGES[2:]]
EOMT_GD_CONFIG = ('configs/mmcast/guided_distillation/'
                  'guided-distillation_eomt-dinov3-s_cityscapes.py')
TEACHER_CONFIGS = [
    ('configs/mmcast/teachers/adapt_grounding_dino_cityscapes.py', 'adapt'),
    ('configs/mmcast/teachers/grounding_dino_sam2_cityscapes.py', 'test'),
    ('configs/mmcast/teachers/teacher_ensemble_cityscapes.py', 'test'),
    ('configs/mmcast/teachers/adapt_sam3_cityscapes.py', 'adapt'),
    ('configs/mmcast/teachers/sam3_cityscapes.py', 'test'),
    ('configs/mmcast/teachers/grounding_dino_sam2_ade20k.py', 'test'),
]
NUM_VAL = 2
# parameters (millions) a stage's checkpoint holds at least: those of the
# Mask2Former Swin-L teacher (1a, 1b: 215.7M to 215.8M) or of the DINOv2-S
# DPT student (2, 3, baseline: 51.0M to 51.2M) of each dataset
MIN_PARAMS_M = {'1a': 200, '1b': 200, '2': 50, '3': 50, 'baseline': 50}
# the DINOv3-S DPT student: 50.57M (DINOv3-S+: 57.7M)
DINOV3_S_PARAMS_M = (50, 55)
# SAM 3's image model: 840.5M (ViT-L/14 vision and 24-layer text encoders)
# the EoMT DINOv3-S student: 23.30M (stage 2: + 0.08M of L_pxl's projection)
EOMT_S_PARAMS_M = (23, 24)
MIN_SAM3_PARAMS_M = 800


# The smoke run in three parts, each one pytest-xdist group (make test runs
# two at once): the part's invocations of the tool (one after the other in
# one work dir) and the configs its summary holds, in order. Cityscapes:
# --quick keeping its checkpoints, then the rest of Cityscapes, taking over
# the quick runs (--resume)
CITYSCAPES_STAGES = STAGE_CONFIGS[:3] + DINOV3_CONFIGS[:1] \
    + EOMT_CONFIGS[:1] + STAGE_CONFIGS[3:4] + DINOV3_CONFIGS[1:2] \
    + EOMT_CONFIGS[1:2] + STAGE_CONFIGS[4:5] + DINOV3_CONFIGS[2:] \
    + EOMT_CONFIGS[2:] + [(GD_CONFIGS[0], 'GD'), (EOMT_GD_CONFIG, 'GD')]
PARTS = {
    'cityscapes': ([['--quick', '--keep-checkpoints'],
                    ['--datasets', 'cityscapes', '--resume']],
                   CITYSCAPES_STAGES + TEACHER_CONFIGS[:5]),
    'ade20k': ([['--datasets', 'ade20k']],
               STAGE_CONFIGS[5:10] + TEACHER_CONFIGS[5:]),
    'coco': ([['--datasets', 'coco']],
             STAGE_CONFIGS[10:] + [(GD_CONFIGS[1], 'GD')]),
}
_SUMMARIES: dict = {}  # part -> its summary, run once per process


def _part(config: str) -> str:
    """The part that runs ``config``."""
    return next(part for part, (_, configs) in PARTS.items()
                if config in [c for c, _ in configs])


def _params(cases: list) -> list:
    """``cases`` (tuples whose first item is a config) in their parts'
    pytest-xdist groups."""
    return [pytest.param(*case, marks=pytest.mark.xdist_group(
        f'smoke-{_part(case[0])}')) for case in cases]


def _invoke(work_dir, args: list) -> dict:
    """Run the tool with ``args`` → its summary.json (results by config)."""
    proc = subprocess.run(
        [sys.executable, osp.join(REPO_ROOT, 'tools', 'smoke_real_configs.py'),
         '--work-dir', str(work_dir), '--device', 'cpu', '--keep-going',
         '--num-images', '4', str(NUM_VAL), '--in-process'] + args,
        cwd=REPO_ROOT, capture_output=True, text=True)
    if not (work_dir / 'summary.json').is_file():
        # refused before running anything (a full disk) or crashed: its words
        pytest.fail(f'the smoke run {args} wrote no summary (exit code '
                    f'{proc.returncode}):\n{proc.stdout[-3000:]}'
                    f'{proc.stderr[-3000:]}')
    summary = json.loads((work_dir / 'summary.json').read_text())
    summary['by_config'] = {r['config']: r for r in summary['results']}
    summary['work_dir'] = work_dir
    summary['stdout'] = proc.stdout
    summary['output'] = proc.stdout[-5000:] + proc.stderr[-5000:]
    summary['returncode'] = proc.returncode
    return summary


def _smoke(part: str, tmp_path_factory) -> dict:
    """summary.json of the (last) smoke run of ``part``; ``earlier``: the
    summaries of its invocations before."""
    if part in _SUMMARIES:
        return _SUMMARIES[part]
    work_dir = tmp_path_factory.mktemp(f'smoke_{part}')
    summaries = [_invoke(work_dir, args) for args in PARTS[part][0]]
    summary = dict(summaries[-1], earlier=summaries[:-1])
    _SUMMARIES[part] = summary
    return summary


@pytest.fixture
def smoke(request, tmp_path_factory) -> dict:
    """The summary of the part that runs the test's ``config``."""
    return _smoke(_part(request.getfixturevalue('config')), tmp_path_factory)


@pytest.mark.parametrize('part', [
    pytest.param(part, marks=pytest.mark.xdist_group(f'smoke-{part}'))
    for part in PARTS])
def test_every_config_ran(part, tmp_path_factory):
    smoke = _smoke(part, tmp_path_factory)
    assert [r['config'] for r in smoke['results']] == [
        c for c, _ in PARTS[part][1]], smoke['output']
    assert smoke['returncode'] == 0, smoke['output']
    # the random real-size weights (~5 GB) are gone
    assert not osp.exists(smoke['work_dir'] / 'checkpoints')
    # Cityscapes: the runs of --quick were taken over, not run again
    resumed = [r['config'] for r in smoke['results'] if r.get('resumed')]
    assert resumed == [r['config'] for s in smoke['earlier']
                       for r in s['results']]


@pytest.mark.parametrize('config,label', _params(STAGE_CONFIGS))
def test_stage_trains_two_iterations_and_validates(smoke, config, label):
    result = smoke['by_config'][config]
    assert result['stage'] == label
    assert result['status'] == 'ok', result
    assert result['checkpoint'].endswith('iter_2.pth')
    # the fp32 weights of the real-size model (the smoke run saves no
    # optimizer state)
    assert result['checkpoint_bytes'] >= 4 * MIN_PARAMS_M[label] * 1e6
    assert not osp.exists(result['checkpoint'])  # deleted once read
    assert 'coco/segm_mAP' in result['metrics']
    if result['dataset'] == 'cityscapes':
        assert 'cityscapes/mAP' in result['metrics']
    stage = osp.basename(config)[:-len(f'_{result["dataset"]}.py')]
    if stage in ('adapt_teacher_selftrain', 'distill'):
        # the teacher labelled every unlabeled image (a random teacher
        # trained 2 iterations may find no instance in them)
        pseudo = _pseudo_labels(smoke, result['dataset'], stage)
        assert len(pseudo['images']) == 3  # 4 train images, 1 labeled


@pytest.mark.parametrize(
    'config,label,variant,params_m',
    _params([(c, lb, 'dinov3-s', DINOV3_S_PARAMS_M)
             for c, lb in DINOV3_CONFIGS] +
            [(c, lb, 'eomt-dinov3-s', EOMT_S_PARAMS_M)
             for c, lb in EOMT_CONFIGS]))
def test_student_variant_trains_two_iterations_and_validates(
        smoke, config, label, variant, params_m):
    result = smoke['by_config'][config]
    assert result['stage'] == label
    assert result['status'] == 'ok', result
    assert result['checkpoint'].endswith('iter_2.pth')
    low, high = params_m  # fp32 weights of the variant's student
    assert 4 * low * 1e6 <= result['checkpoint_bytes'] < 4 * high * 1e6
    assert not osp.exists(result['checkpoint'])  # deleted once read
    assert {'coco/segm_mAP', 'cityscapes/mAP'} <= set(result['metrics'])
    log = _log(result)
    if label == '3':  # every weight from its own stage 2
        assert f'distill_cityscapes_{variant}/iter_2.pth' in log
    else:  # the ViT from the (random) converted DINOv3-S weights
        assert 'vit_small_patch16_dinov3.pth' in log
    if label == '2':  # the DINOv2-S student's 1b teacher labelled D_u
        pseudo = _pseudo_labels(smoke, 'cityscapes', f'distill_{variant}')
        assert len(pseudo['images']) == 3
        assert 'adapt_teacher_selftrain_cityscapes/iter_2.pth' in log


def _pseudo_labels(smoke, ds: str, stage: str) -> dict:
    return json.loads((smoke['work_dir'] / ds / stage /
                       'pseudo_labels.json').read_text())


# the stages whose unlabeled branch trains on pseudo-instances of the random
# teacher, per dataset: the 2-iteration Cityscapes 1b teacher (8 classes)
# classes every query of D_u "no object" (as the GD baseline below); those
# of ADE20K and COCO, with 100 and 80 classes, keep some
PSEUDO_STAGES = {'cityscapes': ('adapt_teacher_selftrain', ),
                 'ade20k': ('adapt_teacher_selftrain', 'distill'),
                 'coco': ('adapt_teacher_selftrain', 'distill')}


@pytest.mark.parametrize(
    'config,stages', _params([(f'configs/mmcast/distill_{ds}.py', stages)
                              for ds, stages in PSEUDO_STAGES.items()]))
def test_unlabeled_branches_trained_on_pseudo_instances(smoke, config,
                                                        stages):
    """Pseudo-instances reached the unlabeled branch of stage 1b of each
    dataset and of stage 2 where the teacher keeps any (seeded: the same
    files every run)."""
    ds = smoke['by_config'][config]['dataset']
    counts = {stage: len(_pseudo_labels(smoke, ds, stage)['annotations'])
              for stage in stages}
    assert all(counts.values()), counts


@pytest.mark.parametrize('config', _params([(c,) for c in GD_CONFIGS] +
                                             [(EOMT_GD_CONFIG, )]))
def test_guided_distillation_trains_from_the_baseline(smoke, config):
    result = smoke['by_config'][config]
    assert result['stage'] == 'GD'
    assert result['status'] == 'ok', result
    assert result['checkpoint'].endswith('iter_2.pth')
    assert not osp.exists(result['checkpoint'])  # deleted once read
    assert 'coco/segm_mAP' in result['metrics']
    with open(result['log'], encoding='utf-8') as f:
        log = f.read()
    # burn-in with the baseline as teacher, then the switch to the student
    assert 'teacher <- student' in log
    # the teacher labelled the unlabeled batch of both iterations online
    # (the Cityscapes baseline, 2 iterations old, may class every query as
    # "no object"; COCO's 80 classes get pseudo-instances)
    counts = re.findall(r'pseudo_per_image: ([0-9.]+)', log)
    assert len(counts) == 2, counts
    if result['dataset'] == 'coco':
        assert float(counts[0]) > 0, counts


@pytest.mark.parametrize('config,how', _params(TEACHER_CONFIGS))
def test_teacher_config_runs(smoke, config, how):
    result = smoke['by_config'][config]
    assert result['stage'] == how
    assert result['status'] == 'ok', result
    if how == 'adapt' and 'grounding_dino' in config:  # boxes only
        assert result['checkpoint'].endswith('iter_2.pth')
        assert 'coco/bbox_mAP' in result['metrics']
        return
    if how == 'adapt':  # SAM 3: the whole fp32 model, masks validated
        assert result['checkpoint'].endswith('iter_2.pth')
        assert result['checkpoint_bytes'] >= 4 * MIN_SAM3_PARAMS_M * 1e6
        assert not osp.exists(result['checkpoint'])  # deleted once read
        assert {'coco/segm_mAP', 'cityscapes/mAP'} <= set(result['metrics'])
        log = _log(result)
        # load_from read the released layout ({'model': {'detector.*'}})
        # into every weight of the teacher
        assert re.search(r'Load checkpoint from \S*/sam3\.pt', log)
        assert 'missing keys in source state_dict' not in log
        assert 'unexpected key in source state_dict' not in log
        return
    # mim test: masks for every validation image and the metrics
    assert 'coco/segm_mAP' in result['metrics']
    if result['dataset'] == 'cityscapes':
        assert 'cityscapes/mAP' in result['metrics']
    instances = result['instances_per_image']
    assert len(instances) == NUM_VAL
    assert all(n > 0 for n in instances), instances
    if 'sam3' in config:
        # every query an instance, the top 3 after merging tiles and NMS
        assert instances == [3] * NUM_VAL
        assert 'adapt_sam3_cityscapes/iter_2.pth' in _log(result)


def _log(result: dict) -> str:
    return _read(result['log'])


def _read(path: str) -> str:
    with open(path, encoding='utf-8') as f:
        return f.read()


# --------------------------------------------------------------------------
# --quick: the Cityscapes chain that fits one GPU call
# --------------------------------------------------------------------------
def test_quick_plan_covers_every_cityscapes_stage():
    """The quick plan runs every Cityscapes stage row of the recipe's
    teacher, the DINOv3-S DPT and EoMT students' stage 2 and the
    box-prompted and SAM 3 teachers' adaptations, each after the runs it
    reads."""
    rows = [row for row in stage_rows() if row['dataset'] == 'cityscapes']
    expected = {config_file(row) for row in rows
                if row['teacher'] in (None, 'mask2former')
                and row['variant'] is None}
    assert {'adapt_teacher', 'adapt_teacher_selftrain', 'distill',
            'finetune', 'supervised_student', 'guided_distillation'} <= {
                row['stage'] for row in rows}
    expected |= {stage_config_path('cityscapes', 'distill', 'mask2former',
                                   variant)
                 for variant in ('dinov3-s', 'eomt-dinov3-s')}
    expected |= {osp.relpath(p, REPO_ROOT) for p in glob.glob(osp.join(
        REPO_ROOT, 'configs', 'mmcast', 'teachers', 'adapt_*_cityscapes.py'))}
    assert len(expected) == 10
    plan = quick_plan()
    assert {step.config for step in plan} == expected
    assert len(plan) == len(expected)
    # no ADE20K / COCO, no test-only teacher, not the variant's 3 / baseline
    assert {step.dataset for step in plan} == {'cityscapes'}
    assert {step.how for step in plan} == {'train'}
    # each hand-off of the stage graph from the run of its source stage,
    # earlier in the plan (the variant's stage 2 from the recipe's 1b)
    graph = stage_graph()
    for at, step in enumerate(plan):
        sources = [src for _, src in graph[step.stage].handoffs
                   if src != 'teacher0'] if step.stage else []
        assert [src for src, _ in step.reads] == sources, step
        for src, name in step.reads:
            read = next(s for s in plan[:at] if s.name == name)
            assert (read.stage, read.variant) == (src, None), step


def test_quick_plan_is_read_from_the_stage_table(monkeypatch):
    """A Cityscapes row added to the table is in the quick plan (a second
    Guided Distillation config), one taken out is not."""
    import mmcast.testing.smoke_plan as smoke_plan
    rows = stage_rows()
    gd = next(row for row in rows if row['dataset'] == 'cityscapes'
              and row['stage'] == 'guided_distillation')
    added = dict(gd, config='guided_distillation/another_cityscapes')
    monkeypatch.setattr(smoke_plan, 'stage_rows', lambda: rows + [added])
    plan = [step.name for step in smoke_plan.quick_plan()]
    assert plan.index(added['config']) == plan.index(gd['config']) + 1
    monkeypatch.setattr(smoke_plan, 'stage_rows',
                        lambda: [row for row in rows if row is not gd])
    assert gd['config'] not in [s.name for s in smoke_plan.quick_plan()]


def test_quick_arguments(capsys):
    """``--quick``: Cityscapes in the tool's process; another dataset is
    refused, naming it."""
    tool = load_script(osp.join(REPO_ROOT, 'tools', 'smoke_real_configs.py'))
    args = tool.parse_args(['--quick'])
    assert args.datasets == ['cityscapes'] and args.in_process
    assert tool.parse_args([]).datasets == list(DATASETS)
    with pytest.raises(SystemExit):
        tool.parse_args(['--quick', '--datasets', 'cityscapes', 'coco'])
    assert '--quick runs cityscapes only, not --datasets cityscapes coco' \
        in capsys.readouterr().err


@pytest.mark.xdist_group('smoke-cityscapes')
def test_quick_chain_runs_with_its_handoffs_and_speed(tmp_path_factory):
    """``--quick`` at 64x128 on CPU: every run of the plan passed, each
    read the checkpoint of the run before it in the chain, validated on the
    2 images with cityscapesscripts, and logged its step time and
    images/s (no peak memory: MMEngine logs it on CUDA only)."""
    quick = _smoke('cityscapes', tmp_path_factory)['earlier'][0]
    plan = quick_plan()
    assert quick['quick'] and quick['returncode'] == 0, quick['output']
    assert [r['config'] for r in quick['results']] == [
        s.config for s in plan]
    for step, result in zip(plan, quick['results']):
        assert result['status'] == 'ok', result
        assert result['checkpoint'].endswith('iter_2.pth')
        # hand-offs: θ_T^0 the random one, else the read run's checkpoint
        # (kept by --keep-checkpoints for the runs after, and gone once the
        # resumed invocation finished), loaded by the run
        log = _log(result)
        for key, src in (stage_graph()[step.stage].handoffs
                         if step.stage else ()):
            handed = result['handoffs'][key]
            if src == 'teacher0':
                assert osp.basename(handed) == \
                    'teacher0_mask2former_swin-l.pth'
            else:
                name = dict(step.reads)[src]
                read = quick['by_config'][
                    f'configs/mmcast/{name}.py']['checkpoint']
                assert handed == read
            assert handed in log, (step.name, key)
        metrics = result['metrics']
        if 'grounding_dino' in step.name:  # boxes only
            assert 'coco/bbox_mAP' in metrics
        else:  # cityscapesscripts on both validation images
            assert 'cityscapes/mAP' in metrics, step.name
            assert result['cityscapes_images'] == NUM_VAL, step.name
        assert result['step_seconds'] > 0 and result['data_seconds'] >= 0
        batch, step_s = _batch_size(quick, step), result['step_seconds']
        assert result['images_per_second'] == pytest.approx(
            # images/s rounded to 3 decimals, the step to 4 (its rounding
            # moves batch / step by up to batch / step**2 * 5e-5)
            batch / step_s, abs=5e-4 + batch / step_s**2 * 5e-5 * 1.01)
        assert result['peak_memory_mb'] is None  # CPU
    # the table: one row per run with its speed
    table = [line for line in quick['stdout'].splitlines()
             if line.startswith('| configs/')]
    assert len(table) == len(plan)
    assert all(line.endswith(' | — |') for line in table)


def _batch_size(summary: dict, step) -> int:
    """The train batch of ``step``'s dumped smoke config."""
    name = osp.basename(step.name)
    cfg = Config.fromfile(str(summary['work_dir'] / step.dataset / name /
                              f'{name}.py'))
    return cfg.train_dataloader.batch_size


def test_in_process_runs_keep_their_own_logs_and_scalars(
        tmp_path, toy_data_root, capfd):
    """``--in-process``: two trainings in one process each log into their
    own work dir (MMEngine's visualizer is per name and process) and their
    own log file; a script that raises gives exit 1 and its traceback in
    its log, and the console is the tool's again."""
    tool = load_script(osp.join(REPO_ROOT, 'tools', 'smoke_real_configs.py'))
    config = 'configs/mmcast/toy/mask2former_r18_1xb4-1500it_toy.py'
    for name in ('first', 'second'):
        work_dir = tmp_path / name
        work_dir.mkdir()
        options = toy_cfg_options(toy_data_root, str(work_dir)) + [
            'train_cfg.max_iters=1', 'train_cfg.val_interval=1',
            'param_scheduler.end=3', 'default_hooks.checkpoint.interval=1']
        log = str(work_dir / 'smoke.log')
        assert tool.run_script_in_process(
            ['train', 'mmdet', config, '--cfg-options'] + options,
            str(work_dir), log) == 0, tool.tail(log)
        assert 'coco/segm_mAP' in tool.val_record(str(work_dir)), name
        assert 'Iter(train) [1/1]' in _read(log)
        assert osp.isfile(work_dir / 'iter_1.pth')
    log = str(tmp_path / 'failed.log')
    assert tool.run_script_in_process(
        ['test', 'mmdet', str(tmp_path / 'missing.py'), '--checkpoint',
         str(work_dir / 'iter_1.pth')], str(tmp_path / 'failed'), log) == 1
    assert 'Traceback' in _read(log) and 'missing.py' in _read(log)
    print('the tool again')
    out, err = capfd.readouterr()
    assert out == 'the tool again\n' and 'Iter(train)' not in err


def test_too_little_disk_stops_before_writing(tmp_path, monkeypatch,
                                              capsys):
    tool = load_script(osp.join(REPO_ROOT, 'tools', 'smoke_real_configs.py'))
    usage = tool.shutil.disk_usage(tmp_path)
    monkeypatch.setattr(tool.shutil, 'disk_usage', lambda path: usage._replace(
        free=tool.FREE_DISK_GIB * 2**30 - 1))
    work_dir = tmp_path / 'smoke'
    assert tool.main(['--work-dir', str(work_dir)]) == 2
    err = capsys.readouterr().err
    assert f'{work_dir}: {tool.FREE_DISK_GIB:.1f} GiB free' in err
    assert f'needs about {tool.FREE_DISK_GIB} GiB' in err
    assert os.listdir(work_dir) == []

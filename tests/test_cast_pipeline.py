# Copyright (c) mmcast contributors. All rights reserved.
"""``tools/cast_pipeline.py toy`` end to end on a few tiny images.

The box-prompted teacher (tiny Grounding-DINO + tiny SAM 2) and the
concept-prompted one (tiny SAM 3) replace the Mask2Former teacher by
``--teacher gdino-sam2`` / ``--teacher sam3`` alone: θ_T^0 pre-training
on the source corpus, stages 1a, 1b, 2, 3 and the baseline run through
``mim train`` for 1–3 iterations on 64×128 images generated into a
temporary ``--data-root``; every stage leaves its final checkpoint, the
pseudo-labels are COCO json with the mmcast header, the results table has
every row. The same run with the default Mask2Former teacher checks the
main job the same way (5 to 10 minutes per teacher on one CPU core).

With the default teacher, a second run skips everything, and before the
fixture's run stage 2 crashes (an exception injected into its second
iteration through a ``sitecustomize`` module on the stages' path) twice:
once with another stage-2 config, then with the run's own. The console
shows the stage's exception and progress lines of every stage; the second
run sets the first crash aside and trains stage 2 from the start, the third
(the fixture's command) resumes it from its first checkpoint and finishes.
"""
import contextlib
import glob
import io
import json
import math
import os
import os.path as osp
import re
import subprocess
import sys
import time

import pytest
from mmengine.config import Config

from conftest import REPO_ROOT, config_names, conventional_config, pipeline_of

pytestmark = pytest.mark.slow_fixture(10)

SCRIPT = osp.join(REPO_ROOT, 'tools', 'cast_pipeline.py')
# θ_T^0 pre-training, 1a, 1b, 2, 3 (the baseline gets 2 + 3)
ITERS = dict(pretrain=2, adapt_teacher=1, adapt_teacher_selftrain=1,
             distill=2, finetune=1)
ITERS_ARGS = ['--iters'] + [f'{k}={v}' for k, v in ITERS.items()]
STAGE_ITERS = dict(adapt_teacher=1, adapt_teacher_selftrain=1, distill=2,
                   finetune=1, supervised_student=3)
# Imported by every Python process of a stage whose path has its folder:
# raises in iteration MMCAST_TEST_CRASH_ITER of a stage whose work dir ends
# with MMCAST_TEST_CRASH_STAGE.
CRASH_INJECTION = '''
import os

if os.environ.get('MMCAST_TEST_CRASH_STAGE'):
    from mmengine.runner import loops

    _run_iter = loops.IterBasedTrainLoop.run_iter

    def run_iter(self, data_batch):
        if self.runner.work_dir.endswith(
                os.environ['MMCAST_TEST_CRASH_STAGE']) and \\
                self._iter + 1 == int(os.environ['MMCAST_TEST_CRASH_ITER']):
            raise RuntimeError('injected crash in iteration '
                               f'{self._iter + 1}')
        return _run_iter(self, data_batch)

    loops.IterBasedTrainLoop.run_iter = run_iter
'''
# the teacher whose run also crashes and reruns
DEFAULT_TEACHER = 'mask2former'
ROWS = ('supervised_student', 'teacher_pretrained', 'adapt_teacher',
        'adapt_teacher_selftrain', 'distill', 'finetune')
GDINO_CONFIGS = ('adapt_teacher_toy_gdino-sam2',
                 'adapt_teacher_selftrain_toy_gdino-sam2',
                 'distill_toy_gdino-sam2')
SAM3_CONFIGS = ('adapt_teacher_toy_sam3', 'adapt_teacher_selftrain_toy_sam3',
                'distill_toy_sam3')
# per teacher: the configs its run uses, θ_T^0's folder, a key prefix of
# the model trained in stage 1b (CASTDistiller's student), the prefix of
# the frozen foundation model alongside it (None: none), the type in the
# pseudo-labels' header, the folder of its tiny offline files (None: none)
TEACHERS = {
    'gdino-sam2': dict(
        configs=GDINO_CONFIGS + (
            'toy/teacher_gdino-tiny_sam2-tiny_source-pretrain_toy',),
        foundation='toy_foundation_gdino-sam2',
        selftrained='student.detector.language_model.',
        frozen='student.sam2_model.',
        header='BoxPromptedTeacher',
        tiny_file='bert-tiny'),
    'sam3': dict(
        configs=SAM3_CONFIGS + (
            'toy/teacher_sam3-tiny_source-pretrain_toy',),
        foundation='toy_foundation_sam3',
        selftrained='student.sam3_model.transformer.decoder.',
        frozen=None,
        header='ConceptPromptedTeacher',
        tiny_file='sam3_tiny.pt'),
    'mask2former': dict(
        configs=('adapt_teacher_toy', 'adapt_teacher_selftrain_toy',
                 'distill_toy', 'toy/mask2former_r34_source-pretrain_toy'),
        foundation='toy_foundation',
        selftrained='student.panoptic_head.',
        frozen=None,
        header='CASTMask2Former',
        tiny_file=None),
}


def _suffix(run: dict) -> str:
    """The suffix of the teacher stages' config names."""
    return '' if run['teacher'] == 'mask2former' else f'_{run["teacher"]}'


def _pipeline(args: list, check: bool = True,
              **env: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONWARNINGS='ignore', **env)
    proc = subprocess.run([sys.executable, SCRIPT] + args, cwd=REPO_ROOT,
                          capture_output=True, text=True, env=env)
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _pipeline_here(args: list,
                   check: bool = True) -> subprocess.CompletedProcess:
    """The command line ``args`` run by the script's ``main`` in this
    process, for the runs that train nothing (a dry run, a refusal, a
    rerun of finished stages): the same code without a second start of
    Python and its imports."""
    from mmcast.apis.pipeline.cli import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    proc = subprocess.CompletedProcess(args, code, out.getvalue(),
                                       err.getvalue())
    if check:
        assert code == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(
    scope='module',
    params=['gdino-sam2', 'mask2former', 'sam3'])
def run(request, tmp_path_factory):
    """The whole pipeline of one teacher. With the default teacher, stage 2
    crashed twice before (another config, then this one), and the pipeline
    runs a second time after; the crash handling and the skipping of done
    stages are the same code for every teacher."""
    teacher = request.param
    tmp = tmp_path_factory.mktemp(f'cast_pipeline_{teacher}')
    work_dir, data_root = str(tmp / 'work'), str(tmp / 'data')
    args = ['toy', '--teacher', teacher, '--work-dir', work_dir,
            '--data-root', data_root, '--toy-sizes', '8', '2', '4',
            '--toy-image-size', '64', '128', '--jobs', '2',
            '--progress-interval', '1'] + ITERS_ARGS + [
            # θ_T^0 pre-training too (the stages get their seed anyway)
            '--cfg-options', 'randomness.seed=0']
    crashes, second, rerun_s = [], None, None
    if teacher == DEFAULT_TEACHER:
        injection = tmp / 'crash_injection'
        injection.mkdir()
        (injection / 'sitecustomize.py').write_text(CRASH_INJECTION)
        crash = dict(PYTHONPATH=str(injection),
                     MMCAST_TEST_CRASH_STAGE='distill',
                     MMCAST_TEST_CRASH_ITER='2')
        other_config = ['--stage-cfg-options',
                        'distill:model.semi_train_cfg.unsup_weight=0.5']
        crashes = [_pipeline(args + other_config, check=False, **crash),
                   _pipeline(args, check=False, **crash)]
    first = _pipeline(args).stdout
    if teacher == DEFAULT_TEACHER:
        start = time.time()
        second = _pipeline(args).stdout
        rerun_s = time.time() - start
    return dict(teacher=teacher, work_dir=work_dir, data_root=data_root,
                args=args, crashes=crashes, first=first, second=second,
                rerun_s=rerun_s)


@pytest.mark.parametrize('run', [DEFAULT_TEACHER], indirect=True)
def test_a_crashed_stage_restarts_with_another_config_else_resumes(run):
    """The crash's own exception on the console, exit 1 and no traceback of
    the pipeline; after a config change the crashed run is set aside whole;
    with the same config it resumes from its last checkpoint."""
    distill = osp.join(run['work_dir'], 'seed0', 'distill')
    for proc in run['crashes']:
        assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
        err = proc.stderr
        assert '[seed 0] [stage 2] failed (exit 1):' in err
        assert 'RuntimeError: injected crash in iteration 2' in err
        assert f'full log: {osp.join(distill, "pipeline.log")}' in err
        assert 'cast_pipeline.py' not in err  # the pipeline's own frames
        assert 'run the same command again' in err
    moved = glob.glob(distill + '.crashed-*')
    assert len(moved) == 1
    assert osp.isfile(osp.join(moved[0], 'iter_1.pth'))
    assert Config.fromfile(osp.join(
        moved[0], f'distill_toy{_suffix(run)}.py')).model.semi_train_cfg \
        .unsup_weight == 0.5
    second = run['crashes'][1].stdout
    assert f'[stage 2] the unfinished run in {distill} had another config: ' \
        f'moved to {moved[0]}; training from the start' in second
    assert '[stage 2] training' in second and '(resumed' not in second
    # the fixture's run: stage 2 resumed, the stages before it done
    first = run['first']
    assert '[stage 2] training' in first and \
        '(resumed from iter_1.pth)' in first
    for name in ('stage 1a', 'stage 1b', 'baseline'):
        assert f'[{name}] done' in first, name
    with open(osp.join(distill, 'stage_complete.json')) as f:
        assert json.load(f)['checkpoint'] == 'iter_2.pth'


def test_the_console_shows_progress_and_stays_quiet(run):
    """A progress line for each stage that trained, with its iterations
    (plain lines: the output is no terminal); none of the config loader's
    messages, which go to the pipeline's log file."""
    console = ''.join(p.stdout for p in run['crashes']) + run['first']
    for label, iters in (('[teacher pre-training (source corpus)]', 2),
                         ('[seed 0] [stage 1a]', 1),
                         ('[seed 0] [stage 1b]', 1),
                         ('[seed 0] [stage 2]', 2),
                         ('[seed 0] [stage 3]', 1),
                         ('[seed 0] [baseline]', 3)):
        lines = re.findall(re.escape(label) + rf' iter (\d+)/{iters} ETA ',
                           console)
        assert lines and int(lines[-1]) == iters, label
    assert 'Using env variable' not in console
    with open(osp.join(run['work_dir'], 'cast_pipeline.log')) as f:
        assert 'Using env variable `MMCAST_TOY_ROOT`' in f.read()


def test_teacher_stages_use_the_teachers_configs(run):
    log = ''.join(p.stdout for p in run['crashes']) + run['first']
    for teacher, spec in TEACHERS.items():
        for name in spec['configs']:
            used = f'configs/mmcast/{name}.py' in log
            assert used == (teacher == run['teacher']), name
    for name in ('finetune_toy', 'supervised_student_toy'):  # student-only
        assert f'configs/mmcast/{name}.py' in log, name


def test_every_stage_leaves_its_final_checkpoint(run):
    import torch

    import mmcast  # noqa: F401  (allow-lists MMEngine's checkpoint globals)
    wd = run['work_dir']
    spec = TEACHERS[run['teacher']]
    final = osp.join(wd, spec['foundation'], f'iter_{ITERS["pretrain"]}.pth')
    assert osp.isfile(final)
    for stage, iters in STAGE_ITERS.items():
        path = osp.join(wd, 'seed0', stage, f'iter_{iters}.pth')
        assert osp.isfile(path), stage
        with open(osp.join(wd, 'seed0', stage, 'last_checkpoint')) as f:
            assert f.read().strip() == path
    # stage 1b trained the teacher itself (CASTDistiller's student): for
    # gdino-sam2 the Grounding-DINO, with the frozen SAM 2 alongside
    state = torch.load(
        osp.join(wd, 'seed0', 'adapt_teacher_selftrain', 'iter_1.pth'),
        map_location='cpu', weights_only=True)['state_dict']
    assert any(k.startswith(spec['selftrained']) for k in state)
    assert any(k.startswith('student.sam2_model.') for k in state) == \
        (spec['frozen'] == 'student.sam2_model.')
    # the tiny teachers' files live in the work dir, the data in --data-root
    for teacher, other in TEACHERS.items():
        if other['tiny_file']:
            assert osp.exists(osp.join(wd, 'tiny_teachers',
                                       other['tiny_file'])) == \
                (teacher == run['teacher']), teacher
    with open(osp.join(run['data_root'], 'toy', 'toy_meta.json')) as f:
        meta = json.load(f)
    assert (meta['num_train'], meta['height'], meta['width']) == (8, 64, 128)


@pytest.mark.parametrize('run', ['gdino-sam2'], indirect=True)
def test_sam2_learns_in_pretraining_and_stays_frozen_in_adaptation(run):
    """θ_T^0's SAM 2 is trained on the source corpus (it differs from the
    random tiny SAM 2 it started from); stages 1a and 1b carry θ_T^0's
    SAM 2 unchanged, so θ_T' and θ_T'' segment with it."""
    import torch

    import mmcast  # noqa: F401  (allow-lists MMEngine's checkpoint globals)
    wd = run['work_dir']

    def sam2_state(path: str, prefix: str) -> dict:
        state = torch.load(path, map_location='cpu', weights_only=True)
        state = state.get('state_dict', state.get('model'))
        return {k[len(prefix):]: v for k, v in state.items()
                if k.startswith(prefix)}

    random = sam2_state(osp.join(wd, 'tiny_teachers', 'sam2_tiny.pt'), '')
    theta0 = sam2_state(
        osp.join(wd, TEACHERS['gdino-sam2']['foundation'],
                 f'iter_{ITERS["pretrain"]}.pth'), 'sam2_model.')
    assert set(theta0) == set(random)
    trained = [k for k in theta0 if not torch.equal(theta0[k], random[k])]
    for part in ('image_encoder.', 'sam_prompt_encoder.',
                 'sam_mask_decoder.'):
        assert any(k.startswith(part) for k in trained), part
    assert not any(k.startswith('memory_') for k in trained)
    for stage, prefix in (('adapt_teacher', 'sam2_model.'),
                          ('adapt_teacher_selftrain', 'student.sam2_model.')):
        state = sam2_state(
            osp.join(wd, 'seed0', stage, f'iter_{STAGE_ITERS[stage]}.pth'),
            prefix)
        assert set(state) == set(theta0), stage
        assert all(torch.equal(state[k], theta0[k]) for k in theta0), stage


def test_pseudo_labels_are_coco_json_with_header(run):
    from pycocotools.coco import COCO

    unlabeled = osp.join(
        run['data_root'], 'toy', 'annotations', 'semi',
        'instancesonly_filtered_gtFine_train.1@10-unlabeled.json')
    labeled = unlabeled.replace('-unlabeled', '')
    with open(unlabeled) as f:
        image_ids = {im['id'] for im in json.load(f)['images']}
    # θ_T'' of the Mask2Former teacher labels D_u for stage 2 from 0.6
    thresholds = dict(stage1b=0.3, stage2=0.6 if run['teacher'] ==
                      'mask2former' else 0.3)
    for name, score_thr in thresholds.items():
        path = osp.join(run['work_dir'], 'seed0', 'pseudo_labels',
                        f'{name}.json')
        coco = COCO(path)
        assert set(coco.getImgIds()) == image_ids
        header = coco.dataset['info']['mmcast_pseudo_labels']
        assert TEACHERS[run['teacher']]['header'] in header['teacher']
        assert header['num_images'] == len(image_ids)
        assert header['num_instances'] == len(coco.dataset['annotations'])
        assert header['filter']['score_thr'] == score_thr
        assert header['unlabeled_sha256'] and header['checkpoint_sha256']
        for ann in coco.dataset['annotations']:
            assert score_thr <= ann['score'] <= 1
            assert coco.annToMask(ann).any()
        # the same teacher labelled D_l too: precision / recall per
        # threshold against D_l's ground truth
        with open(labeled) as f:
            num_labeled = len(json.load(f)['images'])
        with open(path[:-len('.json')] + '.quality.json') as f:
            quality = json.load(f)
        assert quality['num_images'] == num_labeled
        assert quality['identity']['checkpoint_sha256'] == \
            header['checkpoint_sha256']
        assert [r['score_thr'] for r in quality['sweep']][0] == 0.1
        assert all(0 <= r['precision'] <= 1 and 0 <= r['recall'] <= 1
                   for r in quality['sweep'])
    if run['teacher'] == 'gdino-sam2':
        # with randomness.seed=0 the tiny θ_T' detects something, so the
        # SAM 2 masks went through the pseudo-labels into stage 1b
        assert COCO(osp.join(run['work_dir'], 'seed0', 'pseudo_labels',
                             'stage1b.json')).dataset['annotations']


def test_console_counts_the_pseudo_labels_each_stage_trained_on(run):
    """After stages 1b and 2 the console says how many pseudo-labels the
    stage trained on, as their file's header counts them, and warns when
    there were none."""
    output = run['first']
    for name, label in (('stage1b', 'stage 1b'), ('stage2', 'stage 2')):
        path = osp.join(run['work_dir'], 'seed0', 'pseudo_labels',
                        f'{name}.json')
        with open(path) as f:
            header = json.load(f)['info']['mmcast_pseudo_labels']
        line = (f'[seed 0] [{label}] pseudo-labels: '
                f'{header["num_instances"]} instances on '
                f'{header["num_images"]} unlabeled images ({path})')
        assert line in output, output[-3000:]
        warned = f'[seed 0] [{label}] WARNING: the teacher kept no instance'
        assert (warned in output) == (header['num_instances'] == 0)


def test_pseudo_label_summary_of_a_stage(tmp_path):
    from mmcast.apis.pipeline.stage import Stage, pseudo_label_summary
    from mmcast.pseudo_labels.coco_pseudo_labels import \
        write_pseudo_label_json
    path = str(tmp_path / 'stage2.json')
    stage = Stage('distill', 'stage 2', 'c.py', str(tmp_path), seed=1,
                  pseudo_label_file=path)
    assert pseudo_label_summary(stage) == []  # not written (yet)
    images = [dict(id=i, file_name=f'{i}.png', height=4, width=4)
              for i in range(3)]
    ann = dict(id=1, image_id=0, category_id=1, bbox=[0, 0, 1, 1], area=1,
               iscrowd=0, score=0.9,
               segmentation=dict(size=[4, 4], counts='0400<0'))
    for anns, lines in (([], 2), ([ann], 1)):
        write_pseudo_label_json(
            path, dict(num_images=3, num_instances=len(anns)), images,
            [dict(id=1, name='a')], anns)
        said = pseudo_label_summary(stage)
        assert len(said) == lines
        assert said[0] == (f'[seed 1] [stage 2] pseudo-labels: {len(anns)} '
                           f'instances on 3 unlabeled images ({path})')
        assert ('taught the student background' in said[-1]) == (not anns)
    assert pseudo_label_summary(Stage('x', 'stage 3', 'c.py', '.')) == []


def _per_image_ap(gt_file: str, pred_file: str) -> list:
    """Mask AP (×100) of ``pred_file`` on each val image alone, from a fresh
    pycocotools evaluation per image (0 where the image has no ground
    truth, as the split-half estimate counts it)."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(gt_file)
        with open(pred_file) as f:
            found = json.load(f)
        dt = gt.loadRes(pred_file) if found else COCO()
        aps = []
        for img_id in sorted(gt.getImgIds()):
            ev = COCOeval(gt, dt, 'segm')
            ev.params.imgIds = [img_id]
            ev.evaluate()
            ev.accumulate()
            precision = ev.eval['precision'][:, :, :, 0, -1]
            valid = precision[precision > -1]
            aps.append(float(100 * valid.mean()) if valid.size else 0.0)
    return aps


def _check_split_half_se(se: float, per_image: list) -> None:
    """On 2 val images every split half is one image: each split's
    difference is ±(AP(image 1) − AP(image 2)), so the split-half SE (the
    std over 50 random splits, / 2) is 0 when the two images score alike
    and otherwise between 0.8 and 1.01 times half their difference (the
    share of either sign over 50 seeded splits stays within 10 to 40)."""
    half = abs(per_image[0] - per_image[1]) / 2
    assert 0.8 * half - 0.06 <= se <= 1.01 * half + 0.06, (se, per_image)


def test_results_have_every_row_with_finite_numbers(run):
    wd = run['work_dir']
    with open(osp.join(wd, 'results.json')) as f:
        results = json.load(f)
    assert results.get('teacher', 'mask2former') == run['teacher']
    assert results['seeds'] == [0]
    assert set(results['rows']) == set(ROWS)
    for key in ROWS:
        cell = results['rows'][key]['per_seed']['0']
        for metric in ('segm_AP', 'segm_AP50'):
            assert math.isfinite(cell[metric]) and cell[metric] <= 100
        # what the stage's processes cost: each at least evaluates the val
        # images (a stage forked by the fork server imports nothing; a
        # test of 2 images took 0.4 core-s on a 2-core AMD EPYC), counted
        # only when its guard's answer is
        assert cell['cpu_s'] >= 0.1 and cell['wall_s'] > 0, (key, cell)
    assert results['pretraining_cpu_s'] >= 0.5  # θ_T^0's pre-training
    assert results['cost']['chain_cpu_s']['0'] >= 5 * 0.1
    assert math.isfinite(results['stage3_minus_baseline'])
    # every stage kept its predictions on the 2 val images: split-half
    # standard errors of each row and of each claimed difference
    assert results['eval_noise']['num_val_images'] == 2
    gt_file = osp.join(run['data_root'], 'toy', 'annotations',
                       'instancesonly_filtered_gtFine_val.json')
    per_image = {}
    for key in ROWS:
        predictions = osp.join(wd, 'seed0', 'predictions', f'{key}.segm.json')
        per_image[key] = _per_image_ap(gt_file, predictions)
        _check_split_half_se(results['rows'][key]['eval_se']['0'],
                             per_image[key])
    for name in ('finetune - supervised_student',
                 'finetune - adapt_teacher_selftrain'):
        diff = results['differences'][name]
        assert diff['per_seed']['0'] == pytest.approx(
            results['rows'][name.split(' - ')[0]]['per_seed']['0']['segm_AP'] -
            results['rows'][name.split(' - ')[1]]['per_seed']['0']['segm_AP'],
            abs=0.01)
        first, second = name.split(' - ')
        _check_split_half_se(diff['eval_se']['0'], [
            p - q for p, q in zip(per_image[first], per_image[second])])
    title = {'gdino-sam2': '# CAST on toy (teacher: gdino-sam2): ',
             'sam3': '# CAST on toy (teacher: sam3): ',
             'mask2former': '# CAST on toy: '}[run['teacher']]
    with open(osp.join(wd, 'results.md')) as f:
        table = f.read()
    assert table.startswith(title)
    assert '| eval SE |' in table and 'split-half standard error' in table
    assert 'cost (user + system seconds' in table


def test_jobs_run_stages_side_by_side_after_their_inputs(run):
    """``--jobs 2``: the baseline, made from nothing, starts beside θ_T^0's
    pre-training; every other stage starts after the one it is made from
    has its row."""
    names = ('baseline', 'stage 1a', 'stage 1b', 'stage 2', 'stage 3')
    logs = [(run['first'], names)]
    if run['crashes']:  # all but stage 3 started in the first crashed run
        logs = [(run['crashes'][0].stdout, names[:-1]),
                (run['first'], names[-1:])]
    for log, names in logs:
        starts = {name: log.index(f'[{name}] training') for name in names}
        assert starts.get('baseline', 0) < starts.get('stage 1a', 1)
        for name, upstream in (('stage 1b', 'adapt_teacher'),
                               ('stage 2', 'adapt_teacher_selftrain'),
                               ('stage 3', 'distill')):
            if name in starts:
                assert log.index(f'[seed 0] [{upstream}] mask AP') < \
                    starts[name]


@pytest.mark.parametrize('run', [DEFAULT_TEACHER], indirect=True)
def test_rerun_skips_every_stage(run):
    log = run['second']
    # no stage launched, trained or followed (the batch plan is printed)
    assert '$ ' not in log and '] training (stage' not in log
    assert ' iter ' not in log and 'ETA' not in log
    assert '] training (stage' in run['first']
    assert 'generating' not in log
    for name in ('teacher pre-training (source corpus)', 'stage 1a',
                 'stage 1b', 'stage 2', 'stage 3', 'baseline'):
        assert f'[{name}] done' in log, name
    assert run['rerun_s'] < 60


def test_work_dir_of_another_teacher_is_refused(run):
    args = list(run['args'])
    other = next(t for t in TEACHERS if t != run['teacher'])
    args[args.index(run['teacher'])] = other
    proc = _pipeline_here(args, check=False)
    assert proc.returncode != 0
    assert f'holds the stages of --teacher {run["teacher"]}' in proc.stderr


@pytest.mark.parametrize('run', ['gdino-sam2'], indirect=True)
def test_reuse_from_another_teachers_run_links_what_does_not_use_it(
        run, tmp_path):
    """``--reuse-from`` a run of another teacher: the labels-only student
    is linked, no stage of the teacher nor one trained from it."""
    args = list(run['args'])
    args[args.index(run['teacher'])] = 'mask2former'
    args[args.index('--work-dir') + 1] = str(tmp_path / 'mask2former')
    log = _pipeline_here(args + ['--reuse-from', run['work_dir'],
                                 '--dry-run']).stdout
    assert f'holds the stages of --teacher {run["teacher"]}' in log
    linked = [line.split('] reused from ')[0].lstrip('[')
              for line in log.splitlines() if '] reused from ' in line]
    assert linked == ['baseline']
    assert not osp.exists(str(tmp_path / 'mask2former' / 'seed0'))


def _readme_block(containing: str) -> str:
    """The README's fenced bash block that holds ``containing``."""
    sys.path.insert(0, osp.join(REPO_ROOT, 'tools', 'docs'))
    from doc_commands import bash_blocks
    with open(osp.join(REPO_ROOT, 'README.md'), encoding='utf-8') as f:
        blocks = [b for _, b, _ in bash_blocks(f.read()) if containing in b]
    assert len(blocks) == 1, containing
    return blocks[0]


def test_readme_quickstart_is_the_make_target():
    """The command the README shows for ``make quickstart`` is the one
    the Makefile's recipe runs."""
    shown = _readme_block('make quickstart').split('# = ', 1)[1]
    shown = ' '.join(re.sub(r'\\\n#', ' ', shown).split())
    with open(osp.join(REPO_ROOT, 'Makefile'), encoding='utf-8') as f:
        recipe = f.read().split('\nquickstart: install\n', 1)[1]
    recipe = recipe.split('\n\n', 1)[0].replace('\\\n', ' ')
    recipe = ' '.join(recipe.replace('$(PY)', '.venv/bin/python').split())
    assert shown == recipe


@pytest.mark.parametrize('run', [DEFAULT_TEACHER], indirect=True)
def test_readme_first_run_commands_run_on_the_result(run, tmp_path):
    """The README's publish and picture commands after ``make quickstart``,
    run as shown on this (tiny) run's work dir."""
    block = _readme_block('tools/publish_model.py')
    final = STAGE_ITERS['finetune']
    for shown, here in (('work_dirs/cast_toy_quick', run['work_dir']),
                        ('iter_50.pth', f'iter_{final}.pth'),
                        ('.venv/bin/python', sys.executable),
                        (' checkpoints ', f' {tmp_path}/checkpoints ')):
        assert shown in block, shown
        block = block.replace(shown, here)
    proc = subprocess.run(['bash', '-euc', block], cwd=REPO_ROOT,
                          capture_output=True, text=True,
                          env=dict(os.environ, PYTHONWARNINGS='ignore'))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    published = glob.glob(str(tmp_path / 'checkpoints' / 'cast_r18_quick-*.pth'))
    assert len(published) == 1
    cfg = Config.fromfile(str(tmp_path / 'checkpoints' / 'cast_r18_quick.py'))
    assert cfg.model.type == 'Mask2Former'
    picture = osp.join(run['work_dir'], 'predictions.png')
    assert osp.getsize(picture) > 1000
    with open(picture, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'


# the linking does not depend on the teacher
@pytest.mark.parametrize('run', [DEFAULT_TEACHER], indirect=True)
def test_ablation_trains_the_changed_stages_and_links_the_rest(run, tmp_path):
    """``--reuse-from`` + ``--stage-cfg-options distill:...``: stages 2 and
    3 train in the ablation's work dir with the option, everything else is
    linked from the fixture's run (also through an ablation that linked
    it); a rerun without ``--reuse-from`` keeps the links; one without the
    option would make stages 2 and 3 again (its dry run says so); a rerun
    that changes stage 1b too is refused while stage 1b is a link."""
    work_dir = str(tmp_path / 'ablation')
    args = list(run['args'])
    args[args.index('--work-dir') + 1] = work_dir
    option = 'distill:model.semi_train_cfg.unsup_weight=0.5'
    base_runs = os.listdir(osp.join(run['work_dir'], 'seed0', 'distill'))
    log = _pipeline(args + ['--reuse-from', run['work_dir'],
                            '--stage-cfg-options', option]).stdout
    seed = osp.join(work_dir, 'seed0')
    for key in ('teacher_pretrained', 'adapt_teacher',
                'adapt_teacher_selftrain', 'supervised_student'):
        assert osp.realpath(osp.join(seed, key)) == \
            osp.join(run['work_dir'], 'seed0', key), key
        assert osp.islink(osp.join(seed, 'predictions', f'{key}.segm.json'))
    for key in ('distill', 'finetune'):
        assert not osp.islink(osp.join(seed, key))
        assert osp.isfile(osp.join(seed, key, f'iter_{STAGE_ITERS[key]}.pth'))
    assert '[stage 2] training' in log and '[stage 3] training' in log
    assert '[stage 1b] training' not in log and '[baseline] training' not in log
    dumped = Config.fromfile(osp.join(seed, 'distill',
                                      f'distill_toy{_suffix(run)}.py'))
    assert dumped.model.semi_train_cfg.unsup_weight == 0.5
    with open(osp.join(work_dir, 'results.json')) as f:
        assert set(json.load(f)['rows']) == set(ROWS)
    # nothing of the ablation was written into the fixture's run
    assert os.listdir(osp.join(run['work_dir'], 'seed0', 'distill')) == \
        base_runs
    # an ablation of the ablation: its stage 2 and, through its links, the
    # fixture's stage 1b are reused; stage 3 alone trains
    second_dir = str(tmp_path / 'second')
    second = list(args)
    second[second.index('--work-dir') + 1] = second_dir
    log = _pipeline(second + [
        '--reuse-from', work_dir, '--stage-cfg-options', option,
        'finetune:optim_wrapper.optimizer.lr=5e-05']).stdout
    assert '[stage 3] training' in log and '[stage 2] training' not in log
    assert osp.realpath(osp.join(second_dir, 'seed0', 'distill')) == \
        osp.join(seed, 'distill')
    assert osp.realpath(osp.join(
        second_dir, 'seed0', 'adapt_teacher_selftrain')) == \
        osp.join(run['work_dir'], 'seed0', 'adapt_teacher_selftrain')
    # rerun without --reuse-from (e.g. to add a seed): its links stay
    log = _pipeline_here(args + ['--stage-cfg-options', option]).stdout
    assert '] training' not in log
    assert osp.islink(osp.join(seed, 'adapt_teacher_selftrain'))
    # without the option, its stage 2 is not skipped as done: it is made
    # again, and stage 3 with it (a dry run says so and trains nothing)
    log = _pipeline_here(args + ['--dry-run']).stdout
    assert re.search(r'\[seed 0\] \[stage 2\] is made again: config '
                     r'model\.semi_train_cfg\.unsup_weight: 0\.5 → ', log), log
    assert '[seed 0] [stage 3] is made again: made from [seed 0] [stage 2]' \
        in log and '[stage 1b] is made again' not in log
    proc = _pipeline_here(args + [
        '--reuse-from', run['work_dir'], '--stage-cfg-options', option,
        'adapt_teacher_selftrain:model.semi_train_cfg.unsup_weight=0.5'],
        check=False)
    assert proc.returncode != 0
    assert 'but this run trains stage 1b differently' in proc.stderr
    proc = _pipeline_here(args + ['--stage-cfg-options', 'stage2:a=1'],
                          check=False)
    assert proc.returncode != 0 and "'stage2:a=1'" in proc.stderr
    # a --reuse-from that is no pipeline work dir: one line, nothing written
    missing = str(tmp_path / 'no_such_run')
    third = list(args)
    third[third.index('--work-dir') + 1] = str(tmp_path / 'third')
    proc = _pipeline_here(third + ['--reuse-from', missing], check=False)
    assert proc.returncode != 0
    assert f'--reuse-from {missing}: no pipeline work dir' in proc.stderr
    assert not osp.exists(tmp_path / 'third')


# A row of each ablation table per code path (the other rows differ from
# one of these in a value, e.g. loss:pixel_loss from loss:supervised in
# λ_pxl alone, see tests/apis/pipeline/test_ablations.py) and the stages it
# trains.
ABLATION_RUNS = {
    'loss:supervised': ('adapt_teacher_selftrain', 'distill', 'finetune'),
    'stages:no_adaptation': ('distill', 'finetune'),
    'sampler:uniform': ('distill', 'finetune'),
    'contrast:stride8': ('adapt_teacher', 'adapt_teacher_selftrain',
                         'distill', 'finetune'),
}
STAGE_LABELS = dict(adapt_teacher='stage 1a',
                    adapt_teacher_selftrain='stage 1b', distill='stage 2',
                    finetune='stage 3')


def _dotted(cfg: Config, key: str):
    for part in key.split('.'):
        cfg = cfg[part]
    return cfg


@pytest.mark.parametrize('run', [DEFAULT_TEACHER], indirect=True)
@pytest.mark.parametrize('ablation', sorted(ABLATION_RUNS))
def test_an_ablation_row_trains_what_it_changes_and_names_itself(
        run, ablation, tmp_path):
    """``--ablation TABLE:ROW --reuse-from``: the stages the row changes
    train with its overrides (in the config MMEngine dumped), the others
    are linked; the results table names the row; stages that train L_pxl
    report its monitors (FNR, Δ); stage 2 without teacher adaptation is
    taught by θ_T^0."""
    from mmcast.apis.pipeline.ablations import find_ablation
    row = find_ablation(ablation)
    work_dir = str(tmp_path / 'ablation')
    args = list(run['args'])
    args[args.index('--work-dir') + 1] = work_dir
    log = _pipeline(args + ['--reuse-from', run['work_dir'],
                            '--ablation', ablation]).stdout
    seed = osp.join(work_dir, 'seed0')
    trained = ABLATION_RUNS[ablation]
    for key, label in STAGE_LABELS.items():
        assert (f'[{label}] training' in log) == (key in trained), key
        assert osp.islink(osp.join(seed, key)) == (key not in trained), key
    for key, overrides in row.stage_options.items():
        dumped = Config.fromfile(osp.join(
            seed, key, f'{key}_toy{_suffix(run)}.py'))
        for option, value in overrides:
            assert _dotted(dumped, option) == value, (key, option)
    with open(osp.join(work_dir, 'results.json')) as f:
        results = json.load(f)
    assert results['ablation']['row'] == row.name
    assert set(results['ablation']['columns'].values()) <= set(
        results['rows'])
    with open(osp.join(work_dir, 'results.md')) as f:
        assert f'ablation {row.table}: {row.label}' in f.readline()
    rows = {k: v['per_seed']['0'] for k, v in results['rows'].items()}
    contrast = {k for k in trained if k != 'finetune'} - (
        {'adapt_teacher_selftrain', 'distill'}
        if ablation == 'loss:supervised' else set())
    for key in contrast:
        assert {'pxl_fnr', 'pxl_margin_first', 'pxl_margin_last'} <= set(
            rows[key]), key
        assert 0.0 <= rows[key]['pxl_fnr'] <= 1.0
    if ablation == 'loss:supervised':  # λ_pxl = 0: no L_pxl, no monitors
        assert 'pxl_margin_last' not in rows['distill']
    if row.distill_teacher == 'pretrained':
        dumped = Config.fromfile(osp.join(
            seed, 'distill', f'distill_toy{_suffix(run)}.py'))
        stage_1a = Config.fromfile(osp.join(
            run['work_dir'], 'seed0', 'adapt_teacher',
            f'adapt_teacher_toy{_suffix(run)}.py'))  # starts from θ_T^0
        assert osp.realpath(dumped.model.teacher_checkpoint) == \
            osp.realpath(stage_1a.load_from)
        assert 'toy_foundation' in stage_1a.load_from
        assert results['distill_teacher'] == 'θ_T^0'
    if ablation == 'sampler:uniform':  # its table row, beside the recipe's
        sys.path.insert(0, osp.join(REPO_ROOT, 'tools', 'analysis'))
        import ablation_table
        gt_file = osp.join(run['data_root'], 'toy', 'annotations',
                           'instancesonly_filtered_gtFine_val.json')
        out = str(tmp_path / 'toy_ablation_sampler.json')
        assert ablation_table.main(
            ['sampler', f'uniform={work_dir}', f'fused={run["work_dir"]}',
             '--gt-file', gt_file, '--out', out]) == 0
        with open(out) as f:
            diff = json.load(f)['rows']['uniform']['minus_reference']
        ap = rows['distill']['segm_AP']
        with open(osp.join(run['work_dir'], 'results.json')) as f:
            ref = json.load(f)['rows']['distill']['per_seed']['0']['segm_AP']
        assert diff['per_seed']['0'] == pytest.approx(ap - ref, abs=0.01)
        assert diff['eval_se']['0'] >= 0.0


@pytest.mark.parametrize('run', [DEFAULT_TEACHER], indirect=True)
def test_another_student_trains_its_stages_from_the_same_teachers(
        run, tmp_path):
    """``--student eomt-dinov3-tiny --reuse-from --methods cast gd``:
    stages 2 and 3, the labels-only baseline and Guided Distillation train
    the encoder-only EoMT student (L_pxl on its patch tokens in stage 2),
    stage 2 taught by the fixture's θ_T'' (linked, with θ_T^0, 1a and 1b),
    GD by the EoMT baseline, with the masked attention annealed off within
    GD's (scaled) length; the results table names the student."""
    work_dir = str(tmp_path / 'eomt')
    args = list(run['args'])
    args[args.index('--work-dir') + 1] = work_dir
    log = _pipeline(args + ['--reuse-from', run['work_dir'],
                            '--student', 'eomt-dinov3-tiny',
                            '--methods', 'cast', 'gd']).stdout
    seed = osp.join(work_dir, 'seed0')
    for key in ('adapt_teacher', 'adapt_teacher_selftrain'):
        assert osp.islink(osp.join(seed, key)), key
    for key, label in (('distill', 'stage 2'), ('finetune', 'stage 3'),
                       ('supervised_student', 'baseline'),
                       ('guided_distillation', 'Guided Distillation')):
        assert f'[{label}] training' in log
        assert not osp.islink(osp.join(seed, key))
        dumped, = glob.glob(osp.join(seed, key, '*eomt*.py'))
        model = Config.fromfile(dumped).model
        student = model.student if key in ('distill',
                                           'guided_distillation') else model
        assert student.type == 'EoMTStudent', key
    gd = Config.fromfile(glob.glob(osp.join(
        seed, 'guided_distillation', '*eomt*.py'))[0])
    baseline_iters = STAGE_ITERS['supervised_student']
    assert gd.model.teacher.type == 'EoMTStudent'
    assert osp.realpath(gd.model.teacher_checkpoint) == osp.realpath(
        osp.join(seed, 'supervised_student', f'iter_{baseline_iters}.pth'))
    assert gd.train_cfg.max_iters == baseline_iters
    annealing, = [h for h in gd.custom_hooks
                  if h.type == 'MaskAnnealingHook']
    assert max(annealing.end_iters) <= baseline_iters
    dumped = Config.fromfile(glob.glob(osp.join(seed, 'distill',
                                                '*eomt*.py'))[0])
    assert osp.realpath(dumped.model.teacher_checkpoint) == osp.realpath(
        osp.join(run['work_dir'], 'seed0', 'adapt_teacher_selftrain',
                 f'iter_{STAGE_ITERS["adapt_teacher_selftrain"]}.pth'))
    with open(osp.join(work_dir, 'results.json')) as f:
        results = json.load(f)
    assert results['student'] == 'eomt-dinov3-tiny'
    assert 'pxl_margin_last' in results['rows']['distill']['per_seed']['0']
    with open(osp.join(work_dir, 'results.md')) as f:
        assert '(student: eomt-dinov3-tiny)' in f.readline()


@pytest.mark.parametrize('run', ['gdino-sam2'], indirect=True)
def test_stage_2_can_label_with_the_ensemble_of_both_adapted_teachers(
        run, tmp_path):
    """``--distill-teacher ensemble``: stage 2's teacher is θ_T' and θ_T''
    together (stages 1a and 1b, linked from the fixture's run), one
    ``TeacherEnsemble`` whose pseudo-labels are not θ_T'' alone's;
    ``adapted`` plans θ_T' alone; without CAST the option is refused."""
    work_dir = str(tmp_path / 'ensemble')
    args = list(run['args'])
    args[args.index('--work-dir') + 1] = work_dir
    log = _pipeline(args + ['--reuse-from', run['work_dir'],
                            '--distill-teacher', 'ensemble']).stdout
    assert '[stage 2] training' in log and '[stage 3] training' in log
    assert '[stage 1b] training' not in log
    seed = osp.join(work_dir, 'seed0')
    dumped = Config.fromfile(osp.join(seed, 'distill',
                                      f'distill_toy{_suffix(run)}.py'))
    base = osp.join(run['work_dir'], 'seed0')
    assert [osp.realpath(c) for c in dumped.model.teacher_checkpoint] == [
        osp.join(base, 'adapt_teacher', 'iter_1.pth'),
        osp.join(base, 'adapt_teacher_selftrain', 'iter_1.pth')]
    headers = []
    for root in (seed, base):
        with open(osp.join(root, 'pseudo_labels', 'stage2.json')) as f:
            headers.append(json.load(f)['info']['mmcast_pseudo_labels'])
    assert '(TeacherEnsemble, fusion={' in headers[0]['teacher']
    assert '"score_agg": "vote"' in headers[0]['teacher']
    assert TEACHERS[run['teacher']]['header'] in headers[1]['teacher']
    assert headers[0]['checkpoint_sha256'] != headers[1]['checkpoint_sha256']
    with open(osp.join(work_dir, 'results.json')) as f:
        results = json.load(f)
    assert set(results['rows']) == set(ROWS)
    assert results['distill_teacher'] == "θ_T' + θ_T''"
    with open(osp.join(work_dir, 'results.md')) as f:
        assert "(stage 2's teacher: θ_T' + θ_T'')" in f.readline()
    with open(osp.join(run['work_dir'], 'results.json')) as f:
        assert 'distill_teacher' not in json.load(f)
    args[args.index('--work-dir') + 1] = str(tmp_path / 'adapted')
    plan = _pipeline_here(args + ['--distill-teacher', 'adapted',
                                  '--dry-run']).stdout.splitlines()
    stage_2 = plan[1 + next(i for i, line in enumerate(plan)
                            if line.strip().startswith('[stage 2] train'))]
    adapted = str(tmp_path / 'adapted' / 'seed0' / 'adapt_teacher' /
                  'iter_1.pth')
    assert f'model.teacher_checkpoint={adapted}' in stage_2.split()
    proc = _pipeline_here(args + ['--methods', 'gd', '--distill-teacher',
                                  'adapted', '--dry-run'], check=False)
    assert proc.returncode != 0
    assert '--distill-teacher adapted chooses CAST stage 2' in proc.stderr


# ------------------------------------------------ configs, without training
def _norm(x):
    if isinstance(x, dict):
        return {k: _norm(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_norm(v) for v in x]
    return x


# per foundation-model teacher: the toy model config, its name in the work
# dirs, the suffix of its stage configs, the model type
PROMPTED = {
    'gdino-sam2': ('toy/teacher_gdino-tiny_sam2-tiny_toy.py',
                   'teacher_gdino-tiny_sam2-tiny', 'BoxPromptedTeacher'),
    'sam3': ('toy/teacher_sam3-tiny_toy.py', 'teacher_sam3-tiny',
             'ConceptPromptedTeacher'),
}


@pytest.mark.parametrize('teacher', sorted(PROMPTED))
def test_prompted_teacher_configs_build_one_teacher(teacher, monkeypatch):
    """θ_T^0, 1a, the 1b student and the 2 teacher are one architecture, so
    their checkpoints load into each other; run alone, the stages chain
    through their default work dirs."""
    monkeypatch.delenv('MMCAST_TINY_TEACHERS', raising=False)
    monkeypatch.delenv('MMCAST_TOY_ROOT', raising=False)
    toy_config, name, model_type = PROMPTED[teacher]

    def load(name):
        return Config.fromfile(osp.join(REPO_ROOT, 'configs/mmcast', name))

    ref = load(toy_config).model.to_dict()
    assert ref['type'] == model_type
    adapt = load(f'adapt_teacher_toy_{teacher}.py')
    selftrain = load(f'adapt_teacher_selftrain_toy_{teacher}.py')
    distill = load(f'distill_toy_{teacher}.py')
    source = load(f'toy/{name}_source-pretrain_toy.py')
    student = selftrain.model.student.to_dict()
    assert student.pop('init_cfg') == dict(
        type='Pretrained', checkpoint=adapt.load_from)
    # θ_T^0 stands in for the foundation model's own pre-training: the
    # tiny SAM 3 learns whole there, the box-prompted teacher's SAM 2 its
    # image parts (same architecture, other trained parts); the adaptation
    # stages train their defaults (SAM 2 frozen)
    pretrained = source.model.to_dict()
    key = 'trainable' if teacher == 'sam3' else 'sam2_trainable'
    trainable = pretrained.pop(key)
    assert key not in ref
    if teacher == 'sam3':
        assert {'backbone', 'transformer'} <= set(trainable)
    else:
        assert set(trainable) == {'image_encoder', 'sam_prompt_encoder',
                                  'sam_mask_decoder'}
    for model in (adapt.model.to_dict(), pretrained, student):
        assert _norm(model) == _norm(ref)
    assert selftrain.model.type == 'CASTDistiller'
    # the wrapper preprocesses the batch as the teacher does
    assert _norm(selftrain.model.data_preprocessor.data_preprocessor) == \
        _norm(ref.get('data_preprocessor') or
              ref['detector']['data_preprocessor'])
    for cfg in (selftrain, distill):
        assert cfg.model.teacher == \
            conventional_config(f'adapt_teacher_toy_{teacher}')
    assert distill.model.student.type == 'CASTMask2Former'
    assert source.data_root == 'data/toy_source/'
    assert adapt.train_dataloader.dataset.ann_file.endswith('1@10.json')

    def handed_over(name):
        """The finished checkpoint of config ``name``'s default work dir
        (a short name: that of its conventional config): ``work-dir://``
        finds it whatever length the run had."""
        return f'work-dir://work_dirs/{config_names().get(name, name)}'

    assert adapt.load_from == handed_over(f'{name}_source-pretrain_toy')
    assert selftrain.model.teacher_checkpoint == handed_over(
        f'adapt_teacher_toy_{teacher}')
    assert distill.model.teacher_checkpoint == handed_over(
        f'adapt_teacher_selftrain_toy_{teacher}')


@pytest.mark.parametrize('name', GDINO_CONFIGS + SAM3_CONFIGS)
def test_prompted_teacher_configs_keep_pipeline_override_keys(name):
    """The keys tools/cast_pipeline.py sets exist where it sets them, and
    pseudo-labels do not share a file with the Mask2Former-teacher stage."""
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs/mmcast', f'{name}.py'))
    if name.startswith('adapt_teacher_toy'):
        assert cfg.load_from and cfg.model.type == PROMPTED[
            name.rsplit('_', 1)[1]][2]
        return
    hook = cfg.custom_hooks[0]
    dataset = cfg.train_dataloader.dataset.datasets[1]
    assert hook.type == 'PseudoLabelHook'
    assert dataset.type == 'PseudoLabeledDataset'
    assert hook.out_file == dataset.ann_file == \
        f'work_dirs/{config_names()[name]}/pseudo_labels.json'
    assert cfg.model.teacher_checkpoint
    if name.startswith('adapt_teacher_selftrain'):
        assert cfg.model.student.init_cfg.checkpoint
        assert [h.type for h in cfg.custom_hooks] == ['PseudoLabelHook']
    else:
        assert [h.type for h in cfg.custom_hooks] == [
            'PseudoLabelHook', 'ContrastTemperatureHook']


def test_toy_data_root_follows_the_environment(monkeypatch):
    """MMCAST_TOY_ROOT (set by cast_pipeline.py --data-root) moves every
    path of the toy data, base files included; the default is data/toy/."""
    monkeypatch.setenv('MMCAST_TOY_ROOT', '/elsewhere/toy/')
    cfg = Config.fromfile(
        osp.join(REPO_ROOT, 'configs/mmcast/distill_toy_gdino-sam2.py'))
    assert cfg.train_dataloader.dataset.datasets[0].data_root == \
        '/elsewhere/toy/'
    assert cfg.custom_hooks[0].unlabeled_dataset.data_root == '/elsewhere/toy/'
    assert cfg.val_evaluator[0].ann_file.startswith('/elsewhere/toy/')
    monkeypatch.delenv('MMCAST_TOY_ROOT')
    cfg = Config.fromfile(
        osp.join(REPO_ROOT, 'configs/mmcast/distill_toy.py'))
    assert cfg.val_dataloader.dataset.data_root == 'data/toy/'


def test_guided_distillation_from_the_baseline_joins_the_table(tmp_path):
    """``--methods gd``: the baseline (GD's teacher), then GD; no teacher
    stages; GD's row and its paired difference in the results. With
    ``--student-init source-pretrained`` both students start from the
    backbone pre-trained on the source corpus."""
    import torch

    import mmcast  # noqa: F401  (allow-lists MMEngine's checkpoint globals)
    work_dir = str(tmp_path / 'work')
    _pipeline(['toy', '--methods', 'gd', '--work-dir', work_dir,
               '--data-root', str(tmp_path / 'data'), '--toy-sizes', '8',
               '2', '4', '--toy-image-size', '64', '128',
               '--student-init', 'source-pretrained', '--iters',
               f'pretrain={ITERS["pretrain"]}', 'distill=1', 'finetune=1'])
    assert not osp.exists(osp.join(work_dir, 'toy_foundation'))
    backbone = osp.join(work_dir, 'student_foundation',
                        f'iter_{ITERS["pretrain"]}.pth')
    assert osp.isfile(backbone)
    gd_dir = osp.join(work_dir, 'seed0', 'guided_distillation')
    for stage in ('supervised_student', 'guided_distillation'):
        with open(osp.join(work_dir, 'seed0', stage, 'pipeline.log')) as f:
            assert f'backend from path: {backbone}' in f.read(), stage
    # as long as the baseline (2 iterations), burn-in scaled to 1
    with open(osp.join(gd_dir, 'pipeline.log')) as f:
        assert 'iteration 1: teacher <- student' in f.read()
    state = torch.load(osp.join(gd_dir, 'iter_2.pth'), map_location='cpu',
                       weights_only=True)['state_dict']
    assert any(k.startswith('teacher.') for k in state)
    with open(osp.join(work_dir, 'results.json')) as f:
        results = json.load(f)
    assert set(results['rows']) == {'supervised_student', 'guided_distillation'}
    gain = results['minus_baseline']['guided_distillation']
    assert math.isfinite(gain['mean']) and set(gain['per_seed']) == {'0'}
    with open(osp.join(work_dir, 'results.md')) as f:
        assert '| Guided Distillation student |' in f.read()


def test_results_table_spread_over_seeds(tmp_path):
    """Mean ± sample sd per row and paired per-seed differences."""
    pipeline = pipeline_of('toy', '--work-dir', str(tmp_path), '--seeds',
                           '0', '1', '2')
    aps = dict(supervised_student=[30.0, 32.0, 31.0],
               adapt_teacher_selftrain=[40.0, 39.0, 41.0],
               finetune=[33.0, 36.0, 33.5])
    per_seed = {s: {k: dict(segm_AP=v[s], segm_AP50=2 * v[s])
                    for k, v in aps.items()} for s in range(3)}
    pipeline.write_table(per_seed)
    with open(tmp_path / 'results.json') as f:
        results = json.load(f)
    row = results['rows']['finetune']
    assert row['mean_segm_AP'] == pytest.approx(34.17, abs=0.01)
    assert row['std_segm_AP'] == pytest.approx(1.61, abs=0.01)
    gain = results['differences']['finetune - supervised_student']
    assert gain['per_seed'] == {'0': 3.0, '1': 4.0, '2': 2.5}
    assert gain['mean'] == pytest.approx(3.17, abs=0.01)
    assert gain['std'] == pytest.approx(0.76, abs=0.01)
    assert results['minus_baseline']['finetune'] == gain
    headline = results['differences']['finetune - adapt_teacher_selftrain']
    assert headline['per_seed'] == {'0': -7.0, '1': -3.0, '2': -7.5}
    assert 'eval_noise' not in results  # no predictions given
    with open(tmp_path / 'results.md') as f:
        table = f.read()
    assert '| 34.17 ± 1.61 |' in table
    assert 'CAST student (stage 3) − labels-only student: +3.17 ± 0.76' in table

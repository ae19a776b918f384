# Copyright (c) mmcast contributors. All rights reserved.
"""Smoke-run every real-size CAST config: 2 iterations + one validation.

For each dataset (Cityscapes / ADE20K / COCO) a tiny synthetic dataset is
written in the dataset's real on-disk layout
(:mod:`mmcast.testing.real_layout_data`), then the real-size stage configs
run through stock ``mim train mmdet`` in the order of
``tools/cast_pipeline.py``, chained through the same keys: θ_T^0 → 1a
(``load_from``) → 1b (``model.student.init_cfg`` θ_T^0,
``model.teacher_checkpoint`` 1a, pseudo-labels by its hook) → 2
(``model.teacher_checkpoint`` 1b) → 3 (``model.init_cfg`` 2), and the
labels-only baseline; on Cityscapes each of 2, 3 and the baseline is
followed by its DINOv3-S DPT and EoMT DINOv3-S student configs
(``*_cityscapes_dinov3-s``, ``*_cityscapes_eomt-dinov3-s``: their stage 2
reads the same 1b teacher, their stage 3 their own stage 2). Then
Guided Distillation from the baseline (Cityscapes, COCO; burn-in 1
iteration, so the switch and an EMA update happen). Then the configs of
``configs/mmcast/teachers`` that read the dataset:
``adapt_grounding_dino_cityscapes`` (``mim train``, 2 iterations +
validation), ``grounding_dino_sam2_{cityscapes,ade20k}`` (``mim test
--checkpoint`` the adapted Grounding-DINO on Cityscapes, the random one on
ADE20K), ``teacher_ensemble_cityscapes`` (``mim test``, members: the dumped
Grounding-DINO + SAM 2 config and θ_T^0), ``adapt_sam3_cityscapes``
(``mim train``, SAM 3 in the released layout read by ``load_from``) and
``sam3_cityscapes`` (``mim test --checkpoint`` the adapted SAM 3 teacher),
each test on the validation split with its metrics and a ``--out`` pickle
of predictions. The runs and their hand-offs are read from the stage table
and the stage graph (:mod:`mmcast.testing.smoke_plan`).

``--quick`` runs Cityscapes only, the runs of
:func:`mmcast.testing.smoke_plan.quick_plan`: 1a → pseudo-labels → 1b →
pseudo-labels → 2 → 3, the labels-only baseline, Guided Distillation, the
DINOv3-S student's stage 2 (from the same 1b) and the adaptations (stage
1a) of the box-prompted (Grounding-DINO + SAM 2) and SAM 3 teachers; not
ADE20K / COCO, the test-only teacher configs, nor the DINOv3-S student's
stage 3 and baseline; in the tool's process (``--in-process``, below). On
one GPU it is meant to take at most 5 minutes once the stack is installed
(not measured on a GPU yet). ``--resume`` takes over
the passed runs of an earlier invocation in the same work dir that kept
their checkpoints (``--keep-checkpoints``) instead of running them again:
``--quick --keep-checkpoints``, then ``--datasets cityscapes --resume``,
runs every Cityscapes config once.

Every training run's speed comes from MMEngine's log of its steps
(``scalars.json``, logged every iteration without smoothing) and goes into
the table and ``summary.json``: ``step_seconds`` (median ``time`` of the
steps after the first), ``images_per_second`` (the train batch over it) and
``peak_memory_mb`` (the largest ``memory`` MMEngine logged,
``torch.cuda.max_memory_allocated`` of a step; none on CPU, where MMEngine
logs no memory).

Models keep their architecture (Mask2Former Swin-L, DINOv2-S, DINOv3-S,
MM-Grounding-DINO Swin-L with a bert-base-shaped BERT, SAM 2.1 Hiera-L,
SAM 3 with its ViT-L/14 and 24-layer text encoder) with random weights
written by :mod:`mmcast.testing.real_size_assets`; nothing is downloaded.
Each config is loaded with ``Config.fromfile``, given the smoke overrides
and dumped into its work dir; that dump is what ``mim`` runs:

* data: ``data/<dataset>/...`` paths point into ``<work-dir>/<dataset>/
  data``; the ``CityScapesMetric`` output goes into the run's work dir;
* weights: ``checkpoints/...`` (BERT folder, SAM 2, Grounding-DINO, θ_T^0,
  DINOv3 ViTs, SAM 3 and its BPE vocabulary) point to the random files,
  ``model.teacher`` of 1b / 2 to the dumped 1a config; ``Pretrained``
  ``init_cfg`` entries with a URL are dropped; SAM 3's random weights are
  float16 (1.7 GB), its vocabulary spells only the prompt words;
* length: 2 iterations (epoch-based recipes become iteration-based),
  validation and a weights-only checkpoint at iteration 2, log every
  iteration, each iteration's own values (``log_processor.window_size``
  1); dataloaders without workers;
* every run seeded (``randomness.seed=0``), as are the random weights;
* pseudo-labels: the hook keeps every detection of the random teacher
  (``score_thr=0``, one per query) so that the unlabeled branch trains
  on pseudo-instances; Grounding-DINO + SAM 2 keeps the top 3 boxes
  whatever their score, so SAM 2 always segments 3 boxes per image; SAM 3
  (``num_queries`` 10, 200 in the configs) keeps every query of every
  (view, prompt) pair (``score_thr=0``), 3 instances per image after the
  tile merging and NMS;
* ``--device cpu`` (default): every resize / crop is set to
  ``--image-size``; Mask2Former: ``num_queries`` 20 (200 / 100),
  ``train_cfg.num_points`` 1024; Grounding-DINO: ``num_queries`` 100 (900,
  more than the encoder tokens of a 64x128 image), 1 image per
  adaptation step; SAM 2: ``model.image_size=256`` (1024); SAM 3: 224-px
  input (1008) with 8-patch attention windows (24: 2x2 windows as the
  released 3x3), two square tiles per image without overlap (three, half
  shared), 1 image per adaptation step; no activation checkpointing
  (``with_cp``); ``OptimWrapper`` instead of AMP (MMEngine refuses AMP on
  CPU). ``--device cuda`` keeps all of the configs' own sizes, queries
  (SAM 3's excepted), points and AMP (512x1024 images).

Example::

    python tools/smoke_real_configs.py --work-dir work_dirs/smoke \\
        --datasets cityscapes ade20k coco --device cpu
    python tools/smoke_real_configs.py --quick --device cuda \\
        --work-dir work_dirs/smoke_quick

``--in-process`` runs the script ``mim`` would start (mmdet's
``tools/train.py`` / ``tools/test.py``, with the same arguments) inside the
tool's own process, one config after the other: the stack is imported once
(the test suite's way; about 35 s less per config on a 2-core CPU).

Prints one line per run (status, seconds), then a table (with each training
run's step time, images/s and peak memory); writes
``<work-dir>/summary.json``; deletes every checkpoint once read and the
random weights at the end (``--keep-checkpoints`` keeps them); exits with 1
if a run failed, naming its log and printing its last lines, and with 2,
before writing anything, when the work dir's disk has less than
``FREE_DISK_GIB`` free. Ctrl-C stops it with one line (the runs done, whose
logs are kept) and exit 130, the random weights deleted as at the end.
"""
import argparse
import gc
import json
import os
import os.path as osp
import pickle
import runpy
import shutil
import subprocess
import sys
import time
import traceback
from typing import Any, Callable, Dict, List, Optional

from mmengine.config import Config, ConfigDict

from mmcast.apis import find_item, last_checkpoint, pseudo_label_options
from mmcast.apis.pipeline import REPO_ROOT
from mmcast.apis.pipeline.stage_graph import TEACHER0, stage_graph
from mmcast.testing import forget_visualizers
from mmcast.testing.run_logs import train_speed, val_record
from mmcast.testing.smoke_plan import (QUICK_DATASET, SmokeStep, quick_plan,
                                       smoke_plan)
from mmcast.utils.annealing_windows import scaled_windows
from mmcast.utils.config_text import without_code_formatting
from mmcast.utils.external_config_index import cache_external_config_index
from mmcast.utils.work_dir_checkpoint import WORK_DIR_SCHEME

DATASETS = ('cityscapes', 'ade20k', 'coco')
# the local DINOv3 weights of configs/mmcast/_base_/models/
# dinov3_backbones.py -> the timm model they hold
DINOV3_WEIGHTS = {
    'checkpoints/dinov3_vits16_pretrain_mmcast.pth':
    'vit_small_patch16_dinov3',
    'checkpoints/dinov3_vits16plus_pretrain_mmcast.pth':
    'vit_small_plus_patch16_dinov3',
}
ITERS = 2
# --device cpu: the architectures stay, the work per image shrinks
CPU_NUM_POINTS = 1024  # Mask2Former's train_cfg.num_points (12544)
CPU_NUM_QUERIES = 20  # Mask2Former's num_queries (200 / 100)
# Grounding-DINO's num_queries (900): at most the encoder tokens of a
# 64x128 image (682)
CPU_GDINO_QUERIES = 100
CPU_GDINO_BATCH = 1  # adapt_grounding_dino: train images per iteration (4)
CPU_SAM2_IMAGE_SIZE = 256  # SAM 2's input (1024)
# SAM 3's input (1008 px: 72x72 patches, windowed blocks in 3x3 windows of
# 24): 224 px, 16x16 patches in 2x2 windows of 8 (a window size changes no
# weight, only the RoPE tables); square tiles without overlap (2 per image,
# not 3 with half a tile shared)
CPU_SAM3_ARCH = dict(image_size=224, vit_window_size=8)
CPU_SAM3_TILING = dict(tile_size=0, overlap=0.0, merge_iou_thr=0.5)
CPU_SAM3_BATCH = 1  # adapt_sam3: train images per iteration (2)
# SAM 3's queries per (view, prompt) (200), both devices: with score_thr 0
# every query is an instance before merging (12 prompts x 3 tiles per
# Cityscapes image: 360 instances instead of 7200)
SAM3_QUERIES = 10
# Pseudo-labels: every detection of the random teacher (one per query on
# CPU): its top few can all have empty masks. A teacher trained 2 iterations
# may still find no instance at all (seeded, Cityscapes stage 2 finds none).
PSEUDO_LABEL_FILTER = dict(score_thr=0.0, max_per_image=CPU_NUM_QUERIES,
                           mask_thr=0.5)
# Seeded runs: the random weights, data order and augmentations (and so the
# smoke's outcome) are the same every time on a machine.
SEED = 0
# Grounding-DINO + SAM 2: the random detector's top boxes whatever their
# scores, so that SAM 2 always segments exactly this many per image; SAM 3:
# every query (score_thr 0), this many instances per image after the merging
TEACHER_BOXES = 3
# transform type -> the argument holding its (w, h) size
SIZE_KEYS = {
    'Resize': 'scale',
    'RandomResize': 'scale',
    'FixScaleResize': 'scale',
    'RandomCrop': 'crop_size',
}
LOG_TAIL = 30
# the speed of a training run in the table (mmcast.testing.run_logs)
SPEED_KEYS = ('step_seconds', 'images_per_second', 'peak_memory_mb')
# what the random real-size weights and the checkpoints alive at once take
# at most (SAM 3 adapted: 3.4 GB in fp32), with room to spare
FREE_DISK_GIB = 12


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/smoke_real_configs')
    parser.add_argument('--datasets', nargs='+', choices=DATASETS,
                        help='default: all (--quick: cityscapes only)')
    parser.add_argument(
        '--quick', action='store_true',
        help='Cityscapes only: the stage chain, the labels-only student, '
        'Guided Distillation, the variant students\' stage 2 and the '
        'teachers\' adaptations (mmcast.testing.smoke_plan.quick_plan), '
        'in this process (--in-process)')
    parser.add_argument(
        '--resume', action='store_true',
        help='take over the runs of an earlier invocation in this work dir '
        'that passed and kept their checkpoint (--keep-checkpoints), '
        'e.g. a --quick one, instead of running them again')
    parser.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    parser.add_argument(
        '--image-size', type=int, nargs=2, metavar=('H', 'W'),
        help='size of the synthetic images (default: 64 128 on cpu, '
        '512 1024 on cuda); on cpu also every resize and crop')
    parser.add_argument('--num-images', type=int, nargs=2, default=[4, 2],
                        metavar=('TRAIN', 'VAL'),
                        help='synthetic train / val images per dataset')
    parser.add_argument('--no-stages', action='store_true',
                        help='skip the stage configs (1a ... baseline)')
    parser.add_argument('--no-teachers', action='store_true',
                        help='skip the configs of configs/mmcast/teachers')
    parser.add_argument('--keep-going', action='store_true',
                        help='run the remaining stages after a failure')
    parser.add_argument(
        '--in-process', action='store_true',
        help='run mmdet\'s train / test script (the one mim runs) inside '
        'this process for each config instead of through mim: one '
        'interpreter start and import of the stack for all configs')
    parser.add_argument('--keep-checkpoints', action='store_true',
                        help='keep every checkpoint and the random weights '
                        '(default: delete a checkpoint once read, the '
                        'random weights at the end)')
    args = parser.parse_args(argv)
    if args.quick and args.datasets not in (None, [QUICK_DATASET]):
        parser.error(f'--quick runs {QUICK_DATASET} only, not '
                     f'--datasets {" ".join(args.datasets)}')
    if args.datasets is None:
        args.datasets = [QUICK_DATASET] if args.quick else list(DATASETS)
    args.in_process = args.in_process or args.quick
    return args


# ----------------------------------------------------------- config edits
def config_path(name: str) -> str:
    """``configs/mmcast/<name>.py`` (a short name, or one under a folder of
    ``configs/mmcast/``), relative to the repository."""
    return osp.join('configs', 'mmcast', f'{name}.py')


def walk(node: Any, visit: Callable[[dict], None]) -> None:
    """Call ``visit`` on every dict inside ``node`` (lists and dicts)."""
    if isinstance(node, dict):
        visit(node)
        for value in node.values():
            walk(value, visit)
    elif isinstance(node, (list, tuple)):
        for value in node:
            walk(value, visit)


def smoke_overrides(cfg: Config, work_dir: str, data_dir: str, device: str,
                    image_size: List[int]) -> None:
    """Apply the smoke settings (see the module docstring) in place."""
    height, width = image_size
    data_prefix = osp.join(data_dir, 'data') + '/'
    cpu = device == 'cpu'

    def visit(node: dict) -> None:
        for key, value in node.items():
            if isinstance(value, str) and value.startswith('data/'):
                node[key] = data_prefix + value[len('data/'):]
        if node.get('type') == 'CityScapesMetric':
            node['outfile_prefix'] = osp.join(work_dir, 'cityscapes_metric')
        init_cfg = node.get('init_cfg')
        checkpoint = str((init_cfg or {}).get('checkpoint')) if isinstance(
            init_cfg, dict) else ''
        # a download (the chain sets the previous stage's work-dir:// one)
        if isinstance(init_cfg, dict) and init_cfg.get(
                'type') == 'Pretrained' and '://' in checkpoint and \
                not checkpoint.startswith(WORK_DIR_SCHEME):
            node['init_cfg'] = None
        if node.get('type') == 'PseudoLabelHook':
            node['filter_cfg'] = dict(PSEUDO_LABEL_FILTER)
        if not cpu:
            return
        if node.get('type') in SIZE_KEYS:
            node[SIZE_KEYS[node['type']]] = (width, height)
        if node.get('crop_type') == 'absolute_range':  # (min, max) side
            node['crop_size'] = (min(image_size), max(image_size))
        if node.get('type') == 'RandomChoiceResize':
            node['scales'] = [(width, height)]
        if 'num_points' in node and 'importance_sample_ratio' in node:
            node['num_points'] = CPU_NUM_POINTS  # Mask2Former train_cfg
        if 'num_queries' in node and 'transformer_decoder' in node:
            node['num_queries'] = CPU_NUM_QUERIES  # Mask2Former head
        if 'max_per_image' in node and 'instance_on' in node:
            node['max_per_image'] = min(node['max_per_image'],
                                        CPU_NUM_QUERIES)
        if node.get('with_cp'):  # activation checkpointing: memory only
            node['with_cp'] = False

    walk(cfg._cfg_dict, visit)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if cfg.get(key) is not None:
            cfg[key].num_workers = 0
            cfg[key].persistent_workers = False
    if cfg.get('train_cfg') is None:  # a test-only config
        return
    if cpu and cfg.optim_wrapper.type == 'AmpOptimWrapper':
        cfg.optim_wrapper.type = 'OptimWrapper'
    if 'max_epochs' in cfg.train_cfg:  # an epoch-based recipe
        cfg.train_cfg = ConfigDict(type='IterBasedTrainLoop')
        cfg.param_scheduler = ConfigDict(
            type='ConstantLR', factor=1.0, by_epoch=False, begin=0)
        cfg.merge_from_dict({'log_processor.by_epoch': False,
                             'default_hooks.checkpoint.by_epoch': False})
    for hook in cfg.get('custom_hooks') or []:
        if hook.get('type') == 'MaskAnnealingHook':  # EoMT's, inside ITERS
            hook.start_iters, hook.end_iters = scaled_windows(
                hook.start_iters, hook.end_iters,
                cfg.train_cfg.get('max_iters', ITERS), ITERS)
    cfg.merge_from_dict({
        'randomness.seed': SEED,
        'train_cfg.max_iters': ITERS,
        'train_cfg.val_interval': ITERS,
        'default_hooks.logger.interval': 1,
        'log_processor.window_size': 1,  # each step's own time and memory
        'default_hooks.checkpoint.interval': ITERS,
        'default_hooks.checkpoint.max_keep_ckpts': 1,
        'default_hooks.checkpoint.save_optimizer': False,
        'default_hooks.checkpoint.save_param_scheduler': False,
    })
    if isinstance(cfg.get('param_scheduler'), dict):
        cfg.merge_from_dict({'param_scheduler.end': ITERS})


# ----------------------------------------------------------- running
def count_predictions(pkl_file: str) -> List[int]:
    """Instances with a mask per image of a ``--out`` pickle of mim test."""
    if not osp.isfile(pkl_file):
        return []
    with open(pkl_file, 'rb') as f:
        results = pickle.load(f)
    return [len(r['pred_instances'].get('masks', ())) for r in results]


def tail(path: str, num: int = LOG_TAIL) -> str:
    """The last ``num`` lines of a text file."""
    with open(path, encoding='utf-8', errors='replace') as f:
        return ''.join(f.readlines()[-num:])


def run_script_in_process(command: List[str], work_dir: str,
                           log_file: str) -> int:
    """``mim train|test mmdet <args>`` without mim: mmdet's own script
    (the one mim starts) run in this process, its output into ``log_file``.

    Returns 0, or 1 when the script raised (its traceback in the log).
    MMEngine keeps one visualizer per name and process: the run's is
    dropped afterwards, so that the next run builds its own (save dir).
    """
    import mmdet
    mode, _, config, *options = command
    script = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools',
                      f'{mode}.py')
    positional = [config]
    if '--checkpoint' in options:  # mim test: the script's 2nd positional
        at = options.index('--checkpoint')
        positional.append(options[at + 1])
        del options[at:at + 2]
    argv, cwd, streams = sys.argv, os.getcwd(), (sys.stdout, sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    returncode = 0
    with open(log_file, 'w', encoding='utf-8') as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        # Python's writes through file descriptors 1 and 2 too (loggers
        # keep the stream they were made with: the console's after the run)
        sys.stdout, sys.stderr = (
            open(fd, 'w', buffering=1, encoding='utf-8', closefd=False)
            for fd in (1, 2))
        try:
            sys.argv = [script] + positional + options + [
                '--launcher', 'none', '--work-dir', work_dir]
            os.chdir(REPO_ROOT)
            runpy.run_path(script, run_name='__main__')
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: B902 (SystemExit too)
            if not (isinstance(exc, SystemExit) and not exc.code):
                traceback.print_exc()
                returncode = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            sys.stdout, sys.stderr = streams
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            sys.argv = argv
            os.chdir(cwd)
    forget_visualizers()
    gc.collect()
    return returncode


class SmokeRun:
    """The smoke runs of one invocation (see :func:`parse_args`)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.cpu = args.device == 'cpu'
        self.work_dir = osp.abspath(args.work_dir)
        self.ckpt_dir = osp.join(self.work_dir, 'checkpoints')
        self.image_size = args.image_size or (
            [64, 128] if self.cpu else [512, 1024])
        self.env = dict(os.environ)
        if self.cpu:
            self.env['CUDA_VISIBLE_DEVICES'] = ''
            if args.in_process:  # before anything initialises CUDA
                os.environ['CUDA_VISIBLE_DEVICES'] = ''
        self.results: List[dict] = []
        self.dumped: Dict[str, str] = {}  # config name -> its smoke dump
        self.images_per_step: Dict[str, int] = {}  # config name -> batch
        self.assets: Dict[str, str] = {}
        # --resume: config -> the passed result of an earlier invocation
        self.previous: Dict[str, dict] = {}
        summary = osp.join(self.work_dir, 'summary.json')
        if args.resume and osp.isfile(summary):
            with open(summary, encoding='utf-8') as f:
                self.previous = {r['config']: r for r in json.load(f)[
                    'results'] if r['status'] == 'ok'}

    @property
    def failed(self) -> bool:
        return any(r['status'] != 'ok' for r in self.results)

    def dump_config(self, name: str, ds: str, work_dir: str,
                    options: Dict[str, Any],
                    edit: Optional[Callable[[Config], None]] = None) -> str:
        """``configs/mmcast/<name>.py`` + smoke overrides → work dir."""
        os.makedirs(work_dir, exist_ok=True)
        cfg = without_code_formatting(
            Config.fromfile(osp.join(REPO_ROOT, config_path(name))))
        smoke_overrides(cfg, work_dir, osp.join(self.work_dir, ds),
                        self.args.device, self.image_size)
        walk(cfg.get('model'), self.local_weights)
        cfg.merge_from_dict(options)
        if edit is not None:
            edit(cfg)
        config = osp.join(work_dir, f'{osp.basename(name)}.py')
        cfg.dump(config)
        self.dumped[name] = config
        if cfg.get('train_dataloader') is not None:
            self.images_per_step[name] = cfg.train_dataloader.batch_size
        return config

    def local_weights(self, node: dict) -> None:
        """Point a ``Pretrained`` init_cfg at local DINOv3 weights to the
        random ones (``walk`` visitor)."""
        init_cfg = node.get('init_cfg')
        if isinstance(init_cfg, dict) and init_cfg.get(
                'checkpoint') in DINOV3_WEIGHTS:
            init_cfg['checkpoint'] = self.asset(
                'dinov3:' + DINOV3_WEIGHTS[init_cfg['checkpoint']])

    def mim(self, command: List[str], work_dir: str) -> tuple:
        """Run ``mim <command>`` → (return code, seconds, log file); with
        ``--in-process`` the script mim runs, in this process."""
        log_file = osp.join(work_dir, 'smoke.log')
        start = time.time()
        if self.args.in_process:
            returncode = run_script_in_process(command, work_dir, log_file)
        else:
            mim = osp.join(osp.dirname(sys.executable), 'mim')
            with open(log_file, 'w', encoding='utf-8') as log:
                returncode = subprocess.run(
                    [mim] + command + ['--work-dir', work_dir],
                    cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                    env=self.env).returncode
        return returncode, round(time.time() - start, 1), log_file

    def record(self, ok: bool, **result) -> None:
        result['status'] = 'ok' if ok else 'failed'
        self.results.append(result)
        print(f'[{result["dataset"]} {result["stage"]:>8}] '
              f'{result["status"]:6} {result["seconds"]:7.1f} s  '
              f'{result["config"]}', flush=True)
        if not ok:
            print(f'--- last lines of {result["log"]}:\n'
                  f'{tail(result["log"])}---', flush=True)

    def train(self, ds: str, name: str, label: str, options: Dict[str, Any],
              metric: str = 'coco/segm_mAP',
              edit: Optional[Callable[[Config], None]] = None,
              handoffs: Optional[Dict[str, str]] = None) -> Optional[str]:
        """Dump the smoke config of ``name``, ``mim train`` it → checkpoint.

        Returns the checkpoint of iteration 2, or None when the run failed.
        With ``--resume``, a run that passed before and kept its checkpoint
        is taken over (its result, ``"resumed": true``) instead.
        """
        work_dir = osp.join(self.work_dir, ds, osp.basename(name))
        config = self.dump_config(name, ds, work_dir, options, edit)
        done = self.previous.get(config_path(name))
        if done and done.get('checkpoint') and osp.isfile(
                done['checkpoint']):
            self.record(True, **dict(done, resumed=True))
            return done['checkpoint']
        returncode, seconds, log_file = self.mim(
            ['train', 'mmdet', config], work_dir)
        checkpoint = last_checkpoint(work_dir)
        metrics = val_record(work_dir)
        ok = (returncode == 0 and checkpoint is not None
              and checkpoint.endswith(f'iter_{ITERS}.pth')
              and metric in metrics)
        predicted = osp.join(work_dir, 'cityscapes_metric', 'results')
        self.record(
            ok, config=config_path(name), dataset=ds, stage=label,
            seconds=seconds, returncode=returncode, checkpoint=checkpoint,
            checkpoint_bytes=osp.getsize(checkpoint) if checkpoint else 0,
            metrics=metrics, log=log_file, handoffs=handoffs or {},
            # the images CityScapesMetric wrote a prediction file of
            cityscapes_images=len([
                f for f in os.listdir(predicted) if f.endswith('_pred.txt')
            ]) if osp.isdir(predicted) else 0,
            **train_speed(work_dir, self.images_per_step[name]))
        return checkpoint if ok else None

    def test(self, ds: str, name: str, checkpoint: str,
             options: Dict[str, Any],
             edit: Optional[Callable[[Config], None]] = None) -> None:
        """Dump the smoke config of ``name``, ``mim test`` it on val."""
        work_dir = osp.join(self.work_dir, ds, osp.basename(name))
        config = self.dump_config(name, ds, work_dir, options, edit)
        out = osp.join(work_dir, 'predictions.pkl')
        returncode, seconds, log_file = self.mim(
            ['test', 'mmdet', config, '--checkpoint', checkpoint, '--out',
             out], work_dir)
        metrics = val_record(work_dir)
        instances = count_predictions(out)
        ok = (returncode == 0 and 'coco/segm_mAP' in metrics
              and len(instances) == self.args.num_images[1])
        self.record(
            ok, config=config_path(name), dataset=ds, stage='test',
            seconds=seconds, returncode=returncode, metrics=metrics,
            instances_per_image=instances, log=log_file)

    def skip(self, ds: str, name: str, label: str) -> None:
        """Record a stage whose input checkpoint is missing."""
        self.results.append(dict(config=config_path(name), dataset=ds,
                                 stage=label, status='skipped', seconds=0.0))
        print(f'[{ds} {label:>8}] skipped (previous stage failed)',
              flush=True)

    def discard(self, path: Optional[str]) -> None:
        """Delete a checkpoint nobody reads any more (disk)."""
        if path is not None and osp.isfile(path) and \
                not self.args.keep_checkpoints:
            os.remove(path)

    # ------------------------------------------------------------ stages
    def write_data(self, ds: str) -> None:
        from mmcast.testing.real_layout_data import write_real_layout_dataset
        num_train, num_val = self.args.num_images
        write_real_layout_dataset(ds, osp.join(self.work_dir, ds),
                                  num_train=num_train, num_val=num_val,
                                  height=self.image_size[0],
                                  width=self.image_size[1])

    def run_stages(self, ds: str, steps: List[SmokeStep]) -> None:
        """The stage runs of ``ds`` in order, each handed the checkpoints
        of the steps it reads (the stage graph's hand-offs, θ_T^0 the random
        one); a checkpoint is deleted once its last reader ran."""
        teacher0 = self.asset('teacher0')
        graph = stage_graph()
        # model.teacher of the stages with pseudo-labels: the dumped 1a
        teacher_config = next(
            (s.name for s in steps if s.stage == 'adapt_teacher'), None)
        last_reader = {name: at for at, step in enumerate(steps)
                       for _, name in step.reads}
        checkpoints: Dict[str, Optional[str]] = {}
        for at, step in enumerate(steps):
            if any(checkpoints.get(name) is None for _, name in step.reads):
                self.skip(ds, step.name, step.label)
                continue
            node = graph[step.stage]
            found = {src: checkpoints[name] for src, name in step.reads}
            found[TEACHER0] = teacher0
            options = node.handoff_overrides(found).as_dict()
            if node.pseudo_labels:
                options = dict(self.pseudo_options(
                    ds, step, self.dumped[teacher_config]), **options)
            if step.stage == 'guided_distillation':
                options.update(self.gd_options(ds, step.name))
            checkpoints[step.name] = self.train(
                ds, step.name, step.label, options, handoffs={
                    key: found[src] for key, src in node.handoffs})
            for name, ckpt in checkpoints.items():
                if last_reader.get(name, at) <= at:
                    self.discard(ckpt)
            if self.failed and not self.args.keep_going:
                return

    def pseudo_options(self, ds: str, step: SmokeStep,
                       teacher_config: str) -> Dict[str, Any]:
        """The pseudo-label file of a stage with a ``PseudoLabelHook``
        (beside its work dir) and its teacher's config."""
        out = osp.join(self.work_dir, ds, step.stage + step.name[len(
            f'{step.stage}_{ds}'):], 'pseudo_labels.json')
        cfg = Config.fromfile(osp.join(REPO_ROOT, step.config))
        # model.teacher: the dumped 1a config (smoke sizes)
        return dict(pseudo_label_options(cfg, out).as_dict(),
                    **{'model.teacher': teacher_config})

    def gd_options(self, ds: str, name: str) -> Dict[str, Any]:
        """Guided Distillation's smoke options: CAST's labeled split, a
        burn-in of 1 iteration, every query a pseudo-instance."""
        gd_cfg = Config.fromfile(osp.join(REPO_ROOT, config_path(name)))
        labeled = find_item(gd_cfg, 'train_dataloader.dataset.datasets',
                            'ClassBalancedDataset')
        hook = find_item(gd_cfg, 'custom_hooks', 'GuidedTeacherHook')
        return {
            # the labeled split the data writer made (CAST's)
            f'{labeled}.dataset.ann_file':
            Config.fromfile(osp.join(REPO_ROOT, config_path(
                f'distill_{ds}'))).labeled_dataset.ann_file,
            # iteration 1 of 2 in burn-in, then the switch; EMA from 3
            f'{hook}.burn_in_iters': 1,
            # every query of the random teacher not classed "no object"
            # becomes a pseudo-instance (as PSEUDO_LABEL_FILTER)
            'model.semi_train_cfg.pseudo_label_rule.score_thr': 0.0,
            'model.semi_train_cfg.pseudo_label_rule.min_mask_area': 0.0}

    # ---------------------------------------------------------- teachers
    def asset(self, key: str) -> str:
        """A random real-size checkpoint (written once per invocation)."""
        if key in self.assets:
            return self.assets[key]
        from mmcast.testing import real_size_assets as assets
        start = time.time()
        if key == 'teacher0':
            path = assets.write_teacher0(
                osp.join(self.ckpt_dir, 'teacher0_mask2former_swin-l.pth'),
                num_queries=CPU_NUM_QUERIES if self.cpu else None)
        elif key == 'bert':
            from mmdet.datasets import ADE20KInstanceDataset, CocoDataset
            path = assets.write_bert_base(
                osp.join(self.ckpt_dir, 'bert-base'),
                CocoDataset.METAINFO['classes'] +
                ADE20KInstanceDataset.METAINFO['classes'] + ('rider', ))
        elif key == 'grounding_dino':
            path = assets.write_grounding_dino_swin_l(
                osp.join(self.ckpt_dir, 'grounding_dino_swin-l.pth'),
                self.asset('bert'),
                num_queries=CPU_GDINO_QUERIES if self.cpu else None)
        elif key == 'sam2':
            path = assets.write_sam2_hiera_l(
                osp.join(self.ckpt_dir, 'sam2.1_hiera_l.pt'))
        elif key == 'sam3_bpe':
            model = Config.fromfile(osp.join(REPO_ROOT, config_path(
                'teachers/sam3_cityscapes'))).model
            path = assets.write_sam3_bpe(
                osp.join(self.ckpt_dir, 'sam3_bpe.txt.gz'),
                list(model.classes) + [
                    p for ps in model.class_prompts.values() for p in ps])
        elif key == 'sam3':
            path = assets.write_sam3(
                osp.join(self.ckpt_dir, 'sam3.pt'), self.asset('sam3_bpe'),
                self.sam3_arch())
        else:  # dinov3:<timm arch>
            arch = key.split(':', 1)[1]
            path = assets.write_dinov3_vit(
                osp.join(self.ckpt_dir, f'{arch}.pth'), arch)
        print(f'random {key}: {path} ({time.time() - start:.1f} s)',
              flush=True)
        self.assets[key] = path
        return path

    def grounding_options(self) -> Dict[str, Any]:
        """Local BERT / SAM 2, smoke sizes, the top boxes of the detector."""
        det = {'language_model.name': self.asset('bert')}
        sam2 = dict(checkpoint=self.asset('sam2'))
        if self.cpu:
            det['num_queries'] = CPU_GDINO_QUERIES
            sam2['hydra_overrides'] = [
                f'model.image_size={CPU_SAM2_IMAGE_SIZE}']
        return {'model.detector_cfg_options': det, 'model.sam2': sam2,
                'model.score_thr': 0.0, 'model.max_per_img': TEACHER_BOXES}

    def sam3_arch(self) -> Dict[str, int]:
        """SAM 3's architecture overrides of the smoke (see the docstring)."""
        arch = {'num_queries': SAM3_QUERIES}
        if self.cpu:
            arch.update(CPU_SAM3_ARCH)
        return arch

    def sam3_options(self, weights: bool) -> Dict[str, Any]:
        """Local vocabulary, smoke sizes, every query an instance; the
        random SAM 3 read at build time (``weights``) or not."""
        options = {
            'model.sam3.arch': self.sam3_arch(),
            'model.sam3.bpe_path': self.asset('sam3_bpe'),
            'model.sam3.checkpoint': self.asset('sam3') if weights else None,
            'model.score_thr': 0.0, 'model.max_per_img': TEACHER_BOXES}
        if self.cpu:
            options['model.tiling'] = dict(CPU_SAM3_TILING)
        return options

    def run_teachers(self, ds: str, steps: List[SmokeStep]) -> None:
        """The runs of configs of configs/mmcast/teachers that read ``ds``
        (a test config reads the adapted teacher when its adaptation ran,
        else the random one)."""
        gdino = None  # the Grounding-DINO the test configs load
        sam3 = None  # the SAM 3 teacher sam3_<ds> loads
        for step in steps:
            name, how = step.name, step.how
            if name.startswith('teachers/adapt_sam3'):
                # the released layout read by load_from (the teacher's
                # load pre-hook), the model built without weights
                options = dict(self.sam3_options(weights=False),
                               load_from=self.asset('sam3'))
                if self.cpu:
                    options['train_dataloader.batch_size'] = CPU_SAM3_BATCH
                sam3 = self.train(ds, name, 'adapt', options)
            elif name.startswith('teachers/sam3'):
                # the adapted teacher's checkpoint, SAM 3 read at build time
                self.test(ds, name, sam3 or self.asset('sam3'),
                          self.sam3_options(weights=True))
                self.discard(sam3)
            elif how == 'train':  # adapt_grounding_dino_cityscapes
                options = {'load_from': self.asset('grounding_dino'),
                           'model.language_model.name': self.asset('bert')}
                if self.cpu:
                    options.update({
                        'model.num_queries': CPU_GDINO_QUERIES,
                        'train_dataloader.batch_size': CPU_GDINO_BATCH})
                gdino = self.train(ds, name, 'adapt', options,
                                   metric='coco/bbox_mAP')
                if gdino is None:
                    gdino = self.asset('grounding_dino')
            elif 'ensemble' in name:
                def members(cfg: Config) -> None:
                    box, mask2former = cfg.model.teachers
                    box.config = self.dumped[
                        f'teachers/grounding_dino_sam2_{ds}']
                    box.checkpoint = gdino
                    mask2former.checkpoint = self.asset('teacher0')
                    if self.cpu:
                        mask2former.cfg_options.update({
                            'panoptic_head.num_queries': CPU_NUM_QUERIES,
                            'test_cfg.max_per_image': CPU_NUM_QUERIES})
                # mim test needs a checkpoint; no key of the Grounding-DINO
                # one matches the ensemble's (teachers.0.detector...): the
                # members keep the weights of their own checkpoints
                self.test(ds, name, gdino, {}, edit=members)
            else:
                self.test(ds, name, gdino or self.asset('grounding_dino'),
                          self.grounding_options())
            if self.failed and not self.args.keep_going:
                return
        if gdino is not None and gdino != self.assets.get('grounding_dino'):
            self.discard(gdino)
        self.discard(sam3)

    # --------------------------------------------------------------- all
    def run(self) -> int:
        os.makedirs(self.work_dir, exist_ok=True)
        free = shutil.disk_usage(self.work_dir).free
        if free < FREE_DISK_GIB * 2**30:
            print(f'{self.work_dir}: {free / 2**30:.1f} GiB free; the smoke '
                  f'run needs about {FREE_DISK_GIB} GiB there (random '
                  'real-size weights and checkpoints): free space or choose '
                  'another --work-dir', file=sys.stderr)
            return 2
        start = time.time()
        try:
            for ds in self.args.datasets:
                self.write_data(ds)
                steps = quick_plan() if self.args.quick else smoke_plan(ds)
                if not self.args.no_stages:
                    self.run_stages(ds, [s for s in steps if s.stage])
                if not self.args.no_teachers and (
                        not self.failed or self.args.keep_going):
                    self.run_teachers(ds, [s for s in steps if not s.stage])
                if self.failed and not self.args.keep_going:
                    break
        except KeyboardInterrupt:  # Ctrl-C: one line, exit 130
            if not self.args.keep_checkpoints:
                shutil.rmtree(self.ckpt_dir, ignore_errors=True)
            print(f'interrupted after {len(self.results)} runs (their logs '
                  f'are kept in {self.work_dir}, no summary.json); the smoke '
                  'runs do not resume: run the same command to start again',
                  file=sys.stderr, flush=True)
            return 130
        if not self.args.keep_checkpoints:
            shutil.rmtree(self.ckpt_dir, ignore_errors=True)
        total = round(time.time() - start, 1)
        self.write_summary(total)
        return 1 if self.failed else 0

    def write_summary(self, total: float) -> None:
        """Print the table, write ``summary.json``, name failed logs."""
        def cell(value: Any) -> str:
            return '—' if value is None else str(value)

        lines = ['| config | status | seconds | step s | images/s | peak '
                 'memory MB |', '|---|---|---|---|---|---|']
        lines += [f'| {r["config"]} | {r["status"]} | {r["seconds"]} | ' +
                  ' | '.join(cell(r.get(k)) for k in SPEED_KEYS) + ' |'
                  for r in self.results]
        lines.append(f'| total | {"FAILED" if self.failed else "ok"} | '
                     f'{total} | | | |')
        print('\n'.join(lines), flush=True)
        for r in self.results:
            if r['status'] == 'failed':
                print(f'FAILED {r["config"]}: see {r["log"]}', flush=True)
        with open(osp.join(self.work_dir, 'summary.json'), 'w',
                  encoding='utf-8') as f:
            json.dump(dict(device=self.args.device, quick=self.args.quick,
                           image_size=self.image_size, total_seconds=total,
                           results=self.results), f, indent=2)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    # each scoped base config's look-up read once (MMEngine parses every
    # metafile of MMDetection per look-up: seconds a config)
    cache_external_config_index()
    if args.in_process:
        # the imported stack left out of every collection: MMEngine's
        # datasets collect twice a build, with the heap of every run
        gc.collect()
        gc.freeze()
    return SmokeRun(args).run()


if __name__ == '__main__':
    sys.exit(main())

# Copyright (c) mmcast contributors. All rights reserved.
"""Bad input to the user-facing tools fails early, names the file and never
ends in an empty result reported as success."""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from conftest import REPO_ROOT
from test_pseudo_labels import (FakeTeacher, capture_print_log,
                                labeling_cfg, make_data)

import mmcast  # noqa: F401
from mmcast.pseudo_labels import (UnreadableImagesError, label_unlabeled_set,
                                  make_header, read_header, stale_reason,
                                  write_pseudo_label_json)
from mmcast.utils.checkpoint_loading import (CheckpointError,
                                             check_weights_fit,
                                             load_checkpoint_file)

TOY_MODEL = osp.join(REPO_ROOT,
                     'configs/mmcast/_base_/models/mask2former_r18_toy.py')
TOY_DATA = osp.join(REPO_ROOT,
                    'configs/mmcast/_base_/datasets/toy_cityscapes_instance.py')
TRAIN_ANN = 'annotations/instancesonly_filtered_gtFine_train.json'


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    """Private sha256 cache; mmdet scope for datasets built by hand."""
    from mmengine.registry import DefaultScope
    monkeypatch.setenv('MMCAST_CACHE_DIR', str(tmp_path / 'cache'))
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, osp.join(REPO_ROOT, 'tools', script), *args],
        cwd=REPO_ROOT, capture_output=True, text=True,
        env=dict(os.environ, PYTHONPATH=REPO_ROOT, OMP_NUM_THREADS='2',
                 PYTHONWARNINGS='ignore'))


def _truncated_checkpoint(path: str) -> str:
    torch.save(dict(state_dict=dict(w=torch.zeros(4096))), path + '.full')
    with open(path + '.full', 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) // 2])
    return path


def _teacher_config(tmp_path) -> str:
    cfg = tmp_path / 'teacher.py'
    cfg.write_text(f"_base_ = ['{TOY_MODEL}', '{TOY_DATA}']\n"
                   "custom_imports = dict(imports=['mmcast'])\n")
    return str(cfg)


# ------------------------------------------------------------ checkpoints
def test_unloadable_checkpoints_are_refused_in_one_line(tmp_path):
    trunc = _truncated_checkpoint(str(tmp_path / 'trunc.pth'))
    with pytest.raises(CheckpointError, match='truncated') as e:
        load_checkpoint_file(trunc)
    assert str(e.value).startswith(trunc) and '\n' not in str(e.value)
    text = tmp_path / 'notes.pth'
    text.write_text('not a checkpoint')
    with pytest.raises(CheckpointError, match='not a PyTorch checkpoint'):
        load_checkpoint_file(str(text))
    with pytest.raises(FileNotFoundError, match='nowhere.pth'):
        load_checkpoint_file(str(tmp_path / 'nowhere.pth'))

    model = torch.nn.Linear(3, 2)
    with pytest.raises(CheckpointError, match='another architecture: none'):
        check_weights_fit('other.pth', model,
                          dict(state_dict={'backbone.w': torch.zeros(1)}))
    with pytest.raises(CheckpointError, match=r'weight is \[5, 3\]'):
        check_weights_fit('five.pth', model, dict(state_dict=dict(
            weight=torch.zeros(5, 3), bias=torch.zeros(2))))
    assert check_weights_fit('ok.pth', model,
                             dict(state_dict=model.state_dict())) == []


def test_pseudo_label_tool_truncated_checkpoint_one_line(tmp_path):
    make_data(str(tmp_path), num=2)
    trunc = _truncated_checkpoint(str(tmp_path / 'teacher.pth'))
    out = tmp_path / 'pl.json'
    proc = _run('pseudo_label.py', _teacher_config(tmp_path), trunc,
                '--unlabeled-ann', str(tmp_path / 'u.json'), '--data-root',
                str(tmp_path), '--img-prefix', 'img/', '--out', str(out))
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith('error')]
    assert len(errors) == 1 and trunc in errors[0] and 'truncated' in errors[0]
    assert 'Traceback' not in proc.stderr and not out.exists()


# ------------------------------------------------------- unreadable images
def test_pseudo_label_tool_wrong_image_folder_writes_nothing(
        tmp_path, toy_data_root):
    """The issue's case: the default folder came from the test split."""
    out = tmp_path / 'pl.json'
    ckpt = str(tmp_path / 'teacher.pth')
    torch.save(dict(state_dict={}), ckpt)
    proc = _run('pseudo_label.py', _teacher_config(tmp_path), ckpt,
                '--unlabeled-ann', TRAIN_ANN, '--data-root',
                toy_data_root + '/', '--img-prefix', 'leftImg8bit/val/',
                '--out', str(out))
    assert proc.returncode != 0
    assert 'leftImg8bit/val/' in proc.stderr and 'cannot be read' in proc.stderr
    assert 'Traceback' not in proc.stderr and not out.exists()


def test_default_image_folder_follows_the_annotation_split(toy_data_root):
    from mmengine.config import Config

    from mmcast.pseudo_labels import default_img_prefix, split_of

    assert split_of('a/instancesonly_filtered_gtFine_train.1@10-unlabeled'
                    '.json') == 'train'
    assert split_of('instances_val2017.json') == 'val2017'
    cfg = Config.fromfile(TOY_DATA)
    root = toy_data_root + '/'
    prefix, why = default_img_prefix(cfg, TRAIN_ANN, root,
                                     'leftImg8bit/val/')
    assert prefix == 'leftImg8bit/train/', why
    # no dataset of that split in the config: the test folder's split
    cfg.train_dataloader.dataset.ann_file = 'annotations/other.json'
    prefix, why = default_img_prefix(cfg, TRAIN_ANN, root,
                                     'leftImg8bit/val/')
    assert prefix == 'leftImg8bit/train/' and 'val -> train' in why


def test_more_than_threshold_unreadable_stops_at_or_below_skips(tmp_path):
    import json

    make_data(str(tmp_path), num=19, corrupt=True)  # 21 images
    os.remove(tmp_path / 'img' / 'garbage.png')  # 2 of 21 missing: 9.5 %
    out = str(tmp_path / 'pl.json')
    teacher = FakeTeacher()
    with pytest.raises(UnreadableImagesError) as e:
        label_unlabeled_set(teacher, labeling_cfg(tmp_path), out,
                            header=dict(teacher='fake'))
    # the missing files are found before the teacher runs
    assert 'garbage.png' in str(e.value) and teacher.batches == 0
    assert str(tmp_path / 'img') in str(e.value) and not osp.exists(out)

    with open(tmp_path / 'u.json') as f:
        coco = json.load(f)
    coco['images'] = [im for im in coco['images'] if im['id'] != 901]
    with open(tmp_path / 'u.json', 'w') as f:  # 1 of 20 missing: 5 %
        json.dump(coco, f)
    res = label_unlabeled_set(FakeTeacher(), labeling_cfg(tmp_path), out,
                              header=dict(teacher='fake'))
    assert res['num_skipped'] == 1
    assert read_header(out)['num_skipped'] == 1


def test_undecodable_images_over_threshold_write_nothing(tmp_path):
    import json

    make_data(str(tmp_path), num=3, corrupt=True)
    with open(tmp_path / 'u.json') as f:
        coco = json.load(f)
    coco['images'] = [im for im in coco['images'] if im['id'] != 901]
    with open(tmp_path / 'u.json', 'w') as f:  # 1 of 4 does not decode
        json.dump(coco, f)
    out = str(tmp_path / 'pl.json')
    with pytest.raises(UnreadableImagesError, match='garbage.png'):
        label_unlabeled_set(FakeTeacher(), labeling_cfg(tmp_path), out,
                            header=dict(teacher='fake'))
    assert not osp.exists(out)
    assert not [p for p in os.listdir(tmp_path) if '.partial.' in p]


# --------------------------------------------------- stale pseudo-labels
def test_stale_reason_names_the_case(tmp_path):
    unl = make_data(str(tmp_path), num=1)
    ckpt = tmp_path / 'teacher.pth'
    ckpt.write_bytes(b'weights v1')
    out = str(tmp_path / 'pl.json')
    header = make_header('teacher.py', str(ckpt), unl, None)
    assert 'does not exist' in stale_reason(out, header)
    write_pseudo_label_json(out, header, [], [], [])
    assert stale_reason(out, header) is None
    ckpt.write_bytes(b'weights v2')
    assert 'another teacher checkpoint' in stale_reason(
        out, make_header('teacher.py', str(ckpt), unl, None))
    with open(unl, 'a') as f:
        f.write(' ')
    assert 'another unlabeled set' in stale_reason(
        out, make_header('teacher.py', str(ckpt), unl, None))
    with open(out, 'rb') as f:
        data = f.read()
    with open(out, 'wb') as f:  # the header survives, the end does not
        f.write(data[:-3])
    assert 'not valid json' in stale_reason(out, header)


def test_truncated_pseudo_labels_are_regenerated(tmp_path, monkeypatch):
    import mmcast.pseudo_labels.labeling_job as job_mod
    from test_pseudo_labels import test_hook_end_to_end_with_runner

    # a runner with the hook writes pl/pseudo.json (then finds it current)
    test_hook_end_to_end_with_runner(tmp_path)
    out = tmp_path / 'pl' / 'pseudo.json'
    data = out.read_bytes()
    out.write_bytes(data[:len(data) - 40])  # cut short, header intact
    logged = capture_print_log(monkeypatch, job_mod)
    test_hook_end_to_end_with_runner(tmp_path)  # relabels, then current
    assert any('not valid json' in m and 'pseudo-labeling' in m
               for m in logged), logged
    assert read_header(str(out))['num_images'] == 4


# -------------------------------------------------------------- pipeline
def _pipeline(*args: str) -> subprocess.CompletedProcess:
    return _run('cast_pipeline.py', *args)


def test_pipeline_missing_dataset_and_truncated_checkpoint(tmp_path):
    trunc = _truncated_checkpoint(str(tmp_path / 'teacher0.pth'))
    proc = _pipeline('cityscapes', '--work-dir', str(tmp_path / 'wd'),
                     '--pretrained-teacher', trunc)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    err = proc.stderr
    assert 'Traceback' not in err and 'no stage was started' in err
    assert f'{trunc}: truncated' in err
    for name in ('instancesonly_filtered_gtFine_val.json', 'gtFine/val',
                 'instancesonly_filtered_gtFine_train.1@perc_10.json',
                 'instancesonly_filtered_gtFine_train.1@perc_10-unlabeled'
                 '.json'):
        assert name in err, name
    # the command that writes the split, Guided Distillation's list
    assert 'write it with: python tools/split_semi.py ' in err
    assert '--image-list cityscapes/perc_10 --out-dir ' in err
    assert not osp.exists(tmp_path / 'wd' / 'seed0')

    missing = str(tmp_path / 'no_teacher.pth')
    proc = _pipeline('cityscapes', '--work-dir', str(tmp_path / 'wd'),
                     '--pretrained-teacher', missing, '--dry-run')
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr
    assert f'missing checkpoint {missing}' in proc.stderr
    assert '[stage 2] train configs/mmcast/distill_cityscapes.py' in \
        proc.stdout


def test_pipeline_dry_run_on_toy_data(tmp_path, toy_data_root):
    """Generated data are not required before they are made; a wrong
    image folder on existing toy data is."""
    args = ['toy', '--work-dir', str(tmp_path / 'wd'), '--data-root',
            str(tmp_path / 'data'), '--iters', '1', '1', '1', '1', '1',
            '--dry-run']
    proc = _pipeline(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'preflight: ok' in proc.stdout
    assert not osp.exists(tmp_path / 'data')
    proc = _pipeline(*args, '--cfg-options',
                     'val_dataloader.dataset.data_prefix.img=leftImg8bit/'
                     'train/',
                     f'val_dataloader.dataset.data_root={toy_data_root}/')
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert 'sampled images of' in proc.stderr
    assert 'Traceback' not in proc.stderr

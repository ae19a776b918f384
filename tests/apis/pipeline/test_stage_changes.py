# Copyright (c) mmcast contributors. All rights reserved.
"""Finished stages are made again as make does
(:mod:`~mmcast.apis.pipeline.stage_changes`): an edited stage config, an
edited ``_base_`` file, a replaced checkpoint a config names each make their
readers again with one line naming what changed; an edited source file of
mmcast keeps the stages and marks their rows, ``--redo-on-code-change``
makes them again; ``--dry-run`` says the same and trains nothing; a test
stage is tested again; two nodes take node 0's decision.

The stages' processes only write their files (``conftest.run_writing``);
the configs are a copy of the repository's, edited as a user would."""
import json
import os
import os.path as osp
import re
import shutil
import socket
import subprocess
import sys

import pytest
import torch

from conftest import REPO_ROOT, pipeline_of, run_writing
from mmcast.evaluation import write_results_table
from mmcast.utils.stage_state import COMPLETION_FILE

ITERS = ('--iters', 'pretrain=2', '1a=2', '1b=2', '2=2', '3=2',
         '--progress-interval', '1000')


@pytest.fixture(autouse=True)
def _pinned(pinned_code):
    """mmcast's code as this module's runs see it: its own copy."""


@pytest.fixture
def repo(tmp_path):
    """A copy of the repository's configs that the tests edit."""
    shutil.copytree(osp.join(REPO_ROOT, 'configs'), tmp_path / 'repo' /
                    'configs')
    return tmp_path / 'repo'


def _toy(tmp_path, repo, *extra):
    pipeline = pipeline_of('toy', '--work-dir', str(tmp_path / 'w'),
                           '--data-root', str(tmp_path / 'data'), *ITERS,
                           *extra)
    pipeline.loader.root = str(repo)  # the stages' configs: the copy's
    return pipeline


def _edit(path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, (path, old)
    path.write_text(text.replace(old, new))


def _made_again(out: str) -> dict:
    """``{stage label: reasons}`` of the run's 'is made again' lines."""
    return dict(re.findall(r'^(\[.*?\](?: \[.*?\])?) is made again: (.*)$',
                           out, re.M))


def _made_then_temperature_edited(tmp_path, repo, capsys) -> None:
    """Every stage made, then L_pxl's temperature edited in the toy
    students' and teachers' ``_base_`` model file."""
    run_writing(_toy(tmp_path, repo), capsys)
    _edit(repo / 'configs' / 'mmcast' / '_base_' / 'models' /
          'cast_mask2former_r18_toy.py', 'temperature=0.3',
          'temperature=0.25')


def test_an_edited_stage_config_makes_it_again_naming_the_key(
        tmp_path, repo, capsys):
    run_writing(_toy(tmp_path, repo), capsys)
    config = repo / 'configs' / 'mmcast' / 'cast' / \
        'cast-finetune_mask2former-r18_1xb4-200it_toy-semi-10p.py'
    _edit(config, 'lr=1e-4', 'lr=2e-4')
    ran, rows, out = run_writing(_toy(tmp_path, repo), capsys)
    assert ran == ['finetune'], ran
    assert _made_again(out) == {'[seed 0] [stage 3]': (
        'config optim_wrapper.optimizer.lr: 0.0001 → 0.0002')}, out
    ran, _, out = run_writing(_toy(tmp_path, repo), capsys)
    assert ran == [] and 'made again' not in out  # made: current now


def test_an_edited_base_file_makes_its_readers_and_what_follows_again(
        tmp_path, repo, capsys):
    _made_then_temperature_edited(tmp_path, repo, capsys)
    ran, _, out = run_writing(_toy(tmp_path, repo), capsys)
    # L_pxl's temperature: read by the teacher's adaptation (1a, and θ_T^0
    # tested with 1a's config) and the student's distillation, not by the
    # pre-training, stage 3 or the labels-only student
    assert ran == ['teacher_pretrained', 'adapt_teacher',
                   'adapt_teacher_selftrain', 'distill', 'finetune'], ran
    edit = 'panoptic_head.loss_pixel_contrast.temperature: 0.3 → 0.25'
    again = _made_again(out)
    assert again['[seed 0] [stage 1a]'] == f'config model.{edit}', out
    assert again['[seed 0] [stage 2]'].startswith(
        f'config model.student.{edit}; made from [seed 0] [stage 1b]')
    assert again['[seed 0] [stage 3]'] == \
        'made from [seed 0] [stage 2], which is made again'


def test_a_replaced_checkpoint_named_in_a_config_makes_its_reader_again(
        tmp_path, repo, capsys):
    backbone = tmp_path / 'r18_backbone.pth'
    torch.save(dict(state_dict=dict(w=torch.zeros(2))), backbone)
    with open(repo / 'configs' / 'mmcast' / 'supervised_student_toy.py',
              'a') as f:
        f.write(f'model = dict(backbone=dict(init_cfg=dict('
                f'_delete_=True, type="Pretrained", '
                f'checkpoint="{backbone}")))\n')
    run_writing(_toy(tmp_path, repo), capsys)
    record = json.load(open(tmp_path / 'w' / 'seed0' / 'supervised_student' /
                            COMPLETION_FILE))
    assert str(backbone) in record['inputs']
    torch.save(dict(state_dict=dict(w=torch.ones(2))), backbone)
    ran, _, out = run_writing(_toy(tmp_path, repo), capsys)
    assert ran == ['supervised_student'], ran
    assert _made_again(out) == {
        '[seed 0] [baseline]': f'{backbone} changed since it was made'}, out


def test_an_edited_source_file_marks_the_rows_until_they_are_made_again(
        tmp_path, repo, pinned_code, capsys):
    _, first, _ = run_writing(_toy(tmp_path, repo), capsys)
    loss = osp.join(pinned_code, 'models', 'losses',
                    'instance_aware_pixel_contrast_loss.py')
    with open(loss, 'a') as f:
        f.write('# an edit\n')
    ran, rows, out = run_writing(_toy(tmp_path, repo), capsys)
    assert ran == [] and 'made again' not in out, ran
    note = re.search(r'\[seed 0\] \[stage 3\] is kept, (made by code '
                     r'\w{8}, now \w{8} \(mmcast/models/losses/'
                     r'instance_aware_pixel_contrast_loss.py changed\)): '
                     r'its row is marked', out)
    assert note, out
    assert rows['finetune']['code'] == note.group(1)
    assert {k: r['segm_AP'] for k, r in rows.items()} == \
        {k: r['segm_AP'] for k, r in first.items()}
    write_results_table({0: rows}, str(tmp_path), 'toy', 'CAST')
    table = (tmp_path / 'results.md').read_text()
    assert f'CAST student after stage 3 (seed 0): {note.group(1)}' in \
        table, table

    ran, rows, out = run_writing(
        _toy(tmp_path, repo, '--redo-on-code-change'), capsys)
    assert set(ran) == set(first) | {'toy_foundation'}, ran
    assert not any('code' in row for row in rows.values())
    ran, rows, out = run_writing(_toy(tmp_path, repo), capsys)
    assert ran == [] and 'is kept, made by code' not in out


def test_a_dry_run_says_what_a_run_would_make_again_and_trains_nothing(
        tmp_path, repo, capsys):
    from mmcast.apis.pipeline.errors import PreflightFailed
    _made_then_temperature_edited(tmp_path, repo, capsys)
    before = sorted(os.listdir(tmp_path / 'w' / 'seed0'))
    try:  # the toy data was never generated: the preflight says so
        _toy(tmp_path, repo, '--dry-run').run()
    except PreflightFailed:
        pass
    dry = _made_again(capsys.readouterr().out)
    assert sorted(os.listdir(tmp_path / 'w' / 'seed0')) == before
    ran, _, out = run_writing(_toy(tmp_path, repo), capsys)
    assert dry == _made_again(out) and '[seed 0] [stage 2]' in dry, \
        (dry, out)


def test_a_test_stage_has_a_record_and_is_tested_again_with_its_checkpoint(
        tmp_path, repo, capsys):
    run_writing(_toy(tmp_path, repo), capsys)
    record = json.load(open(tmp_path / 'w' / 'seed0' / 'teacher_pretrained' /
                            COMPLETION_FILE))
    assert '<work_dir>/toy_foundation/iter_2.pth' in record['inputs']
    path = tmp_path / 'w' / 'seed0' / 'teacher_pretrained' / COMPLETION_FILE
    record['versions']['mmdet'] = '0.0.1'
    path.write_text(json.dumps(record))
    ran, _, out = run_writing(_toy(tmp_path, repo), capsys)
    assert ran == ['teacher_pretrained'], ran
    assert _made_again(out) == {'[seed 0] [teacher_pretrained]': (
        'mmdet 0.0.1 → ' + record_versions()['mmdet'])}, out


def record_versions() -> dict:
    from mmcast.apis.pipeline.provenance import package_versions
    return package_versions()


NODE = '''
import json, os, sys, time
sys.path[:0] = [{repo!r}, {tests!r}]
from conftest import _WritingRunner, pipeline_of, run_writing
from mmcast.apis.pipeline import provenance
provenance.PACKAGE_DIR = {package!r}
rank = int(sys.argv[1])
writing = _WritingRunner.get()
write = writing._run


def joined(self, stage, cmd):
    """As torchrun's rendezvous: a stage starts once both nodes join it."""
    os.makedirs({barrier!r}, exist_ok=True)
    mine = os.path.join({barrier!r}, stage.key + '.' + str(rank))
    open(mine, 'w').close()
    other = os.path.join({barrier!r}, stage.key + '.' + str(1 - rank))
    deadline = time.time() + 120
    while not os.path.exists(other):
        assert time.time() < deadline, 'the other node never joined ' + mine
        time.sleep(0.05)
    write(self, stage, cmd)


writing._run = joined
pipeline = pipeline_of(
    'toy', '--work-dir', {work_dir!r}, '--data-root', {data!r},
    '--launcher', 'pytorch', '--nnodes', '2', '--node-rank', str(rank),
    '--master-port', '{port}', *{iters!r})
pipeline.loader.root = {configs!r}
ran, _, _ = run_writing(pipeline)
print('RAN', json.dumps(ran))
'''


def _free_port_pair() -> int:
    """A port ``p`` with ``p`` and ``p + 1`` free now."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0))
            port = s.getsockname()[1]
        with socket.socket() as s:
            try:
                s.bind(('127.0.0.1', port + 1))
                return port
            except OSError:
                continue
    raise RuntimeError('no two free ports in a row')


def test_two_nodes_make_a_changed_stage_again_together(
        tmp_path, repo, pinned_code, capsys):
    # made on one node with two processes: the same global batch and lr
    run_writing(_toy(tmp_path, repo, '--launcher', 'pytorch', '--nproc',
                     '2'), capsys)
    _edit(repo / 'configs' / 'mmcast' / 'cast' /
          'cast-finetune_mask2former-r18_1xb4-200it_toy-semi-10p.py',
          'lr=1e-4', 'lr=2e-4')
    script = tmp_path / 'node.py'
    script.write_text(NODE.format(
        repo=REPO_ROOT, tests=osp.join(REPO_ROOT, 'tests'),
        package=pinned_code, work_dir=str(tmp_path / 'w'),
        data=str(tmp_path / 'data'), port=_free_port_pair(), iters=ITERS,
        configs=str(repo), barrier=str(tmp_path / 'joined')))
    env = dict(os.environ, OMP_NUM_THREADS='1')
    nodes = [subprocess.Popen([sys.executable, str(script), str(rank)],
                              stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, env=env,
                              cwd=REPO_ROOT) for rank in (1, 0)]
    outs = [node.communicate(timeout=240)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], \
        [out[-3000:] for out in outs]
    ran = [json.loads(re.search(r'^RAN (.*)$', out, re.M).group(1))
           for out in outs]
    assert ran == [['finetune'], ['finetune']], outs
    for out in outs:  # the lr at batch 2: square-root rule
        assert '[seed 0] [stage 3] is made again: config optim_wrapper.' \
            'optimizer.lr: 0.000141421 → 0.000282843\n' in out, out

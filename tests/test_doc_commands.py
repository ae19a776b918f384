# Copyright (c) mmcast contributors. All rights reserved.
"""Every command shown in README.md and docs/ is checked against the
repository (``tools/docs/doc_commands.py``), and the checker finds a
planted fault of each kind it checks. The README's first-run commands
also run at tiny size in ``tests/test_cast_pipeline.py``."""
import os.path as osp
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

sys.path.insert(0, osp.join(REPO_ROOT, 'tools', 'docs'))
import doc_commands  # noqa: E402


def test_every_documented_command_checks():
    result = subprocess.run(
        [sys.executable, osp.join(REPO_ROOT, 'tools/docs/doc_commands.py')],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert 'every command of the documentation checked' in result.stdout


def test_commands_of_a_block():
    block = ('W=work_dirs/run/finetune   # the stage\n'
             'python tools/publish_model.py $W/cfg.py $W/iter_5.pth out \\\n'
             '    --name m   # -> out/m-<sha8>.pth\n'
             'NNODES=2 bash tools/dist_train.sh cfg.py 8 && make docs\n'
             'python -c "import a; print(1)" | tail -1\n'
             'for p in 1 2 5; do\n'
             '  python tools/split_semi.py x.json --percent $p\n'
             'done\n'
             'mim test mmdet m.py --checkpoint m-<sha8>.pth ...\n')
    assert doc_commands.block_commands(block) == [
        ['python', 'tools/publish_model.py', 'work_dirs/run/finetune/cfg.py',
         'work_dirs/run/finetune/iter_5.pth', 'out', '--name', 'm'],
        ['bash', 'tools/dist_train.sh', 'cfg.py', '8'],
        ['make', 'docs'],
        ['python', '-c', 'import a; print(1)'],
        ['tail', '-1'],
        ['python', 'tools/split_semi.py', 'x.json', '--percent', '1'],
        ['mim', 'test', 'mmdet', 'm.py', '--checkpoint', 'm-00000000.pth',
         'PLACEHOLDER'],
    ]


def test_export_is_an_assignment():
    block = ('export PYTHONPATH=$PWD:$PYTHONPATH\n'
             'export C=projects/swinmtl/configs\n'
             'mim train mmseg $C/swinmtl_swinv2-tiny_toy.py\n')
    assert doc_commands.block_commands(block) == [
        ['mim', 'train', 'mmseg',
         'projects/swinmtl/configs/swinmtl_swinv2-tiny_toy.py']]


def test_files_made_by_the_steps_are_read_above_a_block():
    text = ('A config:\n\n<!-- files made by the steps: a.py b.py -->\n\n'
            '```bash\nmim train mmdet a.py\n```\n\n```bash\nmake docs\n```\n')
    assert [(n, m) for n, _, m in doc_commands.bash_blocks(text)] == [
        (5, {'a.py', 'b.py'}), (9, set())]


@pytest.mark.parametrize('command, problem', [
    ('python tools/split_semi.py a.json --percnt 10',
     'tools/split_semi.py: its arguments were refused (exit 2)'),
    ('.venv/bin/python tools/cast_pipeline.py toy --work-dir w --no-such-option',
     'tools/cast_pipeline.py: its arguments were refused'),
    ('python tools/no_such_tool.py --help', 'no script tools/no_such_tool.py'),
    ('python -c "from mmcast.apis import NoSuchThing"',
     'python -c: mmcast.apis has no NoSuchThing'),
    ('python -c "import mmcast.no_such_module"',
     "python -c: No module named 'mmcast.no_such_module'"),
    ('python -c "print(1"', 'python -c: '),
    ('python -m no_such_module', 'no module no_such_module'),
    ('mim train mmdet configs/mmcast/no_such_config.py',
     'no config configs/mmcast/no_such_config.py'),
    ('mim train mmdet checkpoints/cast_r18_toy.py',
     'no config checkpoints/cast_r18_toy.py'),
    ('mim train mmdett configs/mmcast/finetune_toy.py',
     'mim train: unknown package mmdett'),
    ('mim download mmcast --config no_such_model --dest .',
     'mim download: no model no_such_model in the metafiles'),
    ('mim train mmcast no_such_model.py', 'no config no_such_model.py'),
    ('make no-such-target', 'make -n no-such-target: '),
    ('bash tools/no_such.sh', 'no script tools/no_such.sh'),
    ('rm -rf work_dirs', 'unknown program rm'),
])
def test_a_planted_fault_is_found(command, problem):
    [words] = doc_commands.block_commands(command)
    found = doc_commands.check_command(words, REPO_ROOT)
    assert found is not None and found.startswith(problem), found


@pytest.mark.parametrize('command', [
    'python tools/split_semi.py a.json --percent 10 --seed 1 --out-dir d',
    'mim train mmdet configs/mmcast/finetune_toy.py',
    # what mim download mmcast --config NAME writes
    'mim train mmcast supervised_mask2former-r18_1xb4-1800it_toy-10p.py',
    'make -n quickstart',
    'bash tools/dist_train.sh configs/mmcast/distill_cityscapes.py 8',
    'python -c "from mmcast.apis import run_pipeline"',
    'pip install -e .',
    # a project's config (custom_imports from the repository root) and tool
    'mim train mmseg projects/swinmtl/configs/swinmtl_swinv2-tiny_toy.py',
    'python projects/swinmtl/tools/show_depth_seg.py c.py c.pth --out-dir d',
])
def test_a_right_command_passes(command):
    [words] = doc_commands.block_commands(command)
    assert doc_commands.check_command(words, REPO_ROOT) is None


def test_made_files_and_config_load_errors(tmp_path):
    (tmp_path / 'broken.py').write_text('model = dict(\n')
    problem = doc_commands.check_command(
        ['mim', 'train', 'mmdet', 'broken.py'], str(tmp_path))
    assert problem.startswith('broken.py does not load: ')
    assert doc_commands.check_command(
        ['mim', 'train', 'mmdet', 'made.py'], str(tmp_path),
        {'made.py'}) is None


def test_the_checker_names_the_file_and_line(tmp_path):
    (tmp_path / 'docs').mkdir()
    (tmp_path / 'docs' / 'page.md').write_text(
        '# Page\n\n```bash\nmake docs\nrm -rf x\n```\n')
    problems = doc_commands.check_file('docs/page.md', str(tmp_path))
    assert problems == ['docs/page.md:3: rm -rf x: unknown program rm: '
                        'check it here or name it in EXTERNAL']

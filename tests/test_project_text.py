# Copyright (c) mmcast contributors. All rights reserved.
"""The project speaks of the project alone: no tracked text file (README,
docs, configs, code, tests, scripts) names a path outside the repository or
how the work on it was organised."""
import os.path as osp
import re
import subprocess

import pytest

OUTSIDE = 'a path outside the repository'
RELATIVE_PATH = re.compile(r'(?:\.\./)+[\w.-]*')
# (what it is, pattern)
FORBIDDEN = (
    ('an issue number', r'\bissues? ?#?\d+\b|\bissue #\d+'),
    ('how the work was organised',
     r'\b(in|of|during) this session\b|\bthis task\b|\bwas lent\b|'
     r'\blent to\b|\bhelper agent\b'),
)
# files whose text is data (lists of names, vocabularies)
DATA = re.compile(r'^mmcast/datasets/splits/.*\.txt$')


def findings(text: str, where: str = 'README.md') -> list:
    """``(line number, what)`` of every forbidden phrase in ``text``, the
    text of the file ``where`` (relative to the repository): relative paths
    are resolved from its folder and must stay inside the repository."""
    found = []
    folder = osp.dirname(where)
    for line_no, line in enumerate(text.splitlines(), 1):
        for match in RELATIVE_PATH.findall(line):
            if osp.normpath(osp.join(folder, match)).startswith('..'):
                found.append((line_no, OUTSIDE))
        for what, pattern in FORBIDDEN:
            if re.search(pattern, line, re.IGNORECASE):
                found.append((line_no, what))
    return found


@pytest.mark.parametrize('text, what', [
    ('see ../shared/data_splits/cityscapes/perc_10.txt',
     'a path outside the repository'),
    ('the GD lists of issue 18 are used', 'an issue number'),
    ('fixed in #12 (issue #12)', 'an issue number'),
    ('no GPU was lent to this task', 'how the work was organised'),
    ('measured in this session', 'how the work was organised'),
])
def test_the_check_finds_each_kind(text, what):
    assert findings('fine line\n' + text) == [(2, what)]


def test_ordinary_text_passes():
    assert findings('ONNX Runtime session; a pytest session fixture;\n'
                    'scope="session"; shared base; 3 issues remain open') \
        == []
    # relative paths are resolved from the file's folder
    text = 'see ../../_base_/datasets/semi_coco_instance.py'
    assert findings(text, 'configs/mmcast/custom/x.py') == []
    assert findings(text, 'configs/x.py') == [(1, OUTSIDE)]


def test_no_tracked_file_speaks_of_the_work_or_outside_paths(repo_root):
    files = subprocess.run(['git', 'ls-files'], cwd=repo_root,
                           capture_output=True, text=True,
                           check=True).stdout.split('\n')
    bad = []
    for path in filter(None, files):
        if DATA.match(path) or path == 'tests/test_project_text.py':
            continue
        try:
            with open(f'{repo_root}/{path}', encoding='utf-8') as f:
                text = f.read()
        except (UnicodeDecodeError, FileNotFoundError):
            continue  # binary (figures) or deleted in the working tree
        bad += [f'{path}:{n}: {what}' for n, what in findings(text, path)]
    assert not bad, '\n'.join(bad)

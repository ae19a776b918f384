# Copyright (c) mmcast contributors. All rights reserved.
"""Check every shell command shown in the documentation.

Every command of the fenced ``bash`` blocks of ``README.md``,
``docs/**/*.md``, ``configs/**/README.md`` and ``projects/*/README.md`` is
checked against the repository without running the work it describes:

- ``python tools/X.py ARGS`` (any Python, ``.venv/bin/python`` too): the
  script exists and its argument parser accepts ``ARGS`` (the script runs
  up to its ``parse_args`` and is stopped there);
- ``python -c CODE``: the code compiles and every name it imports exists;
  ``python -m MODULE``: the module can be imported;
- ``mim train|test PACKAGE CONFIG``: the config file loads; a bare config
  name is one that ``mim download mmcast --config NAME`` writes (a model of
  the metafiles); ``mim search|download mmcast --config NAME``: the
  metafiles name that model;
- ``make TARGET``: ``make -n TARGET`` (dry run) succeeds;
  ``bash tools/X.sh``: the script exists and ``bash -n`` parses it;
- the programs of :data:`EXTERNAL` (installers, ``mim install`` too,
  downloads, viewers, file utilities) are not checked, and any other
  program is a problem.

A config that the steps make (written by hand in the page, or by
``tools/publish_model.py``) is named in a ``<!-- files made by the steps:
PATH ... -->`` line right above the block.

Placeholders are filled in first: ``<sha8>``, ``...`` and ``$NAME`` of an
assignment earlier in the block (``W=work_dirs/...``, ``export W=...``).
The checks run with the repository root on ``sys.path``, as the projects'
commands do (``export PYTHONPATH=$PWD:$PYTHONPATH``). The commands that
the tests also run at tiny size are those of the first run in the README
(``tests/test_cast_pipeline.py``). Example::

    python tools/docs/doc_commands.py      # exit 1, one line a problem
"""
import argparse
import ast
import contextlib
import importlib
import importlib.util
import io
import os
import os.path as osp
import re
import runpy
import shlex
import subprocess
import sys
import warnings
from typing import Dict, Iterator, List, Optional, Set, Tuple

from update_tables import REPO_ROOT, load_metafiles, markdown_files

# programs whose commands are shown but not checked, and why
EXTERNAL = {
    'pip': 'installs packages',
    'huggingface-cli': 'downloads released weights',
    'tensorboard': 'a viewer',
    'cp': 'a file utility',
    'sed': 'a file utility',
}
PYTHON = re.compile(r'^(?:\S*/)?python3?$')
# a comment right above a block naming files that the steps before it, or the
# block itself, make (a config written by hand, a published model's config):
# taken as present
MADE_ABOVE = re.compile(r'^<!--\s*files made by the steps:\s*(.*?)\s*-->$')
MIM_PACKAGES = ('mmdet', 'mmseg', 'mmpretrain', 'mmcast')
# what a placeholder stands for while checking
PLACEHOLDERS = (('<sha8>', '0' * 8), ('...', 'PLACEHOLDER'))
# a script whose command line goes through argparse: its own, or that of
# mmcast.apis.pipeline
PARSES = re.compile(r'\bargparse\b|\bfrom mmcast\.apis\.pipeline import main\b')
OPERATORS = {'&&', '||', ';', '|', '&'}
ASSIGNMENT = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*=')


class _Parsed(Exception):
    """Raised by the patched argument parser once the arguments parsed."""


def bash_blocks(text: str) -> Iterator[Tuple[int, str, Set[str]]]:
    """``(line number, text, files made above)`` of each fenced ``bash``
    block; the files are those of a ``<!-- files made by the steps: A B
    -->`` line above it."""
    lines = text.splitlines()
    start = None
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if start is None and stripped.startswith('```bash'):
            start, body = number, []
            before = [b.strip() for b in lines[:number - 1] if b.strip()]
            above = MADE_ABOVE.match(before[-1]) if before else None
            made = set(above.group(1).split()) if above else set()
        elif start is not None and stripped.startswith('```'):
            yield start, '\n'.join(body), made
            start = None
        elif start is not None:
            body.append(line)


def block_commands(block: str) -> List[List[str]]:
    """The commands of a block as argument lists: continuation lines
    joined, comments dropped, ``&&``/``;``/``|`` split, ``NAME=value``
    (``export`` too) assignments substituted into later ``$NAME``, a ``for
    V in A ...; do``
    loop taken with ``V`` = its first value, placeholders filled in."""
    text = re.sub(r'\\\n', ' ', block)
    variables: Dict[str, str] = {}
    commands = []
    for line in text.splitlines():
        loop = re.match(r'^\s*for (\w+) in (\S+)[^;]*;\s*do\s*$', line)
        if loop:
            variables[loop.group(1)] = loop.group(2)
            continue
        if line.strip() == 'done':
            continue
        for name, value in PLACEHOLDERS:
            line = line.replace(name, value)
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words: List[str] = []
        for token in list(lexer) + [';']:
            if token not in OPERATORS:
                words.append(token)
                continue
            if words[:1] == ['export']:  # export NAME=value: an assignment
                words = words[1:]
            while words and ASSIGNMENT.match(words[0]):
                name, value = words.pop(0).split('=', 1)
                if not words:  # a plain assignment: remembered
                    variables[name] = value
            words = [re.sub(r'\$(\w+)',
                            lambda m: variables.get(m.group(1), m.group(0)),
                            w) for w in words]
            if words:
                commands.append(words)
            words = []
    return commands


def _run_parser(script: str, args: List[str]) -> Optional[str]:
    """Run ``script`` up to its argument parser with ``args``; a problem,
    or None once the arguments parsed."""
    with open(script, encoding='utf-8') as f:
        if not PARSES.search(f.read()):
            return None  # no parser to ask: its existence is the check
    original = (argparse.ArgumentParser.parse_args,
                argparse.ArgumentParser.parse_known_args)

    inside = []  # parse_args calls parse_known_args: stop at the outer one

    def parse(parser, *a, **kw):
        inside.append(parser)
        try:
            original[0](parser, *a, **kw)
        finally:
            inside.pop()
        raise _Parsed

    def parse_known(parser, *a, **kw):
        if inside:
            return original[1](parser, *a, **kw)
        original[1](parser, *a, **kw)
        raise _Parsed

    argv, cwd = sys.argv, os.getcwd()
    argparse.ArgumentParser.parse_args = parse
    argparse.ArgumentParser.parse_known_args = parse_known
    sys.argv = [script] + args
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors), \
                contextlib.redirect_stdout(io.StringIO()):
            runpy.run_path(script, run_name='__main__')
    except _Parsed:
        return None
    except SystemExit as e:
        said = errors.getvalue().strip().splitlines()
        return f'its arguments were refused (exit {e.code})' + (
            f': {said[-1]}' if said else '')
    finally:
        sys.argv = argv
        os.chdir(cwd)
        (argparse.ArgumentParser.parse_args,
         argparse.ArgumentParser.parse_known_args) = original
    return 'it ran to the end without parsing arguments'


def _check_code(code: str) -> Optional[str]:
    try:
        tree = ast.parse(code)
    except SyntaxError as e:
        return f'python -c: {e.msg}'
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [(a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [(node.module, a.name) for a in node.names]
        else:
            continue
        for module, name in modules:
            try:
                imported = importlib.import_module(module)
            except ImportError as e:
                return f'python -c: {e}'
            if name is not None and not hasattr(imported, name):
                return f'python -c: {module} has no {name}'
    return None


def _check_python(words: List[str], root: str) -> Optional[str]:
    if words[1] == '-c':
        return _check_code(words[2])
    if words[1] == '-m':
        if importlib.util.find_spec(words[2]) is None:
            return f'no module {words[2]}'
        return None
    script = osp.join(root, words[1])
    if not osp.isfile(script):
        return f'no script {words[1]}'
    problem = _run_parser(script, words[2:])
    return problem and f'{words[1]}: {problem}'


def _mim_models(root: str) -> Dict[str, str]:
    """Metafile model name -> its config's file name."""
    return {name: osp.basename(model['Config'])
            for name, model in load_metafiles(root).items()}


def _check_mim(words: List[str], root: str,
               made: Set[str]) -> Optional[str]:
    from mmengine.config import Config
    verb = words[1]
    if verb == 'install':
        return None  # installs packages, as pip
    if verb in ('search', 'download'):
        if '--config' in words:
            name = words[words.index('--config') + 1]
            if name not in _mim_models(root):
                return f'mim {verb}: no model {name} in the metafiles'
        return None
    if verb not in ('train', 'test') or len(words) < 4:
        return f'mim {verb}: not a command the documentation may show'
    package, config = words[2], words[3]
    if package not in MIM_PACKAGES:
        return f'mim {verb}: unknown package {package}'
    if config in made:
        return None
    path = osp.join(root, config)
    if osp.isfile(path):
        try:
            Config.fromfile(path)
        except Exception as e:  # noqa: BLE001 - any load error is the finding
            return f'{config} does not load: {type(e).__name__}: {e}'
        return None
    if package == 'mmcast' and '/' not in config:
        if config in _mim_models(root).values():
            return None  # what mim download mmcast --config NAME writes
    return f'no config {config}'


def _check_make(words: List[str], root: str) -> Optional[str]:
    result = subprocess.run(['make', '-n', '-C', root] + words[1:],
                            capture_output=True, text=True)
    if result.returncode:
        return f'make -n {" ".join(words[1:])}: {result.stderr.strip()}'
    return None


def _check_bash(words: List[str], root: str) -> Optional[str]:
    script = osp.join(root, words[1])
    if not osp.isfile(script):
        return f'no script {words[1]}'
    result = subprocess.run(['bash', '-n', script], capture_output=True,
                            text=True)
    if result.returncode:
        return f'bash -n {words[1]}: {result.stderr.strip()}'
    return None


def check_command(words: List[str], root: str,
                  made: Set[str] = frozenset()) -> Optional[str]:
    """A problem of one command, or None; ``made``: the files the steps
    before it make."""
    program = osp.basename(words[0]) if words[0].startswith('.venv/') \
        else words[0]
    if PYTHON.match(program):
        return _check_python(words, root)
    if program == 'mim':
        return _check_mim(words, root, made)
    if program == 'make':
        return _check_make(words, root)
    if program == 'bash':
        return _check_bash(words, root)
    if program in EXTERNAL:
        return None
    return f'unknown program {program}: check it here or name it in EXTERNAL'


def check_file(path: str, root: str) -> List[str]:
    """The problems of every command in one Markdown file."""
    with open(osp.join(root, path), encoding='utf-8') as f:
        text = f.read()
    problems = []
    for line, block, made in bash_blocks(text):
        for words in block_commands(block):
            problem = check_command(words, root, made)
            if problem:
                problems.append(f'{path}:{line}: {shlex.join(words)}: '
                                f'{problem}')
    return problems


def check_repository(root: str = REPO_ROOT) -> List[str]:
    problems = []
    for path in markdown_files(root):
        problems += check_file(path, root)
    return problems


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('files', nargs='*',
                        help='Markdown files (default: all of them)')
    parser.add_argument('--root', default=REPO_ROOT)
    args = parser.parse_args(argv)
    root = osp.abspath(args.root)
    if args.files:
        problems = [p for f in args.files
                    for p in check_file(osp.relpath(f, root), root)]
    else:
        problems = check_repository(root)
    print('\n'.join(problems) if problems else
          'every command of the documentation checked')
    return 1 if problems else 0


if __name__ == '__main__':
    sys.path.insert(0, REPO_ROOT)
    warnings.filterwarnings('ignore')
    sys.exit(main())

# Copyright (c) mmcast contributors. All rights reserved.
"""Check the relative links of the documentation.

Every relative link and image of ``README.md``, ``docs/**/*.md``,
``configs/**/README.md`` and ``projects/*/README.md`` (outside code) must
point to a file of the repository, or a folder holding some, and a
``#fragment`` to a heading of the Markdown file it names (as GitHub or
MkDocs spell heading anchors).
"The repository" is what git tracks or would track: ``git ls-files``
with the untracked files that ``.gitignore`` does not exclude, so a link
into ``work_dirs/`` or ``data/`` is refused. Example::

    python tools/docs/check_links.py        # exit 1, one line a problem
"""
import argparse
import os.path as osp
import re
import subprocess
import sys
import unicodedata
from typing import Iterable, List, Optional, Sequence, Set

from update_tables import REPO_ROOT, markdown_files

# [text](target) and ![alt](target); a target may carry a "title"
LINK = re.compile(r'!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?'
                  r'(?:\s+"[^"]*")?\s*\)')
FENCE = re.compile(r'^\s*(```|~~~)')
CODE_SPAN = re.compile(r'(`+).+?\1')
HEADING = re.compile(r'^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$')
EXTERNAL = re.compile(r'^[a-zA-Z][a-zA-Z0-9+.-]*:')


def repository_files(root: str) -> Set[str]:
    """Files git tracks, or would track (untracked and not ignored)."""
    out = subprocess.run(
        ['git', 'ls-files', '--cached', '--others', '--exclude-standard'],
        cwd=root, capture_output=True, text=True, check=True).stdout
    return {f for f in out.split('\n') if f}


def _prose_lines(text: str) -> Iterable[tuple]:
    """``(line number, line)`` of the lines outside fenced code."""
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def heading_anchors(text: str) -> Set[str]:
    """The anchors of a Markdown file's headings, in GitHub's spelling and
    in Python-Markdown's (MkDocs), numbered suffixes of repeats included."""
    anchors: Set[str] = set()
    seen: dict = {}
    for _, line in _prose_lines(text):
        match = HEADING.match(line)
        if not match:
            continue
        title = re.sub(r'\[([^\]]*)\]\([^)]*\)', r'\1', match.group(2))
        title = title.replace('`', '').replace('*', '')
        for slug in (_github_slug(title), _markdown_slug(title)):
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            anchors.add(slug if count == 0 else f'{slug}-{count}')
            anchors.add(slug if count == 0 else f'{slug}_{count}')
    return anchors


def _github_slug(title: str) -> str:
    slug = re.sub(r'[^\w\- ]', '', title.strip().lower())
    return slug.replace(' ', '-')


def _markdown_slug(title: str) -> str:
    """Python-Markdown's ``toc.slugify`` (ASCII), which MkDocs uses."""
    value = unicodedata.normalize('NFKD', title)
    value = value.encode('ascii', 'ignore').decode('ascii')
    value = re.sub(r'[^\w\s-]', '', value).strip().lower()
    return re.sub(r'[-\s]+', '-', value)


def check_text(md_file: str, text: str, files: Set[str],
               read=None) -> List[str]:
    """Problems of the links in ``text``, the content of ``md_file``
    (relative to the repository): ``'FILE:LINE: link TARGET: why'``.

    ``files`` is the set of repository files; ``read(path)`` returns the
    text of a Markdown file of it (for fragments).
    """
    folders = {osp.dirname(f) for f in files}
    folders |= {p for f in folders for p in _parents(f)}
    problems = []
    for number, line in _prose_lines(text):
        for target in LINK.findall(CODE_SPAN.sub('', line)):
            if EXTERNAL.match(target):
                continue
            path, _, fragment = target.partition('#')
            where = f'{md_file}:{number}: link {target}'
            if path:
                resolved = osp.normpath(
                    osp.join(osp.dirname(md_file), path))
                if resolved.startswith('..') or osp.isabs(path):
                    problems.append(f'{where}: outside the repository')
                    continue
                if resolved not in files and resolved not in folders:
                    problems.append(f'{where}: no such file in the '
                                    'repository')
                    continue
            else:
                resolved = md_file
            if fragment and resolved.endswith('.md'):
                body = text if resolved == md_file else read(resolved)
                if fragment not in heading_anchors(body):
                    problems.append(f'{where}: no heading #{fragment} in '
                                    f'{resolved}')
    return problems


def _parents(folder: str) -> List[str]:
    parts = folder.split('/')
    return ['/'.join(parts[:i]) for i in range(1, len(parts))]


def check_repository(root: str,
                     files: Optional[Set[str]] = None) -> List[str]:
    """Problems of every documentation file of the repository at root."""
    files = repository_files(root) if files is None else files

    def read(path: str) -> str:
        with open(osp.join(root, path), encoding='utf-8') as f:
            return f.read()

    problems = []
    for md_file in markdown_files(root):
        if md_file in files:
            problems += check_text(md_file, read(md_file), files, read)
    return problems


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--root', default=REPO_ROOT,
                        help='the repository (default: this one)')
    args = parser.parse_args(argv)
    problems = check_repository(args.root)
    print('\n'.join(problems) if problems else 'links: ok')
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())

# Copyright (c) mmcast contributors. All rights reserved.
"""Write the short-name configs of the table of stage configs.

``configs/mmcast/stages.json`` names, for each CAST config of a shipped
dataset, a short name: ``configs/mmcast/<short>.py`` only inherits the
config (and trains in its work dir). This writes those files from the table
(``--check``: only says which differ, exit status 1 if any does)::

    python tools/misc/config_aliases.py           # after editing the table
    python tools/misc/config_aliases.py --check   # run by the tests
"""
import argparse
import glob
import os.path as osp
import sys

from mmcast.apis.pipeline.stage_table import (CONFIG_DIR, alias_text,
                                              stage_rows)
from mmcast.utils.atomic_io import atomic_open

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--check', action='store_true',
                        help='write nothing; list the files that differ')
    args = parser.parse_args()
    folder = osp.join(REPO_ROOT, CONFIG_DIR)
    wanted = {osp.join(folder, f'{row["short"]}.py'): alias_text(row)
              for row in stage_rows(REPO_ROOT) if row['short']}
    stale = [p for p in glob.glob(osp.join(folder, '*.py'))
             if p not in wanted]
    differ = []
    for path, text in sorted(wanted.items()):
        if osp.isfile(path):
            with open(path, encoding='utf-8') as f:
                if f.read() == text:
                    continue
        differ.append(path)
        if not args.check:
            with atomic_open(path, 'w', encoding='utf-8') as f:
                f.write(text)
    for path in differ:
        print(f'{"differs" if args.check else "wrote"}: '
              f'{osp.relpath(path, REPO_ROOT)}')
    for path in stale:  # not removed: a user's own config, say
        print(f'not in the table: {osp.relpath(path, REPO_ROOT)}')
    return 1 if args.check and (differ or stale) else 0


if __name__ == '__main__':
    sys.exit(main())

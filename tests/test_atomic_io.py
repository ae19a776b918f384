# Copyright (c) mmcast contributors. All rights reserved.
"""Atomic writes: all or nothing, with ordinary file permissions."""
import os
import stat
import subprocess
import sys

import pytest

from mmcast.utils.atomic_io import atomic_dump_json, atomic_open


@pytest.mark.parametrize('umask', [0o022, 0o077])
def test_written_file_has_the_permissions_of_the_umask(tmp_path, umask):
    """A process started under ``umask`` writes files as ``open()`` would
    (the umask is read once, at import, never set meanwhile)."""
    path = tmp_path / 'x.json'
    code = ('import os, sys; os.umask(int(sys.argv[1], 8)); '
            'from mmcast.utils.atomic_io import atomic_dump_json, UMASK; '
            'atomic_dump_json({"a": 1}, sys.argv[2]); '
            'assert os.umask(0) == UMASK')
    subprocess.run([sys.executable, '-c', code, oct(umask)[2:], str(path)],
                   check=True)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~umask
    assert path.read_text() == '{"a": 1}'


def test_failed_write_keeps_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / 'x.txt'
    path.write_text('old')
    with pytest.raises(RuntimeError):
        with atomic_open(str(path)) as f:
            f.write('half')
            raise RuntimeError('killed')
    assert path.read_text() == 'old'
    assert os.listdir(tmp_path) == ['x.txt']

# Copyright (c) mmcast contributors. All rights reserved.
"""Atomic writes: all or nothing, with ordinary file permissions."""
import os
import stat

import pytest

from mmcast.utils.atomic_io import atomic_dump_json, atomic_open


def test_written_file_has_open_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_dump_json({'a': 1}, str(tmp_path / 'x.json'))
    finally:
        os.umask(old)
    mode = stat.S_IMODE(os.stat(tmp_path / 'x.json').st_mode)
    assert mode == 0o644
    assert (tmp_path / 'x.json').read_text() == '{"a": 1}'


def test_failed_write_keeps_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / 'x.txt'
    path.write_text('old')
    with pytest.raises(RuntimeError):
        with atomic_open(str(path)) as f:
            f.write('half')
            raise RuntimeError('killed')
    assert path.read_text() == 'old'
    assert os.listdir(tmp_path) == ['x.txt']

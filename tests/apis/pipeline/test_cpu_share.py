"""CPU runs warn when their threads would oversubscribe CPUs already busy
(e.g. a second pipeline on the same machine): the note, its
``OMP_NUM_THREADS`` over the dimensions users vary (CPUs, ``--jobs``, their
own ``OMP_NUM_THREADS``), the busy-CPU measurement, and the pipeline's
preflight printing it."""
import os
import subprocess
import sys

import pytest

from mmcast.apis.pipeline import cpu_share


@pytest.mark.parametrize('busy,cpus,jobs,omp,fits', [
    (0.2, 2, 1, None, None),  # an idle machine
    (0.4, 2, 2, '1', None),
    (2.0, 2, 1, None, 1),  # a second toy pipeline on a 2-CPU machine
    (1.9, 2, 2, '1', None),  # one thread each: shared, not thrashed
    (1.0, 16, 2, None, 7),  # one busy CPU: 2 stages × 16 threads
    (1.0, 16, 2, '4', None),  # the user's threads fit
    (3.0, 4, 1, '1', None),
    (6.2, 8, 1, '4', 2),
    (2.0, 2, 1, '2,1', 1),  # OpenMP's nested form: the first level counts
    (2.0, 2, 1, 'many', None),  # not a number: no advice
])
def test_note_names_the_threads_that_fit(busy, cpus, jobs, omp, fits):
    note = cpu_share.cpu_contention_note(busy, cpus, jobs, omp)
    if fits is None:
        assert note is None
        return
    assert f'OMP_NUM_THREADS={fits} ' in note
    assert f'{busy:.1f} of the {cpus} CPUs are busy' in note
    threads = int(omp.split(',')[0]) if omp else cpus
    assert f'{jobs} stage(s) × {threads} thread(s)' in note


def test_busy_cpus_sees_a_spinning_process():
    spinner = subprocess.Popen(
        [sys.executable, '-c', 'import time\nt = time.time() + 5\n'
         'while time.time() < t: pass'])
    try:
        busy = cpu_share.busy_cpus(0.5)
    finally:
        spinner.kill()
        spinner.wait()
    assert busy is not None and 0.8 <= busy <= (os.cpu_count() or 1) + 0.1


@pytest.mark.parametrize('busy', [0.0, 'all'])
def test_pipeline_preflight_prints_the_note(tmp_path, monkeypatch, capsys,
                                            busy):
    """A toy dry run on a machine whose CPUs are all busy prints the
    note; on an idle one, not."""
    from mmcast.apis import pipeline as script
    from mmcast.apis.pipeline import cpu_share
    cpus = os.cpu_count() or 1
    monkeypatch.setattr(cpu_share, 'busy_cpus',
                        lambda: float(cpus) if busy == 'all' else busy)
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    script.main(['toy', '--work-dir', str(tmp_path / 'wd'), '--data-root',
                 str(tmp_path / 'data'), '--seeds', '0', '--dry-run'])
    out = capsys.readouterr().out
    assert 'preflight: ok' in out
    notes = [line for line in out.splitlines()
             if line.startswith('note: ') and 'OMP_NUM_THREADS=' in line]
    assert len(notes) == (busy == 'all'), out[-2000:]
    if notes:
        assert f'1 stage(s) × {cpus} thread(s)' in notes[0]
        assert 'OMP_NUM_THREADS=1 ' in notes[0]

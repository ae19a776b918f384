# Copyright (c) mmcast contributors. All rights reserved.
"""Install mmcast, an MMDetection 3.x plugin for CAST semi-supervised distillation.

As MMDetection does, the install adds ``mmcast/.mim/`` with the files that
``mim search / download / train / test mmcast`` read: ``model-index.yml``
(which imports ``configs/mmcast/**/metafile.yml``), ``configs/`` and
``tools/`` (``mim train mmcast`` runs ``.mim/tools/train.py``). A regular
install (wheel, ``pip install .``) gets copies, put into the build folder
only; an editable install (``pip install -e .``) gets symlinks into the
checkout, so edited configs show up at once, and names the checkout's
``mmcast`` folder in its metadata so that mim finds them (see
``EditableWheelWithMim``).
"""
import os
import os.path as osp
import platform
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

HERE = osp.dirname(osp.abspath(__file__))
MIM_FILES = ('configs', 'tools', 'model-index.yml')


def get_version() -> str:
    """Read ``__version__`` from ``mmcast/version.py`` without importing it."""
    scope: dict = {}
    with open(osp.join(HERE, 'mmcast', 'version.py'), encoding='utf-8') as f:
        exec(compile(f.read(), 'mmcast/version.py', 'exec'), scope)
    return scope['__version__']


def parse_requirements(name: str) -> list:
    """Return the requirement lines of ``requirements/<name>.txt``."""
    with open(osp.join(HERE, 'requirements', f'{name}.txt'), encoding='utf-8') as f:
        return [ln.strip() for ln in f if ln.strip() and not ln.startswith('#')]


def add_mim_extension(mim_dir: str, mode: str) -> None:
    """Put ``MIM_FILES`` of the checkout into ``mim_dir`` (``<pkg>/.mim``).

    Args:
        mim_dir (str): The ``.mim`` folder to fill (made if missing); entries
            already there are replaced.
        mode (str): ``'symlink'`` (relative links into the checkout, for
            editable installs) or ``'copy'``.
    """
    if mode not in ('symlink', 'copy'):
        raise ValueError(f"mode must be 'symlink' or 'copy', got {mode!r}")
    os.makedirs(mim_dir, exist_ok=True)
    for name in MIM_FILES:
        src = osp.join(HERE, name)
        if not osp.exists(src):
            raise FileNotFoundError(
                f'{src} is missing: mim needs it in {mim_dir}')
        dst = osp.join(mim_dir, name)
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if mode == 'symlink':
            os.symlink(osp.relpath(src, mim_dir), dst)
        elif osp.isdir(src):
            shutil.copytree(
                src, dst, ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
        else:
            shutil.copyfile(src, dst)


class BuildPyWithMim(build_py):
    """``build_py`` that also copies the mim files into the built package."""

    def run(self) -> None:
        super().run()
        if not self.editable_mode:
            add_mim_extension(
                osp.join(self.build_lib, 'mmcast', '.mim'), mode='copy')


def point_top_level_at_checkout(dist_info_dir: str) -> None:
    """Make the checkout's ``mmcast`` folder the first ``top_level.txt`` line.

    mim (``get_installed_path``, ``mim list``) and MMEngine (``mmcast::``
    config paths) look for a package's files in
    ``os.path.join(<distribution location>, <package name>)`` and, where that
    folder does not exist, in ``os.path.join(<distribution location>, <first
    line of top_level.txt>)``. A PEP 660 editable install's location is
    site-packages, which holds only an import hook and no ``mmcast`` folder;
    an absolute first line makes ``os.path.join`` return that line, i.e. the
    checkout. The import names follow on the next lines, so that
    ``importlib.metadata.packages_distributions()`` still maps ``mmcast``.

    Args:
        dist_info_dir (str): The ``.dist-info`` folder of the editable wheel,
            holding the ``top_level.txt`` that setuptools wrote.
    """
    path = osp.join(dist_info_dir, 'top_level.txt')
    with open(path, encoding='utf-8') as f:
        names = [n for n in f.read().splitlines() if n and not osp.isabs(n)]
    if 'mmcast' not in names:
        raise ValueError(f'{path} lists {names}, expected the package mmcast')
    with open(path, 'w', encoding='utf-8') as f:
        f.write('\n'.join([osp.join(HERE, 'mmcast')] + names) + '\n')


class EditableWheelWithMim(editable_wheel):
    """``pip install -e .``: link the mim files into ``mmcast/.mim`` and let
    mim find that folder in the checkout (``point_top_level_at_checkout``)."""

    def run(self) -> None:
        # Windows needs privileges for symlinks: copy there, as MMDetection.
        mode = 'copy' if platform.system() == 'Windows' else 'symlink'
        add_mim_extension(osp.join(HERE, 'mmcast', '.mim'), mode=mode)
        # The dist-info that goes into the wheel: pip's prepared one, or one
        # built now (``run`` below then reuses it).
        self._ensure_dist_info()
        point_top_level_at_checkout(str(self.dist_info_dir))
        super().run()


if __name__ == '__main__':
    setup(
        name='mmcast',
        version=get_version(),
        description='CAST: contrastive adaptation and distillation of vision '
        'foundation models into compact instance-segmentation students, '
        'as an MMDetection 3.x plugin',
        long_description=open(
            osp.join(HERE, 'README.md'), encoding='utf-8').read(),
        long_description_content_type='text/markdown',
        # the published split lists are data folders inside the package;
        # projects/ (SwinMTL) stays in the repository, as MMDetection's
        packages=find_packages(
            exclude=('configs', 'tools', 'tests', 'projects', 'projects.*'))
        + ['mmcast.datasets.splits', 'mmcast.datasets.splits.cityscapes'],
        include_package_data=True,
        python_requires='>=3.8',
        install_requires=parse_requirements('runtime'),
        extras_require={
            'tests': parse_requirements('tests'),
            'sam2': parse_requirements('sam2'),
            'sam3': parse_requirements('sam3'),
        },
        license='Apache License 2.0',
        zip_safe=False,
        cmdclass={
            'build_py': BuildPyWithMim,
            'editable_wheel': EditableWheelWithMim
        },
    )

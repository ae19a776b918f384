# Copyright (c) mmcast contributors. All rights reserved.
"""Install mmcast, an MMDetection 3.x plugin for CAST semi-supervised distillation."""
import os.path as osp

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


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


setup(
    name='mmcast',
    version=get_version(),
    description='CAST: contrastive adaptation and distillation of vision '
    'foundation models into compact instance-segmentation students, '
    'as an MMDetection 3.x plugin',
    long_description=open(osp.join(HERE, 'README.md'), encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('configs', 'tools', 'tests')),
    include_package_data=True,
    python_requires='>=3.8',
    install_requires=parse_requirements('runtime'),
    extras_require={
        'tests': parse_requirements('tests'),
        'sam2': parse_requirements('sam2'),
    },
    license='Apache License 2.0',
    zip_safe=False,
)

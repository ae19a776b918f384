# Copyright (c) mmcast contributors. All rights reserved.
"""The seams of the teacher–student models: who owns the teacher, the strong
view's defaults, safe student-weight loading, the opt-in CPU launcher."""
import os
import socket
import subprocess
import sys
from typing import Tuple

import pytest
import torch
from mmdet.models.detectors import BaseDetector
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from torch import nn

import mmcast  # noqa: F401
from mmcast.models.detectors import (CASTDistiller, GuidedDistiller,
                                     TeacherStudentDetector,
                                     student_state_dict)
from mmcast.models.layers.photometric_strong_view import \
    complete_strong_view_cfg
from mmcast.utils.checkpoint_loading import CheckpointError

register_all_modules()
MEAN, STD = [10.0, 20.0, 30.0], [2.0, 3.0, 4.0]


@MODELS.register_module(name='_SeamsTinyDetector', force=True)
class _TinyDetector(BaseDetector):
    """A conv + BatchNorm detector: parameters and buffers, nothing else."""

    def __init__(self, init_cfg=None) -> None:
        super().__init__(
            data_preprocessor=dict(
                type='DetDataPreprocessor', mean=MEAN, std=STD),
            init_cfg=init_cfg)
        self.conv = nn.Conv2d(3, 2, 1)
        self.bn = nn.BatchNorm2d(2)

    def extract_feat(self, inputs: torch.Tensor) -> Tuple[torch.Tensor]:
        return (self.bn(self.conv(inputs)), )

    def _forward(self, inputs, data_samples=None):
        return self.extract_feat(inputs)

    def loss(self, inputs, data_samples):
        return dict(loss=self.extract_feat(inputs)[0].mean())

    def predict(self, inputs, data_samples, rescale=True):
        return data_samples


TINY = dict(type='_SeamsTinyDetector')


def _cast(mode: str = 'offline') -> CASTDistiller:
    return MODELS.build(
        dict(type='CASTDistiller', student=TINY, teacher=TINY,
             semi_train_cfg=dict(pseudo_label_mode=mode)))


def _gd(**kwargs) -> GuidedDistiller:
    return MODELS.build(
        dict(type='GuidedDistiller', student=TINY, teacher=TINY, **kwargs))


@pytest.mark.parametrize('build, in_state_dict', [(_cast, False),
                                                  (_gd, True)])
def test_one_teacher_mechanism_for_both_wrappers(build, in_state_dict):
    model = build()
    assert isinstance(model, TeacherStudentDetector)
    assert model.teacher_in_state_dict is in_state_dict
    teacher = model.teacher
    assert isinstance(teacher, _TinyDetector)
    assert ('teacher' in model._modules) is in_state_dict
    assert not any(p.requires_grad for p in teacher.parameters())
    # parameters() is what the optimizer and DDP see
    own = {id(p) for p in model.parameters()}
    assert all((id(p) in own) is in_state_dict for p in teacher.parameters())
    keys = set(model.state_dict())
    student = {k[len('student.'):] for k in keys if k.startswith('student.')}
    held = {k[len('teacher.'):] for k in keys if k.startswith('teacher.')}
    assert student and held == (student if in_state_dict else set())
    assert keys == {f'student.{k}' for k in student} | \
        {f'teacher.{k}' for k in held} | {'_extra_state'}
    # a checkpoint of the same wrapper loads strictly
    build().load_state_dict(model.state_dict(), strict=True)
    # the teacher stays in eval() whatever the wrapper's mode
    model.train()
    assert model.student.training and not teacher.training
    model.eval()
    assert not model.student.training and not teacher.training
    # .to()/.cuda()/.double() move and cast it with the wrapper
    model.double()
    assert teacher.conv.weight.dtype == torch.float64
    assert teacher.bn.running_mean.dtype == torch.float64


def test_release_teacher_frees_the_offline_teacher_only():
    offline = _cast('offline')
    count = sum(p.numel() for p in offline.teacher.parameters())
    keys = list(offline.state_dict())
    assert offline.release_teacher() == count > 0
    assert offline.teacher is None and offline.release_teacher() == 0
    assert list(offline.state_dict()) == keys  # checkpoints unchanged
    offline.train().double()  # no teacher left to set or move
    for online in (_cast('online'), _gd()):
        assert online.release_teacher() == 0
        assert online.teacher is not None


def test_strong_view_cfg_completed_from_the_preprocessor():
    preprocessor = MODELS.build(
        dict(type='DetDataPreprocessor', mean=MEAN, std=STD))
    cfg = dict(type='PhotometricStrongView', hue=0.05)
    full = complete_strong_view_cfg(cfg, preprocessor)
    assert full == dict(cfg, mean=MEAN, std=STD)
    assert 'mean' not in cfg  # the given config is left as it is
    mine = complete_strong_view_cfg(dict(cfg, std=[1.0, 1.0, 1.0]),
                                    preprocessor)
    assert mine['mean'] == MEAN and mine['std'] == [1.0, 1.0, 1.0]
    # the wrapper's view un-normalises what the student's preprocessor did
    view = _gd(strong_view=dict(type='PhotometricStrongView',
                                mean=[0.0, 0.0, 0.0])).strong_view
    assert view.mean.flatten().tolist() == [0.0, 0.0, 0.0]
    assert view.std.flatten().tolist() == STD
    assert _gd().strong_view.mean.flatten().tolist() == MEAN


def _unpickled(marker: str) -> None:
    """Run by an unsafe unpickling of :class:`_Arbitrary`."""
    with open(marker, 'w') as f:
        f.write('code ran')


class _Arbitrary:
    """An object whose unpickling would run code."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return _unpickled, (self.marker, )


def test_student_state_dict_loads_weights_only(tmp_path):
    model = _cast()
    good = str(tmp_path / 'good.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict(iter=3)), good)
    weights = student_state_dict(good)
    model.student.load_state_dict(weights, strict=True)
    assert weights.keys() == model.student.state_dict().keys()
    assert student_state_dict(torch.load(good, weights_only=True)).keys() \
        == weights.keys()

    marker = str(tmp_path / 'marker')
    unsafe = str(tmp_path / 'unsafe.pth')
    torch.save(dict(state_dict=model.state_dict(),
                    meta=_Arbitrary(marker)), unsafe)
    with pytest.raises(CheckpointError, match='unsafe.pth: holds objects'):
        student_state_dict(unsafe)
    assert not os.path.exists(marker)  # nothing of the pickle ran
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        student_state_dict(str(tmp_path / 'missing.pth'))


CPU_DIST_PROBE = '''
import mmengine.dist.utils as dist_utils
own = dist_utils._init_dist_pytorch
import mmcast
print('own' if dist_utils._init_dist_pytorch is own else 'replaced')
import torch
if not torch.cuda.is_available() and dist_utils._init_dist_pytorch is not own:
    import torch.distributed as dist
    from mmengine.dist import init_dist
    init_dist('pytorch', backend='nccl')  # as the configs ask for
    print(dist.get_backend(), dist.get_world_size())
    dist.destroy_process_group()
'''


def _free_port() -> str:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return str(sock.getsockname()[1])


@pytest.mark.parametrize('opt_in', [None, '0', '1'])
def test_import_leaves_mmengine_unless_opted_in(repo_root, opt_in):
    env = {k: v for k, v in os.environ.items() if k != 'MMCAST_CPU_DIST'}
    env.update(OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore', RANK='0',
               LOCAL_RANK='0', WORLD_SIZE='1', MASTER_ADDR='127.0.0.1',
               MASTER_PORT=_free_port())
    if opt_in is not None:
        env['MMCAST_CPU_DIST'] = opt_in
    proc = subprocess.run([sys.executable, '-c', CPU_DIST_PROBE],
                          cwd=repo_root, capture_output=True, text=True,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.split()
    assert lines[0] == ('replaced' if opt_in == '1' else 'own')
    if opt_in == '1' and not torch.cuda.is_available():
        # MMEngine's pytorch launcher now starts a gloo group on the CPU
        assert lines[1:] == ['gloo', '1']

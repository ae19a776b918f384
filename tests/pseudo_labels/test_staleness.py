# Copyright (c) mmcast contributors. All rights reserved.
"""Pseudo-labels are reused only when their teacher's weights and resolved
settings match (:mod:`~mmcast.pseudo_labels.staleness`): an edited teacher
``test_cfg`` (in the teacher's config or in a ``_base_`` file of it, or on a
live teacher) makes the labels stale, naming why."""
import types

import torch

from mmcast.models.teachers.labeling_teacher import LabelingTeacher
from mmcast.pseudo_labels import OfflineLabelingJob, write_pseudo_label_json
from mmcast.pseudo_labels.staleness import stale_reason
from mmcast.utils.atomic_io import atomic_dump_json

TEACHER = '''_base_ = './teacher_base.py'
model = dict(test_cfg=dict(max_per_image=20))
'''
TEACHER_BASE = '''model = dict(type='Mask2Former',
             test_cfg=dict(panoptic_on=False, instance_on=True,
                           max_per_image=10, iou_thr=0.8))
'''


def _job_header(teacher: LabelingTeacher, unlabeled: str) -> dict:
    """The header the offline labelling job asks of its file."""
    job = types.SimpleNamespace(
        teacher=teacher, dataset=types.SimpleNamespace(ann_file=unlabeled),
        settings=types.SimpleNamespace(filter_cfg=dict(score_thr=0.5)))
    return OfflineLabelingJob.expected_header(job)


def test_an_edited_teacher_test_cfg_makes_the_labels_stale(tmp_path):
    unlabeled = str(tmp_path / 'unlabeled.json')
    atomic_dump_json(dict(images=[], annotations=[], categories=[]),
                     unlabeled)
    checkpoint = tmp_path / 'teacher.pth'
    torch.save(dict(state_dict={}), checkpoint)
    (tmp_path / 'teacher_base.py').write_text(TEACHER_BASE)
    config = tmp_path / 'teacher.py'
    config.write_text(TEACHER)

    def header():
        return _job_header(LabelingTeacher.of_files(
            str(config), str(checkpoint), 'cpu', {}), unlabeled)

    out = str(tmp_path / 'pseudo.json')
    write_pseudo_label_json(out, header(), [], [], [])
    assert stale_reason(out, header()) is None
    config.write_text(TEACHER.replace('max_per_image=20',
                                      'max_per_image=30'))
    assert 'other settings of the teacher' in stale_reason(out, header())
    config.write_text(TEACHER)
    assert stale_reason(out, header()) is None
    (tmp_path / 'teacher_base.py').write_text(
        TEACHER_BASE.replace('iou_thr=0.8', 'iou_thr=0.7'))
    assert 'test_cfg included' in stale_reason(out, header())


def test_a_live_teacher_is_identified_by_its_test_cfg_too(tmp_path):
    unlabeled = str(tmp_path / 'unlabeled.json')
    atomic_dump_json(dict(images=[], annotations=[], categories=[]),
                     unlabeled)
    live = torch.nn.Sequential(torch.nn.Linear(2, 1))
    live[0].test_cfg = dict(max_per_image=10)
    out = str(tmp_path / 'pseudo.json')
    first = _job_header(LabelingTeacher(live), unlabeled)
    write_pseudo_label_json(out, first, [], [], [])
    assert stale_reason(out, _job_header(LabelingTeacher(live),
                                         unlabeled)) is None
    live[0].test_cfg = dict(max_per_image=20)
    assert 'other settings of the teacher' in stale_reason(
        out, _job_header(LabelingTeacher(live), unlabeled))

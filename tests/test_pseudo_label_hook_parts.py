# Copyright (c) mmcast contributors. All rights reserved.
"""The parts PseudoLabelHook is made of: the labeling teacher, staleness,
the labeling settings and score threshold, the train datasets' reload,
and ``unwrap_model``."""
import json
from types import SimpleNamespace

import pytest
import torch
from mmengine.registry import MODEL_WRAPPERS

from mmcast.datasets.pseudo_label_reload import (
    find_pseudo_labeled_datasets, pseudo_label_file,
    reload_pseudo_labeled_datasets)
from mmcast.models.teachers.flip_voting import FlipVotingTTA
from mmcast.models.teachers.labeling_teacher import (LabelingTeacher,
                                                     wrapper_teacher)
from mmcast.pseudo_labels import (AUTO, HEADER_KEY, LabelingSettings,
                                  OfflineLabelingJob, identity, make_header)
from mmcast.pseudo_labels.labeling_settings import (check_quality_args,
                                                    split_auto_score_thr)
from mmcast.pseudo_labels.staleness import (labeling_header,
                                            loaded_file_is_current,
                                            quality_files, quality_is_stale)
from mmcast.utils import unwrap_model
from mmcast.utils.rank0_broadcast import from_rank0


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv('MMCAST_CACHE_DIR', str(tmp_path / 'cache'))


@MODEL_WRAPPERS.register_module()
class _ToyWrapper(torch.nn.Module):

    def __init__(self, module):
        super().__init__()
        self.module = module


def test_unwrap_model():
    net = torch.nn.Linear(1, 1)
    assert unwrap_model(_ToyWrapper(net)) is net
    assert unwrap_model(net) is net
    assert unwrap_model(None) is None


def test_from_rank0_outside_a_distributed_run():
    calls = []
    assert from_rank0(lambda: calls.append(1) or [1, None]) == [1, None]
    assert calls == [1]


def test_labeling_teacher_builds_once_and_only_when_asked():
    built = []

    def build():
        built.append(torch.nn.Linear(1, 1))
        return built[-1]

    teacher = LabelingTeacher(build=build)
    assert teacher.live is None and not built
    assert teacher.get() is teacher.get() is built[0] and len(built) == 1
    teacher.release()
    assert teacher.live is None and teacher._built is None

    live = torch.nn.Linear(1, 1)
    assert LabelingTeacher(live).get() is live
    with pytest.raises(ValueError, match='either'):
        LabelingTeacher()
    with pytest.raises(ValueError, match='either'):
        LabelingTeacher(live, build)


def test_wrapper_teacher_names_a_model_without_one():
    model = torch.nn.Sequential()
    with pytest.raises(ValueError, match='Sequential has none'):
        wrapper_teacher(model)
    model.teacher = torch.nn.Linear(1, 1)
    assert wrapper_teacher(model) is model.teacher


def _unlabeled(tmp_path) -> str:
    path = tmp_path / 'u.json'
    path.write_text(json.dumps(dict(images=[], annotations=[],
                                    categories=[])))
    return str(path)


def test_labeling_header_of_a_live_teacher_follows_its_weights(tmp_path):
    unl = _unlabeled(tmp_path)
    live = torch.nn.Linear(2, 1)
    header = labeling_header(unl, dict(score_thr=0.5), live_teacher=live)
    assert header['teacher'] == 'runner.model.teacher (Linear)'
    assert header['checkpoint'] is None
    assert header['filter']['score_thr'] == 0.5
    with torch.no_grad():
        live.weight.add_(1)
    assert labeling_header(unl, dict(score_thr=0.5), live_teacher=live)[
        'checkpoint_sha256'] != header['checkpoint_sha256']

    ckpt = tmp_path / 'teacher.pth'
    ckpt.write_bytes(b'weights')
    assert labeling_header(
        unl, dict(score_thr=0.5), teacher_config='t.py',
        teacher_checkpoint=str(ckpt)) == make_header(
            't.py', str(ckpt), unl, dict(score_thr=0.5))


def test_quality_is_stale_until_measured_for_this_identity_and_sweep(
        tmp_path):
    unl = _unlabeled(tmp_path)
    out = str(tmp_path / 'pl' / 'pseudo.json')
    labeled, quality_file = quality_files(out)
    assert labeled.endswith('pl/pseudo.labeled_split.json')
    assert quality_file.endswith('pl/pseudo.quality.json')
    header = make_header('t.py', None, unl, None, checkpoint_hash='h1')
    assert quality_is_stale(out, header, [0.3, 0.7])  # missing

    (tmp_path / 'pl').mkdir()
    with open(quality_file, 'w') as f:
        json.dump(dict(identity=identity(header),
                       sweep=[dict(score_thr=0.3), dict(score_thr=0.7)]), f)
    assert not quality_is_stale(out, header, [0.3, 0.7])
    assert quality_is_stale(out, header, [0.3, 0.4])
    other = make_header('t.py', None, unl, None, checkpoint_hash='h2')
    assert quality_is_stale(out, other, [0.3, 0.7])
    with open(quality_file, 'w') as f:
        f.write('{"identity": ')  # cut short
    assert quality_is_stale(out, header, [0.3, 0.7])


def test_auto_score_thr_and_quality_args():
    cfg, auto = split_auto_score_thr(dict(score_thr=AUTO, min_area=4),
                                     dict(ann_file='l.json'), (0.5, 0.2))
    assert auto and cfg == dict(score_thr=0.2, min_area=4)
    cfg, auto = split_auto_score_thr(None, None, (0.5, ))
    assert not auto and cfg == {}
    with pytest.raises(ValueError, match='quality_dataset'):
        split_auto_score_thr(dict(score_thr=AUTO), None, (0.5, ))

    quality = dict(ann_file='l.json', pipeline=[])
    copied, thrs = check_quality_args(quality, (0.7, 0.3))
    assert copied == quality and copied is not quality and thrs == [0.3, 0.7]
    with pytest.raises(ValueError, match='ann_file'):
        check_quality_args(dict(type='CocoDataset'), (0.3, ))
    with pytest.raises(ValueError, match=r'\[0, 1\)'):
        check_quality_args(None, (0.3, 1.0))


def test_labeling_settings_check_their_values():
    settings = LabelingSettings(dict(score_thr=AUTO),
                                dict(ann_file='l.json'), (0.5, 0.2),
                                batch_size=3, max_unreadable=None)
    assert settings.auto_score_thr and settings.score_thr_in_use == AUTO
    assert settings.filter_cfg['score_thr'] == 0.2
    assert settings.quality_score_thrs == [0.2, 0.5]
    assert settings.quality_filter_cfg == dict(settings.filter_cfg,
                                               score_thr=0.2)
    assert settings.labeling_args == dict(batch_size=3, num_workers=0,
                                          log_interval=50,
                                          max_unreadable=None)
    assert LabelingSettings(dict(score_thr=0.4)).score_thr_in_use == 0.4
    with pytest.raises(ValueError, match='batch_size'):
        LabelingSettings(batch_size=0)
    with pytest.raises(ValueError, match='max_unreadable'):
        LabelingSettings(max_unreadable=1.5)
    with pytest.raises(ValueError, match='score_thr'):
        LabelingSettings(dict(score_thr=2))


def test_best_f1_score_thr_reads_the_measure(tmp_path):
    out = str(tmp_path / 'pseudo.json')
    sweep = [dict(score_thr=t, f1=f, precision=f, recall=1.0)
             for t, f in ((0.3, 0.5), (0.7, 0.9))]
    with open(quality_files(out)[1], 'w') as f:
        json.dump(dict(best_f1_thr=0.7, sweep=sweep, gt_file='l.json'), f)
    (tmp_path / 'u.json').write_text(json.dumps(dict(
        images=[], annotations=[], categories=[])))
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmdet'):
        job = OfflineLabelingJob(
            LabelingTeacher(torch.nn.Linear(1, 1)),
            dict(type='CocoDataset', ann_file=str(tmp_path / 'u.json'),
                 pipeline=[]), out, LabelingSettings())
    assert job.best_f1_score_thr() == 0.7


def test_the_teacher_labels_with_the_filters_score_floor():
    """A lean fusion head of the teacher leaves out what the filter drops
    while labeling (and only then); mirror voting needs every instance of
    both views, so a teacher with it is labeled at full score range."""
    from mmcast.models.seg_heads import LeanMaskFormerFusionHead

    class Teacher(torch.nn.Module):

        def __init__(self):
            super().__init__()
            self.panoptic_fusion_head = LeanMaskFormerFusionHead(
                num_things_classes=1, num_stuff_classes=0,
                test_cfg=dict(panoptic_on=False, semantic_on=False,
                              instance_on=True, score_thr=0.1))

    live = Teacher()
    head = live.panoptic_fusion_head
    with LabelingTeacher(live).labeling(0.3) as teacher:
        assert teacher is live and head.test_cfg['score_thr'] == 0.3
    assert head.test_cfg['score_thr'] == 0.1
    with LabelingTeacher(live).labeling(0.05):  # the teacher's own is higher
        assert head.test_cfg['score_thr'] == 0.1
    flipped = LabelingTeacher(live, test_time_flip=True)
    assert flipped.mark == ' + flip voting'
    with flipped.labeling(0.3) as teacher:
        assert isinstance(teacher, FlipVotingTTA) and teacher.teacher is live
        assert head.test_cfg['score_thr'] == 0.1
    built = LabelingTeacher(build=Teacher, test_time_flip=True)
    assert isinstance(built.get(), FlipVotingTTA) and built.live is None


class _Labeled:
    """A ``PseudoLabeledDataset`` stand-in for the reload bookkeeping."""

    def __init__(self, ann_file, loaded=False, accepts=True):
        self.ann_file = ann_file
        self.unlabeled_ann_file = 'u.json'
        self.pseudo_labels_loaded = loaded
        self.pseudo_label_header = None
        self.accepts = accepts
        self.reloads = 0

    def __len__(self):
        return 3

    def reload(self):
        self.reloads += 1
        return self.accepts


def test_pseudo_label_file_is_the_one_file_the_datasets_read(tmp_path):
    a, b = str(tmp_path / 'a.json'), str(tmp_path / 'b.json')
    assert pseudo_label_file([_Labeled(a), _Labeled(a)], None) == a
    assert pseudo_label_file([_Labeled(a)], a) == a
    with pytest.raises(ValueError, match='set out_file'):
        pseudo_label_file([_Labeled(a), _Labeled(b)], None)
    with pytest.raises(ValueError, match='reads .*b.json'):
        pseudo_label_file([_Labeled(b)], a)
    assert pseudo_label_file([], a) == a  # written, read by nothing
    with pytest.raises(ValueError, match='no out_file'):
        pseudo_label_file([], None)


def test_only_datasets_behind_their_file_are_reloaded(monkeypatch):
    import mmcast.datasets.pseudo_label_reload as reload_mod
    monkeypatch.setattr(reload_mod, 'PseudoLabeledDataset', _Labeled)
    current = _Labeled('a.json', loaded=True)
    monkeypatch.setattr(reload_mod, 'loaded_file_is_current',
                        lambda ds: ds is current)
    behind, missing = _Labeled('a.json', loaded=True), _Labeled('a.json')
    balanced = type('ClassBalancedDataset', (), {})()
    balanced.dataset = missing
    root = SimpleNamespace(datasets=[current, behind, balanced])
    logged = []
    monkeypatch.setattr(reload_mod, 'print_log',
                        lambda msg, **kwargs: logged.append(msg))

    found = find_pseudo_labeled_datasets(root)
    assert found == [current, behind, missing]
    assert reload_pseudo_labeled_datasets(root, found, 'u.json')
    assert [d.reloads for d in found] == [0, 1, 1]
    assert len(logged) == 1 and 'ClassBalancedDataset wraps' in logged[0]
    assert not reload_pseudo_labeled_datasets(root, [current], 'u.json')
    with pytest.raises(RuntimeError, match=r'labeled \(u.json\)'):
        reload_pseudo_labeled_datasets(
            root, [_Labeled('a.json', accepts=False)], 'u.json')


def test_loaded_file_is_current(tmp_path):
    path = tmp_path / 'pseudo.json'
    ds = _Labeled(str(path), loaded=True)
    ds.pseudo_label_header = dict(teacher='t1')
    assert not loaded_file_is_current(ds)  # no file
    path.write_text(json.dumps(dict(
        info={HEADER_KEY: dict(teacher='t1')}, images=[], annotations=[])))
    assert loaded_file_is_current(ds)
    path.write_text(json.dumps(dict(
        info={HEADER_KEY: dict(teacher='t2')}, images=[], annotations=[])))
    assert not loaded_file_is_current(ds)

# Copyright (c) mmcast contributors. All rights reserved.
"""How the offline pseudo-labels of a stage are made, checked once.

:class:`LabelingSettings` holds the filter (its ``score_thr`` a number or
``'auto'``: chosen on the ground truth of a quality dataset), the quality
measurement and the labeller's batch, workers, log interval and allowed
fraction of unreadable images. ``PseudoLabelHook`` builds it when the
runner builds the hook and ``tools/pseudo_label.py`` from its options, so
a bad value stops either before any teacher is built.
"""
import copy
from typing import List, Optional, Sequence, Tuple

from .filtering import check_filter_cfg
from .labeling_dataset import DEFAULT_MAX_UNREADABLE
from .quality import DEFAULT_SCORE_THRS

# filter_cfg.score_thr that is chosen from the quality dataset
AUTO = 'auto'


def split_auto_score_thr(filter_cfg: Optional[dict],
                         quality_dataset: Optional[dict],
                         score_thrs: Sequence[float]) -> Tuple[dict, bool]:
    """``filter_cfg`` with a number for ``score_thr='auto'``, and whether it
    was ``'auto'``.

    Until the threshold is chosen, ``'auto'`` stands for the lowest of
    ``score_thrs`` (the one the quality set is labeled with).

    Raises:
        ValueError: ``'auto'`` without a ``quality_dataset``.
    """
    filter_cfg = dict(filter_cfg or {})
    auto = filter_cfg.get('score_thr') == AUTO
    if auto:
        if quality_dataset is None:
            raise ValueError(
                "filter_cfg.score_thr='auto' chooses the threshold on "
                'the ground truth of quality_dataset: give one (e.g. the '
                'labeled split D_l)')
        filter_cfg['score_thr'] = min(score_thrs or (0, ))
    return filter_cfg, auto


def check_quality_args(quality_dataset: Optional[dict],
                       score_thrs: Sequence[float]
                       ) -> Tuple[Optional[dict], List[float]]:
    """A copy of ``quality_dataset`` and ``score_thrs`` in ascending order.

    Raises:
        ValueError: ``quality_dataset`` is not a dataset config with an
            ``ann_file``, or ``score_thrs`` is empty or not in [0, 1).
    """
    if quality_dataset is not None and (
            not isinstance(quality_dataset, dict)
            or 'ann_file' not in quality_dataset):
        raise ValueError('quality_dataset must be a dataset config dict '
                         'with an ann_file (a json with ground truth)')
    if not score_thrs or not all(0 <= t < 1 for t in score_thrs):
        raise ValueError('quality_score_thrs must be scores in [0, 1), '
                         f'got {score_thrs!r}')
    return copy.deepcopy(quality_dataset), sorted(float(t) for t in score_thrs)


class LabelingSettings:
    """The filter, quality measurement and labeller arguments of a job.

    Args:
        filter_cfg (dict, optional): :class:`PseudoLabelFilter` arguments;
            ``score_thr='auto'`` (needs ``quality_dataset``) takes the
            threshold of the best F1 on ``quality_dataset``'s ground truth.
        quality_dataset (dict, optional): A dataset config with ground truth
            and a TEST pipeline, labeled by the same teacher to measure the
            pseudo-labels' precision and recall.
        quality_score_thrs (Sequence[float]): The thresholds swept.
        batch_size (int): Images per teacher forward. Defaults to 2.
        num_workers (int): Labeling DataLoader workers. Defaults to 0.
        log_interval (int): Log the progress every this many batches.
        max_unreadable (float, optional): The fraction of images that may
            be missing or undecodable; ``None`` allows any number.

    Attributes:
        filter_cfg (dict): The complete filter; with ``'auto'`` its
            ``score_thr`` is the lowest swept until the job chooses one.
        auto_score_thr (bool): Whether ``score_thr`` was ``'auto'``.
        quality_score_thrs (list[float]): The thresholds, ascending.

    Raises:
        ValueError: naming the argument that is out of range.
    """

    def __init__(self,
                 filter_cfg: Optional[dict] = None,
                 quality_dataset: Optional[dict] = None,
                 quality_score_thrs: Sequence[float] = DEFAULT_SCORE_THRS,
                 batch_size: int = 2,
                 num_workers: int = 0,
                 log_interval: int = 50,
                 max_unreadable: Optional[float] = DEFAULT_MAX_UNREADABLE
                 ) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f'batch_size must be an int >= 1, got '
                             f'{batch_size!r}')
        if max_unreadable is not None and not 0 <= max_unreadable <= 1:
            raise ValueError('max_unreadable must be in [0, 1], got '
                             f'{max_unreadable!r}')
        filter_cfg, self.auto_score_thr = split_auto_score_thr(
            filter_cfg, quality_dataset, quality_score_thrs)
        self.filter_cfg = check_filter_cfg(filter_cfg)
        self.quality_dataset, self.quality_score_thrs = check_quality_args(
            quality_dataset, quality_score_thrs)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.log_interval = log_interval
        self.max_unreadable = max_unreadable

    @property
    def labeling_args(self) -> dict:
        """The batch size, workers, log interval and unreadable fraction
        of :func:`~mmcast.pseudo_labels.label_unlabeled_set`."""
        return dict(batch_size=self.batch_size, num_workers=self.num_workers,
                    log_interval=self.log_interval,
                    max_unreadable=self.max_unreadable)

    @property
    def quality_filter_cfg(self) -> dict:
        """The filter the quality set is labeled with: the lowest threshold
        swept, so that every threshold of the sweep can be measured."""
        return dict(self.filter_cfg, score_thr=self.quality_score_thrs[0])

    @property
    def score_thr_in_use(self):
        """The filter's threshold as configured (a number or ``'auto'``),
        for the quality record."""
        return AUTO if self.auto_score_thr else self.filter_cfg['score_thr']

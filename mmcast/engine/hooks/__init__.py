# Copyright (c) mmcast contributors. All rights reserved.
from .atomic_checkpoint_hook import AtomicCheckpointHook, AtomicLocalBackend
from .contrast_temperature_hook import ContrastTemperatureHook
from .guided_teacher_hook import GuidedTeacherHook
from .mask_annealing_hook import MaskAnnealingHook
from .metric_output_hook import MetricOutputHook
from .pseudo_label_hook import PseudoLabelHook
from .random_state_hook import RandomStateHook

__all__ = [
    'AtomicCheckpointHook', 'AtomicLocalBackend', 'ContrastTemperatureHook',
    'GuidedTeacherHook', 'MaskAnnealingHook', 'MetricOutputHook',
    'PseudoLabelHook', 'RandomStateHook'
]

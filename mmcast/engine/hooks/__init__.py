# Copyright (c) mmcast contributors. All rights reserved.
from .contrast_temperature_hook import ContrastTemperatureHook
from .guided_teacher_hook import GuidedTeacherHook
from .pseudo_label_hook import PseudoLabelHook

__all__ = ['ContrastTemperatureHook', 'GuidedTeacherHook', 'PseudoLabelHook']

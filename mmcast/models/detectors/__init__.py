# Copyright (c) mmcast contributors. All rights reserved.
from .cast_distiller import CASTDistiller, student_state_dict
from .cast_mask2former import CASTMask2Former

__all__ = ['CASTMask2Former', 'CASTDistiller', 'student_state_dict']

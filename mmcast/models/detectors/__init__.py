# Copyright (c) mmcast contributors. All rights reserved.
from .cast_distiller import CASTDistiller, student_state_dict
from .cast_mask2former import CASTMask2Former
from .eomt_student import EoMTStudent
from .guided_distiller import GuidedDistiller
from .teacher_student_detector import TeacherStudentDetector

__all__ = [
    'CASTMask2Former', 'CASTDistiller', 'EoMTStudent', 'GuidedDistiller',
    'TeacherStudentDetector', 'student_state_dict'
]

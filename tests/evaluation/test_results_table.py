# Copyright (c) mmcast contributors. All rights reserved.
"""The results table's signed differences
(:func:`mmcast.evaluation.results_table.signed`), which the results and the
ablation tables both print: a difference that rounds to zero reads +0.0."""
import pytest

from mmcast.evaluation.results_table import signed


@pytest.mark.parametrize('value,digits,text', [
    (-0.0, 1, '+0.0'), (-1e-17, 2, '+0.00'), (-0.004, 2, '+0.00'),
    (-0.04, 1, '+0.0'), (-0.05001, 1, '-0.1'), (0.67, 2, '+0.67'),
    (-2.3, 1, '-2.3')])
def test_a_difference_is_signed_and_never_minus_zero(value, digits, text):
    assert signed(value, digits) == text

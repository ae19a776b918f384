# Copyright (c) mmcast contributors. All rights reserved.
"""Tests of the SwinMTL project (``pytest projects/swinmtl/tests``; ``make
test`` runs them with mmcast's ``tests``)."""

# Copyright (c) mmcast contributors. All rights reserved.
"""The toy worlds and the tiny teachers: small data and models that build
offline, for the toy pipeline, the demo and the tests.

* :mod:`.tiny_teachers`: a tiny Grounding-DINO + SAM 2 teacher's files;
* :mod:`.tiny_sam3`: a tiny SAM 3 teacher's files.
"""

# Copyright (c) mmcast contributors. All rights reserved.
"""The toy worlds and the tiny teachers: small data and models that build
offline, for the toy pipeline, the demo and the tests.

* :mod:`.worlds`: the three worlds and :func:`make_toy_dataset`, which
  writes one in the Cityscapes layout (:mod:`.cityscapes_layout`);
* :mod:`.scene`: what every world draws (a scene in Cityscapes labels);
* :mod:`.streets` (with :mod:`.street_objects` and :mod:`.drawing`),
  :mod:`.tabletop`, :mod:`.cells`: one world each;
* :mod:`.coco_layout`: a world as a plain COCO dataset;
* :mod:`.tiny_teachers`: a tiny Grounding-DINO + SAM 2 teacher's files;
* :mod:`.tiny_sam3`: a tiny SAM 3 teacher's files.

Imports run one way: ``scene`` and ``drawing`` import no other module here;
the worlds import them; ``worlds`` imports the worlds and
``coco_layout`` imports ``worlds``.
"""

# Copyright (c) mmcast contributors. All rights reserved.
"""What MMEngine keeps per process after a runner is gone."""


def forget_visualizers() -> None:
    """Drop every visualizer instance MMEngine keeps.

    MMEngine keeps one visualizer per name and process and lends it to the
    next runner that asks for the same name, save dir and backends
    included. A process that builds runners one after another (the test
    suite, the in-process smoke run) calls this after each, so that the
    next runner writes into its own work dir and not into an earlier one
    that may be gone.
    """
    from mmengine.visualization import Visualizer
    classes = [Visualizer]
    for cls in classes:
        cls._instance_dict.clear()
        classes.extend(cls.__subclasses__())

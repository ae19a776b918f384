# Copyright (c) mmcast contributors. All rights reserved.
"""A config whose text MMEngine writes without yapf's reformatting.

``Config.pretty_text`` (the log's ``Config:``, ``Config.dump``, the
checkpoints' ``meta.cfg``) writes the config one key per line, then has
yapf reformat it. On a CAST stage's config the reformatting took 0.8-2.4 s
a call on a CPU core, and a training run asks for the text five times.
Without it the text is the same Python and reads back as the same config.
"""
import copy

from mmengine.config import Config


def without_code_formatting(cfg: Config) -> Config:
    """A copy of ``cfg`` (sharing its values) whose text is not reformatted.

    Args:
        cfg (Config): A loaded config; it keeps its own setting.

    Returns:
        Config: The copy.
    """
    cfg = copy.copy(cfg)
    # Config takes the flag at construction (``format_python_code``, which
    # ``Config.fromfile`` drops for a config without lazy imports) and has
    # no setter for it
    object.__setattr__(cfg, '_format_python_code', False)
    return cfg

# Copyright (c) mmcast contributors. All rights reserved.
from .batch_scaled_runner import BatchScaledRunner  # noqa: F401
from .hooks import *  # noqa: F401,F403

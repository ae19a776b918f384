# Copyright (c) mmcast contributors. All rights reserved.
from .assigners import *  # noqa: F401,F403
from .samplers import *  # noqa: F401,F403

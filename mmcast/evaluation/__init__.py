# Copyright (c) mmcast contributors. All rights reserved.
__all__ = []

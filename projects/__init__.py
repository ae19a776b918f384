# Copyright (c) mmcast contributors. All rights reserved.
"""Work beside mmcast that is not part of its package (MMDetection's
``projects/`` convention): each project has its own configs, code, tools,
tests and README, and is imported from the repository root
(``custom_imports = dict(imports=['projects.<name>.<package>'])``)."""

"""The sandbox's main process: `python3 /opt/bai/runner/kernel_runner.py`.

Stdlib only, python3.9-compatible. Run as a script, it makes its own directory
importable as the package it is (so its siblings share one set of relative
imports with the agent's copy of them) and takes itself off `sys.path`, so
that a user's module named like one of ours is still found.
"""

from __future__ import annotations

import importlib
import os
import sys


def _load_as_package() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[0] = os.path.dirname(here)
    package = os.path.basename(here)
    importlib.import_module(package)
    return package


if __name__ == "__main__" and not __package__:
    __package__ = _load_as_package()

from .session import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())

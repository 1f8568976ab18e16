"""The sandbox's main process: `python3 /opt/bai/runner/kernel_runner.py [FALLBACK]`.

Stdlib only. The version check comes first and this file parses and runs up to
it on any python3 (no newer syntax, no annotation evaluated on older ones),
so an image whose python3 is too old runs the runner with FALLBACK (the image's
own Backend.AI interpreter, layout.UPSTREAM_PYTHON) instead: one interpreter
start either way. Then it makes its own directory importable as the package it
is (so its siblings share one set of relative imports with the agent's copy of
them) and takes itself off `sys.path`, so that a user's module named like one
of ours is still found.
"""

import os
import sys

# The oldest python the runner's modules run on.
MIN_PYTHON = (3, 9)


def _too_old_python(argv: "list[str]") -> int:
    """Run the script with the fallback interpreter, or say why it cannot run."""
    fallback = argv[1] if len(argv) > 1 else ""
    if fallback and os.path.realpath(fallback) != os.path.realpath(sys.executable):
        if os.access(fallback, os.X_OK):
            os.execv(fallback, [fallback, os.path.abspath(__file__)])
    sys.stderr.write("bai: no python >= 3.9 in this image\n")
    return 127


def _load_as_package() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[0] = os.path.dirname(here)
    package = os.path.basename(here)
    __import__(package)
    return package


if __name__ == "__main__" and sys.version_info[:2] < MIN_PYTHON:
    sys.exit(_too_old_python(sys.argv))

if __name__ == "__main__" and not __package__:
    __package__ = _load_as_package()

from .session import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())

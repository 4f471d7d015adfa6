"""Profiling hooks for ``bench/deployment.py --profile``: on its path only when it profiles.

Airflow imports ``airflow_local_settings`` in every process it starts, and a triggerer's
trigger runner is a fork of its supervisor, so both get these signal handlers:

- ``SIGRTMIN+1`` writes a count of live objects by type to ``$KLING_PROFILE_DIR/<pid>.idle.json``,
  and with ``KLING_PROFILE_TRACEMALLOC=1`` starts tracemalloc (what is allocated from then on is
  traced: it slows the process several times, so much that a triggerer holding 1,000 triggers
  cannot keep up);
- ``SIGRTMIN+2`` writes the same count to ``<pid>.types.json`` and a snapshot to
  ``<pid>.tracemalloc`` if tracing.
"""

from __future__ import annotations

import collections
import gc
import json
import os
import signal
import tracemalloc
from pathlib import Path
from types import FrameType

FRAMES = 30


def _start(signum: int, frame: FrameType | None) -> None:
    _count_types("idle")
    if os.environ.get("KLING_PROFILE_TRACEMALLOC") == "1":
        tracemalloc.start(FRAMES)


def _dump(signum: int, frame: FrameType | None) -> None:
    if tracemalloc.is_tracing():
        tracemalloc.take_snapshot().dump(str(_folder() / f"{os.getpid()}.tracemalloc"))
    _count_types("types")


def _folder() -> Path:
    return Path(os.environ["KLING_PROFILE_DIR"])


def _count_types(name: str) -> None:
    types = collections.Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.get_objects())
    (_folder() / f"{os.getpid()}.{name}.json").write_text(json.dumps(dict(types)))


if os.environ.get("KLING_PROFILE_DIR"):
    signal.signal(signal.SIGRTMIN + 1, _start)
    signal.signal(signal.SIGRTMIN + 2, _dump)

"""Process groups of a deployment: free ports, and stopping a group (or all of them) for good."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sys
import time

from airflow_provider_kling.testing.topology import CELERY_WORKERS, TRIGGERERS

# Whoever feeds the others stops first; the databases last, Postgres with a fast shutdown
# (SIGTERM would wait for every client to disconnect).
STOP_ORDER = ("scheduler", *CELERY_WORKERS, *TRIGGERERS, "dag-processor", "api-server", "simulator", "redis")
STOP_SIGNALS = {"postgres": signal.SIGINT}


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def alive(pgid: int) -> bool:
    """Whether any process of the process group ``pgid`` is still running."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - not ours any more
        return False
    return True


def stop_group(pgid: int, timeout: float = 20.0, sig: int = signal.SIGTERM) -> None:
    """Signal a whole process group, wait for it to go, and SIGKILL whatever is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)
    _reap_until_gone(pgid, timeout)
    if alive(pgid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        _reap_until_gone(pgid, 10)


def _reap_until_gone(pgid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while alive(pgid) and time.monotonic() < deadline:
        # Reap our own children so they do not linger as zombies (which still count as members).
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-pgid, os.WNOHANG)[0]:
                pass
        time.sleep(0.1)


def stop_all(pids: dict[str, int], cleanups: list[str]) -> None:
    """Stop the recorded process groups in :data:`STOP_ORDER` (Postgres last), then delete ``cleanups``."""
    for name in sorted(pids, key=lambda n: STOP_ORDER.index(n) if n in STOP_ORDER else len(STOP_ORDER)):
        print(f"Stopping {name} (process group {pids[name]}) ...", file=sys.stderr)
        stop_group(int(pids[name]), sig=STOP_SIGNALS.get(name, signal.SIGTERM))
    pids.clear()
    while cleanups:
        remove_tree(cleanups.pop())


def remove_tree(path: str) -> None:
    """Delete a temporary folder of ours, whoever owns the files in it."""
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(path)

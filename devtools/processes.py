"""Process groups of a deployment: free ports, what a group's processes hold, and stopping them for good.

Which process holds what is read from Linux's /proc: Airflow's API names the triggerer job a
trigger runs on and the task instance a worker runs, but not the process. A triggerer keeps
its triggers' log files (``*.log.trigger.<job id>.log``) open, and a Celery worker runs each
task under a supervisor process titled ``airflow supervisor: <task instance id>``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import sys
import time
from collections import Counter
from pathlib import Path

from devtools.topology import CELERY_WORKERS, TRIGGERERS

#: Whoever feeds the others stops first (a set-up command still running, ``initdb`` or an
#: ``airflow-command`` such as the migration, first of all); the databases last, Postgres with a
#: fast shutdown (SIGTERM would wait for every client to disconnect).
STOP_ORDER = (
    "initdb",
    "airflow-command",
    "scheduler",
    *CELERY_WORKERS,
    *TRIGGERERS,
    "dag-processor",
    "api-server",
    "simulator",
    "redis",
)
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
    # An exited member counts for killpg until its parent reaps it; one whose parent died (the
    # watchdog's case) waits for init to. It runs nothing.
    return any(state != "Z" for _, state in _members(pgid))


def stop_group(pgid: int, timeout: float = 20.0, sig: int = signal.SIGTERM) -> None:
    """Signal a whole process group, wait for it to go, and SIGKILL whatever is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)
    _reap_until_gone(pgid, timeout)
    if alive(pgid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        _reap_until_gone(pgid, 10)
    _reap(pgid)


def _reap_until_gone(pgid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pgid)
        if not alive(pgid):
            return
        time.sleep(0.1)


def _reap(pgid: int) -> None:
    """Reap our own children of the group, so they do not linger as zombies."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-pgid, os.WNOHANG)[0]:
            pass


def stop_all(pids: dict[str, int], cleanups: list[str]) -> None:
    """Stop the recorded process groups in :data:`STOP_ORDER` (Postgres last), then delete ``cleanups``.

    Each is forgotten only once stopped, and a call made while another runs (a signal's handler
    interrupting a stop) finishes the job for both.
    """
    for name in sorted(pids, key=lambda n: STOP_ORDER.index(n) if n in STOP_ORDER else len(STOP_ORDER)):
        if (pgid := pids.get(name)) is None:
            continue
        print(f"Stopping {name} (process group {pgid}) ...", file=sys.stderr)
        stop_group(int(pgid), sig=STOP_SIGNALS.get(name, signal.SIGTERM))
        pids.pop(name, None)
    for path in reversed(list(cleanups)):
        remove_tree(path)
        with contextlib.suppress(ValueError):
            cleanups.remove(path)


def remove_tree(path: str) -> None:
    """Delete a temporary folder of ours, whoever owns the files in it."""
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(path)


_TRIGGER_LOG = re.compile(r"\.log\.trigger\.(\d+)\.log$")


def group_members(pgid: int) -> list[int]:
    """The processes of one process group."""
    return [pid for pid, _ in _members(pgid)]


def _members(pgid: int) -> list[tuple[int, str]]:
    """Each process of the group with its state (``Z`` for one exited but not yet reaped)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # The fields after the parenthesised command: state, ppid, pgrp, ...
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid:
            members.append((int(entry.name), fields[0]))
    return members


def open_trigger_logs(pgid: int) -> Counter[int]:
    """How many trigger log files a triggerer has open, per triggerer job id: the triggers it runs.

    Only the group's leader counts: it is the triggerer's supervisor, which writes each of its
    triggers' logs. Its ``serve-logs`` child also opens trigger logs, of any triggerer's, while
    the API server reads them.
    """
    found: Counter[int] = Counter()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pgid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if match := _TRIGGER_LOG.search(os.readlink(fd)):
                    found[int(match.group(1))] += 1
    return found


def runs_task(pgid: int, ti_id: str) -> bool:
    """Whether a process of the group supervises the task instance ``ti_id``."""
    for pid in group_members(pgid):
        with contextlib.suppress(OSError):
            if f"airflow supervisor: {ti_id}" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(
                errors="replace"
            ):
                return True
    return False


#: What a Celery worker's task supervisor logs when a task process it started ends.
_WORKLOAD_DONE = re.compile(
    r"Workload finished\b.*\bworkload_id=([0-9a-f-]{36})\b.*\bworkload_type=ExecuteTask"
)


def worker_task_starts(log_dir: Path) -> Counter[str]:
    """
    How many task processes the Celery workers started (and saw end), per task instance id: each
    worker task-runner start is one ``ExecuteTask`` workload, and its supervisor logs one
    "Workload finished" line, however the task ended. A task that started and ended in a
    triggerer has none.
    """
    found: Counter[str] = Counter()
    for log in sorted(log_dir.glob("celery-worker*.log")):
        with contextlib.suppress(OSError), open(log, errors="replace") as lines:
            for line in lines:
                if "Workload finished" in line and (match := _WORKLOAD_DONE.search(line)):
                    found[match.group(1)] += 1
    return found


def group_usage(pgid: int) -> tuple[float, int]:
    """
    CPU seconds (user + system) the group has used, and RSS in KiB of its live processes.

    The CPU includes the processes that have exited and been reaped by a live member: a Celery
    worker's task processes live a few seconds each, and their time is then only in the
    ``cutime``/``cstime`` of the process that waited for them.
    """
    ticks, rss_pages = 0, 0
    for pid in group_members(pgid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            # utime, stime, cutime and cstime are fields 14-17 of stat, rss field 24 (state is
            # field 3). A child's time reaches its parent's cutime only once reaped: never twice.
            ticks += sum(int(value) for value in fields[11:15])
            rss_pages += int(fields[21])
    return ticks / os.sysconf("SC_CLK_TCK"), rss_pages * os.sysconf("SC_PAGE_SIZE") // 1024

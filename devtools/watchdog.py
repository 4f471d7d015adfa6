"""A watchdog process that stops a deployment once the process that started it is gone.

No handler runs on SIGKILL (or the kernel's out-of-memory killer), so the process that starts a
deployment also starts this watchdog, in a session of its own (no terminal's or ``timeout``'s
signal for the starter's group reaches it), and keeps the only write end of a pipe to it. It tells
the watchdog each process group it starts and each temporary folder it makes, one JSON line
each. The kernel closes the pipe when the starter ends, however it ends: if the starter had not
first said ``release``, the watchdog stops every group it was told of, in the order ``stop()``
uses, removes the folders, and exits. ``release`` (after a clean stop, or when ``make airflow-up``
hands the deployment over to ``make airflow-down``) makes it exit and do nothing.

Why not ``prctl(PR_SET_PDEATHSIG)`` in each component: it fires when the *thread* that forked
the component ends, not the process (a component started from a worker thread would be killed
with that thread); it signals one process, the component's leader, not the group under it (an
Airflow component's task runners, Celery's pool, Postgres under ``runuser``); a change of user,
as ``runuser`` makes for Postgres, clears it; and it cannot be switched off after the exec, so
``make airflow-up``, whose starter exits by design, could not hand its deployment over. The
watchdog stops whole groups the way ``stop()`` does, and lets go on request.

A process that ``fork()``\\s without ``exec`` copies the pipe's write end and with it keeps the
watchdog waiting until that copy ends too; ``subprocess`` closes it in every child it starts.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

from devtools.processes import stop_all

ROOT = Path(__file__).resolve().parents[1]


class Watchdog:
    """The starter's end: start the watchdog, then tell it what to stop should this process die."""

    def __init__(self, what: str, log: Path) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            self._proc = subprocess.Popen(
                # ``what`` (the deployment's home) in its command line names it in ps.
                [sys.executable, "-m", "devtools.watchdog", what],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._pipe: IO[bytes] | None = self._proc.stdin

    def track(self, name: str, pgid: int) -> None:
        self._send({"group": name, "pgid": pgid})

    def forget(self, pgid: int) -> None:
        """A group stopped on purpose while the deployment runs: its id may be reused later."""
        self._send({"forget": pgid})

    def cleanup(self, path: str) -> None:
        self._send({"cleanup": path})

    def release(self) -> None:
        """Let go: the watchdog exits and stops nothing."""
        self._send({"release": True})
        if self._pipe is not None:
            self._pipe.close()
            self._pipe = None
        self._proc.wait(timeout=30)

    def _send(self, message: dict[str, Any]) -> None:
        if self._pipe is None:
            return
        try:
            self._pipe.write(json.dumps(message).encode() + b"\n")
            self._pipe.flush()
        except OSError as exc:  # BrokenPipeError: someone killed the watchdog
            print(f"The deployment's watchdog is gone ({exc}); only a signal handler stops it now.")
            self._pipe = None


def watch(messages: IO[str], what: str) -> bool:
    """Read the starter's messages until the pipe closes; stop what they name unless released.

    Returns whether it had to stop anything.
    """
    # By name, as the starter records them: a group started under a name replaces the last one.
    groups: dict[str, int] = {}
    cleanups: list[str] = []
    for line in messages:
        message = json.loads(line)
        if "group" in message:
            groups[str(message["group"])] = int(message["pgid"])
        elif "forget" in message:
            groups = {name: pgid for name, pgid in groups.items() if pgid != int(message["forget"])}
        elif "cleanup" in message:
            cleanups.append(str(message["cleanup"]))
        elif "release" in message:
            return False
    if not groups and not cleanups:
        return False
    print(f"The process that started the deployment in {what} ended without stopping it.", flush=True)
    stop_all(groups, cleanups)
    return True


def main(argv: list[str]) -> int:
    what = argv[0] if argv else "?"
    watch(sys.stdin, what)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

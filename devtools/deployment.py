"""Start and stop a real Airflow 3 deployment with this provider, one process per component.

The end-to-end tests (``tests/e2e``) and ``make airflow-up`` / ``make airflow-down`` both use it::

    python -m devtools.deployment up [--home DIR] [--dags-folder DIR]
    python -m devtools.deployment down [--home DIR]

``up`` prints the UI address and the login; ``down`` stops everything ``up`` started.
``--topology celery`` starts the production topology instead (Postgres, CeleryExecutor on
Redis, two Celery workers, two triggerers, the simulator rate-limited; see
:mod:`devtools.topology`).

The stack is SQLite + LocalExecutor (parallelism 2) in a throw-away ``AIRFLOW_HOME``, with
``airflow api-server``, ``airflow scheduler``, ``airflow dag-processor`` and ``airflow triggerer``
each started in its own session (process group), the given DAGs folder, the simple auth manager
with one admin whose password is known, and (for ``up``) the GMI simulator as ``kling_default``.
Every port is a free one picked at start. The process groups are recorded in ``<home>/stack.json``
so ``down`` can stop them from another process, and each component is stopped by its own process
group: ``airflow standalone`` does not shut down cleanly, this does. Until ``stop()`` (or, for
``up``, until it has started), the deployment ends with the process that started it (``arm()``).
It is this repository's tool, not the wheel's: run it from the repository's root.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_kling.testing.readiness import wait_until
from devtools.processes import alive, free_port, stop_all, stop_group
from devtools.signals import StopOnSignals
from devtools.topology import (
    CELERY_WORKERS,
    TOPOLOGIES,
    TRIGGERERS,
    Services,
    component_argv,
    component_env,
    local_env,
    workers_ready,
)
from devtools.watchdog import Watchdog

BIN = Path(sys.executable).parent
AIRFLOW = str(BIN / "airflow")
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
#: The simulator's rate limit in the celery topology: submits accepted per 10 seconds.
CELERY_RATE_LIMIT = 15
ADMIN_USER = "admin"
STATE_FILE = "stack.json"
# Relative to the working directory, which for ``make airflow-up`` is the checkout.
DEFAULT_HOME = Path(".airflow-stack")
DEFAULT_DAGS_FOLDER = Path("example_dags")


@dataclass
class AirflowStack:
    """One Airflow deployment; ``start()`` it, use :attr:`base_url`, ``stop()`` it."""

    home: Path
    dags_folder: Path
    kling_base_url: str | None = None
    kling_api_key: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    #: ``airflow`` commands run once the database is migrated, before any component starts
    #: (``["teams", "sync"]`` creates the teams a multi-team bundle config names).
    prepare: list[list[str]] = field(default_factory=list)
    with_simulator: bool = False
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    api_port: int = 0
    pids: dict[str, int] = field(default_factory=dict)
    #: ``local`` (SQLite, LocalExecutor, one triggerer) or ``celery`` (Postgres, Celery, two of each).
    topology: str = "local"
    #: Temporary folders outside ``home`` that ``stop()`` deletes (the Postgres cluster).
    cleanups: list[str] = field(default_factory=list)
    services: Services | None = field(default=None, init=False, repr=False)
    # Made once by start(): every component must share its Fernet key, secrets and ports.
    _airflow_env: dict[str, str] | None = field(default=None, init=False, repr=False)
    # What stops the deployment when this process ends before stop() (see arm()).
    _signals: StopOnSignals | None = field(default=None, init=False, repr=False)
    _watchdog: Watchdog | None = field(default=None, init=False, repr=False)

    @property
    def base_url(self) -> str:
        """The API server's (and UI's) address."""
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def components(self) -> tuple[str, ...]:
        """The Airflow processes of this topology."""
        if self.topology == "celery":
            return ("api-server", "scheduler", "dag-processor", *TRIGGERERS, *CELERY_WORKERS)
        return COMPONENTS

    @property
    def log_dir(self) -> Path:
        """Where each component's output goes, one ``<name>.log`` each."""
        return self.home / "stack-logs"

    # Setup

    def _environment(self) -> dict[str, str]:
        env = local_env(self.home, self.dags_folder, self.api_port, ADMIN_USER)
        if self.services is not None:
            env.update(self.services.airflow_env())
        env.update(self.extra_env)
        return env

    def _spawn(
        self, name: str, argv: list[str], env: dict[str, str], cwd: Path | None = None
    ) -> subprocess.Popen[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        deferred = self._signals.deferred() if self._signals else contextlib.nullcontext()
        with open(self.log_dir / f"{name}.log", "ab") as log, deferred:
            proc = subprocess.Popen(
                argv,
                env=env,
                cwd=cwd or self.home,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop it and all its children at once
            )
            self.pids[name] = proc.pid
            if self._watchdog:
                self._watchdog.track(name, proc.pid)
        self._save()
        return proc

    def run_to_end(self, name: str, argv: list[str], env: dict[str, str], cwd: Path | None = None) -> None:
        """Run a set-up command (``initdb``, an ``airflow`` command) recorded as a group while it runs.

        So a signal, ``stop()`` or the watchdog stops it with the rest: a migration left running
        after its database is gone would outlive the deployment.
        """
        proc = self._spawn(name, argv, env, cwd)
        # On an exception (a timeout, KeyboardInterrupt) it stays recorded, for stop() to stop.
        code = proc.wait(timeout=600)
        if name in self.pids:  # not if a signal's stop() came first
            self._forget(name)
        if code:
            raise subprocess.CalledProcessError(code, argv)

    def _forget(self, name: str) -> None:
        pgid = self.pids.pop(name)
        if self._watchdog:
            self._watchdog.forget(pgid)
        self._save()

    def spawn_service(self, name: str, argv: list[str], cwd: Path | None = None) -> int:
        """Start a non-Airflow process (Postgres, Redis) that ``stop()`` stops with the rest."""
        return self._spawn(name, argv, dict(os.environ), cwd).pid

    def record_cleanup(self, path: str) -> None:
        """A temporary folder for ``stop()`` (or ``down``) to delete."""
        self.cleanups.append(path)
        if self._watchdog:
            self._watchdog.cleanup(path)
        self._save()

    def _save(self) -> None:
        state = {
            "base_url": self.base_url,
            "username": ADMIN_USER,
            "password": self.password,
            "pids": self.pids,
            "kling_base_url": self.kling_base_url,
            "kling_api_key": self.kling_api_key,
            "topology": self.topology,
            "cleanups": self.cleanups,
        }
        (self.home / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")

    def arm(self) -> None:
        """Tie the deployment to this process before anything starts: SIGTERM, SIGINT or SIGHUP
        stop it (:mod:`devtools.signals`), and so does this process's end without ``stop()``,
        a SIGKILL included (:mod:`devtools.watchdog`), until :meth:`stop` or :meth:`detach`."""
        if self._watchdog is None:
            self._watchdog = Watchdog(str(self.home), self.log_dir / "watchdog.log")
            for path in self.cleanups:
                self._watchdog.cleanup(path)
        if self._signals is None:
            self._signals = StopOnSignals(self.stop, str(self.home))
            self._signals.install()

    def detach(self) -> None:
        """Leave the deployment running after this process ends (``make airflow-up``; ``down`` stops it)."""
        if self._signals:
            self._signals.uninstall()
        if self._watchdog:
            self._watchdog.release()
        self._signals = self._watchdog = None

    def start_services(self) -> None:
        """Postgres and Redis (celery topology) and the simulator (``with_simulator``), if any."""
        if self.topology == "celery":
            self.services = Services(self)
            self.services.start(free_port(), free_port())
        if self.with_simulator and not self.kling_base_url:
            self._start_simulator()

    def start(self, timeout: float = 300.0) -> AirflowStack:
        """Migrate the database, start every component and return once all report healthy."""
        if self.topology not in TOPOLOGIES:
            raise ValueError(f"Invalid topology: {self.topology!r}. Allowed: {', '.join(TOPOLOGIES)}.")
        self.api_port = self.api_port or free_port()
        self.arm()
        # The simple auth manager keeps this file's password for a configured user.
        (self.home / "passwords.json").write_text(json.dumps({ADMIN_USER: self.password}) + "\n")
        try:
            self.start_services()
            env = self._airflow_env = self._environment()
            for command in (["db", "migrate"], *self.prepare, *self._kling_connection()):
                self.run_to_end("airflow-command", [AIRFLOW, *command], env)
            for name in self.components:
                self.start_component(name)
            self.wait_healthy(timeout)
        except BaseException as exc:
            if not isinstance(exc, KeyboardInterrupt):  # an interrupt is no failure to explain
                self.print_log_tails()  # before stop(), which may delete the home they are in
            self.stop()
            raise
        return self

    def _kling_connection(self) -> list[list[str]]:
        """``kling_default`` as a stored connection, so Admin -> Connections shows and edits it."""
        if not self.kling_base_url:
            return []
        command = ["connections", "add", "kling_default", "--conn-type", "kling"]
        command += ["--conn-host", self.kling_base_url, "--conn-password", self.kling_api_key or ""]
        # A stored port is what makes Airflow 3.3.2's Test button work (docs/troubleshooting.rst).
        return [[*command, "--conn-port", str(urlsplit(self.kling_base_url).port or 443)]]

    def print_log_tails(self, lines: int = 40) -> None:
        """The end of each component's output, to stderr: what CI shows when the stack fails."""
        for log in sorted(self.log_dir.glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            print(f"----- {log} (last {len(tail)} lines) -----", *tail, sep="\n", file=sys.stderr)

    def _start_simulator(self) -> None:
        port = free_port()
        self.kling_api_key = self.kling_api_key or f"sim-{secrets.token_hex(8)}"
        argv = [sys.executable, "-m", "airflow_provider_kling.testing.simulator", "--port", str(port)]
        argv += ["--api-key", self.kling_api_key, "--queued-seconds", "3", "--processing-seconds", "6"]
        if self.services:
            argv += ["--rate-limit", str(CELERY_RATE_LIMIT), "--rate-limit-seconds", "10"]
        self._spawn("simulator", argv, dict(os.environ))
        self.kling_base_url = f"http://127.0.0.1:{port}"
        stats = f"{self.kling_base_url}/_simulator/stats"
        wait_until(lambda: _get(stats) is not None, 30, "the simulator")

    def start_component(self, name: str) -> int:
        """Start one Airflow component (``scheduler``, ``triggerer``, ...) in its own process group."""
        if self._airflow_env is None:
            raise RuntimeError("start() the stack before starting a component of it")
        env = component_env(name, self._airflow_env, free_port())
        return self._spawn(name, component_argv(AIRFLOW, name), env).pid

    def restart_component(self, name: str, sig: int = signal.SIGKILL) -> int:
        """Kill one component (by default without a chance to clean up) and start a new one."""
        stop_group(self.pids[name], sig=sig)
        self._forget(name)
        return self.start_component(name)

    def health(self) -> dict[str, Any] | None:
        """``/api/v2/monitor/health``, or ``None`` while the API server does not answer."""
        health: dict[str, Any] | None = _get(f"{self.base_url}/api/v2/monitor/health")
        return health

    def wait_healthy(self, timeout: float = 300.0, components: tuple[str, ...] | None = None) -> None:
        """Wait until the health endpoint reports ``components`` (default: all) healthy."""
        wanted = components or ("metadatabase", "scheduler", "triggerer", "dag_processor")

        def healthy() -> bool:
            for name, pid in self.pids.items():
                if not alive(pid):
                    raise RuntimeError(f"{name} exited; see {self.log_dir / (name + '.log')}")
            status = self.health()
            if not status:
                return False
            workers = tuple(name for name in self.pids if name in CELERY_WORKERS)
            healthy = all((status.get(c) or {}).get("status") == "healthy" for c in wanted)
            return healthy and workers_ready(self.log_dir, workers)

        wait_until(healthy, timeout, "Airflow's components to report healthy")

    # Teardown

    def stop(self) -> None:
        """Stop every process this object started, by process group, and delete its temporary folders."""
        stop_all(self.pids, self.cleanups)
        if (self.home / STATE_FILE).exists():
            self._save()
        self.detach()  # nothing is left to hand over

    # Auth

    def token(self) -> str:
        """A JWT for the admin user, for ``Authorization: Bearer``."""
        body = json.dumps({"username": ADMIN_USER, "password": self.password}).encode()
        headers = {"Content-Type": "application/json"}
        req = urllib.request.Request(f"{self.base_url}/auth/token", body, headers, method="POST")
        with urllib.request.urlopen(req, timeout=30) as resp:
            return str(json.loads(resp.read())["access_token"])


def _get(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return json.loads(resp.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None


def down(home: Path) -> None:
    """Stop the stack recorded in ``home`` by an earlier ``up``, from any process."""
    state_file = home / STATE_FILE
    if not state_file.exists():
        print(f"No stack recorded in {state_file}.")
        return
    state = json.loads(state_file.read_text())
    state.setdefault("pids", {})
    state.setdefault("cleanups", [])
    stop_all(state["pids"], state["cleanups"])
    # It holds the admin password and the simulator's key: nothing to keep once stopped.
    state_file.unlink()
    print(f"Removed {state_file}.")


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; see ``--help``."""
    parser = argparse.ArgumentParser(
        prog="python -m devtools.deployment",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument(
        "--home", type=Path, default=DEFAULT_HOME, help=f"AIRFLOW_HOME (default {DEFAULT_HOME})"
    )
    parser.add_argument(
        "--dags-folder",
        type=Path,
        default=DEFAULT_DAGS_FOLDER,
        help=f"the DAGs folder for up (default {DEFAULT_DAGS_FOLDER})",
    )
    parser.add_argument(
        "--topology",
        choices=TOPOLOGIES,
        default="local",
        help="local: SQLite, LocalExecutor, one triggerer (default); "
        "celery: Postgres, CeleryExecutor on Redis, two workers, two triggerers",
    )
    args = parser.parse_args(argv)
    home: Path = args.home.resolve()
    dags_folder: Path = args.dags_folder.resolve()
    if args.action == "down":
        down(home)
        return 0
    if not dags_folder.is_dir():
        print(f"error: no DAGs folder at {dags_folder}; pass --dags-folder", file=sys.stderr)
        return 2
    if (home / STATE_FILE).exists():
        down(home)  # a stack left running from an earlier `up`
        shutil.rmtree(home)
    stack = AirflowStack(home=home, dags_folder=dags_folder, with_simulator=True, topology=args.topology)
    print(f"Starting Airflow in {home} (logs in {stack.log_dir}) ...")
    try:
        stack.start()  # a signal meanwhile stops what has started (see AirflowStack.arm)
    except KeyboardInterrupt:
        print("Interrupted: everything started so far is stopped.", file=sys.stderr)
        return 128 + signal.SIGINT
    stack.detach()  # it outlives this command by design: `make airflow-down` stops it
    print(
        f"Airflow is up at {stack.base_url}  (user {ADMIN_USER}, password {stack.password})\n"
        f"Topology: {stack.topology} ({', '.join(stack.components)})\n"
        f"GMI simulator: {stack.kling_base_url} (connection kling_default)\n"
        f"Stop it with: make airflow-down"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A deployment never outlives what started it (``devtools/signals.py``, ``devtools/watchdog.py``).

Each test starts a deployment in a child process through the launcher the benchmark, the e2e
fixtures and ``make airflow-up`` use: its services (a throw-away Postgres cluster, Redis, the
simulator) and, standing in for an Airflow component, a process with a child of its own in its
group. Then it signals the child and looks for what is left, by the recorded process groups and
by the deployment's home and cluster folder in every process's command line.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from airflow_provider_kling.testing.readiness import wait_until
from devtools.deployment import STATE_FILE, AirflowStack, down
from devtools.processes import alive
from devtools.signals import StopOnSignals

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import signal, sys, time
from pathlib import Path
from devtools.deployment import AirflowStack

# As a terminal's foreground job has them, whatever the test runner's process inherited.
signal.signal(signal.SIGINT, signal.default_int_handler)
signal.signal(signal.SIGTERM, signal.SIG_DFL)
signal.signal(signal.SIGHUP, signal.SIG_IGN if "nohup" in sys.argv else signal.SIG_DFL)
home, topology = Path(sys.argv[1]), sys.argv[2]
stack = AirflowStack(home=home, dags_folder=home, with_simulator=True, topology=topology)
stack.arm()
stack.start_services()
sleeper = [sys.executable, "-c", "import time; time.sleep(600)", str(home)]
starter = "import subprocess, sys, time; subprocess.Popen(sys.argv[1:]); time.sleep(600)"
stack.spawn_service("scheduler", [sys.executable, "-c", starter, *sleeper])
if "detach" in sys.argv:
    stack.detach()
    sys.exit(0)
(home / "ready").touch()
time.sleep(600)
"""


def leftovers(home: Path, state: dict) -> list[str]:
    """Every running process of the deployment: in one of its groups, or naming its folders."""
    pgids = set(state["pids"].values())
    marks = [str(home), *state["cleanups"]]
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        # A zombie (exited, not yet reaped by init) runs nothing.
        if fields[0] != "Z" and (int(fields[2]) in pgids or any(mark in cmdline for mark in marks)):
            found.append(f"pid {entry.name} (group {fields[2]}): {cmdline}")
    return found


def watchdogs(home: Path) -> list[int]:
    pids = []
    for entry in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            cmdline = entry.read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "devtools.watchdog" in cmdline and str(home) in cmdline:
            pids.append(int(entry.parent.name))
    return pids


def start_child(home: Path, topology: str, *flags: str) -> subprocess.Popen[bytes]:
    home.mkdir()
    with open(home / "child.log", "wb") as log:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(home), topology, *flags], cwd=ROOT, stdout=log, stderr=log
        )
    if "detach" not in flags:
        wait_until(lambda: (home / "ready").exists() or child.poll() is not None, 120, "the deployment")
        assert child.poll() is None, (home / "child.log").read_text()
    return child


def recorded(home: Path) -> dict:
    state = json.loads((home / STATE_FILE).read_text())
    return {"pids": dict(state["pids"]), "cleanups": list(state["cleanups"])}


@pytest.fixture
def home(tmp_path: Path):
    home = tmp_path / "home"
    yield home
    down(home)  # whatever a failed test left


@pytest.mark.parametrize(
    ("signo", "status"),
    [(signal.SIGTERM, -signal.SIGTERM), (signal.SIGHUP, -signal.SIGHUP), (signal.SIGINT, -signal.SIGINT)],
    ids=["SIGTERM", "SIGHUP", "SIGINT"],
)
def test_a_signal_stops_every_component_then_ends_the_process_as_it_would_have(home, signo, status):
    child = start_child(home, "celery")
    state = recorded(home)
    assert {"postgres", "redis", "simulator", "scheduler"} <= set(state["pids"])
    assert len(state["cleanups"]) == 1
    assert Path(state["cleanups"][0]).is_dir()
    assert len(leftovers(home, state)) >= 6  # Postgres has several processes, the fake scheduler two

    child.send_signal(signo)
    # Dying of the signal it got (for SIGINT, Python's own exit on KeyboardInterrupt): the shell
    # sees 128 + the signal's number.
    assert child.wait(timeout=120) == status, (home / "child.log").read_text()
    assert leftovers(home, state) == []
    assert not Path(state["cleanups"][0]).exists()
    assert "received: stopping the deployment" in (home / "child.log").read_text()


def test_sigkill_leaves_it_to_the_watchdog(home):
    child = start_child(home, "celery")
    state = recorded(home)
    assert watchdogs(home)

    child.kill()
    assert child.wait(timeout=30) == -signal.SIGKILL
    wait_until(lambda: not leftovers(home, state), 90, "the watchdog to stop the deployment")
    assert not Path(state["cleanups"][0]).exists()
    assert "ended without stopping it" in (home / "stack-logs" / "watchdog.log").read_text()


def test_a_signal_the_process_ignores_stays_ignored(home):
    child = start_child(home, "local", "nohup")
    state = recorded(home)
    child.send_signal(signal.SIGHUP)
    time.sleep(1)
    assert child.poll() is None
    assert all(alive(pgid) for pgid in state["pids"].values())
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=60) == -signal.SIGTERM
    assert leftovers(home, state) == []


def test_detach_hands_the_deployment_over_to_down(home):
    # What `make airflow-up` does once everything is up: the deployment outlives the command.
    child = start_child(home, "local", "detach")
    assert child.wait(timeout=120) == 0, (home / "child.log").read_text()
    state = recorded(home)
    time.sleep(1)
    assert all(alive(pgid) for pgid in state["pids"].values())
    assert watchdogs(home) == []  # released, not killed: it stopped nothing
    down(home)
    assert leftovers(home, state) == []


@pytest.mark.parametrize(("signo", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, -signal.SIGTERM)])
def test_airflow_up_interrupted_while_it_starts_stops_what_it_started(home, tmp_path, signo, status):
    home.mkdir()
    command = [sys.executable, "-m", "devtools.deployment", "up", "--home", str(home)]
    command += ["--dags-folder", str(tmp_path), "--topology", "celery"]
    with open(tmp_path / "up.log", "wb") as log:
        up = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=log)

    def migrating() -> bool:
        assert up.poll() is None, (tmp_path / "up.log").read_text()
        return (home / STATE_FILE).exists() and "airflow-command" in recorded(home)["pids"]

    # `airflow db migrate`, a set-up command that would go on without its database, is running.
    wait_until(migrating, 120, "the migration to start")
    state = recorded(home)
    up.send_signal(signo)
    assert up.wait(timeout=120) == status, (tmp_path / "up.log").read_text()
    assert leftovers(home, state) == []
    assert not Path(state["cleanups"][0]).exists()
    assert watchdogs(home) == []


def test_stop_puts_the_previous_handlers_back(tmp_path):
    before = {signo: signal.getsignal(signo) for signo in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    stack = AirflowStack(home=tmp_path, dags_folder=tmp_path)
    stack.arm()
    assert all(
        signal.getsignal(signo) != handler for signo, handler in before.items() if handler != signal.SIG_IGN
    )
    stack.stop()
    assert {signo: signal.getsignal(signo) for signo in before} == before
    assert watchdogs(tmp_path) == []


def test_outside_the_main_thread_only_the_watchdog_guards(tmp_path):
    # Python lets only the main thread set handlers (pytest-timeout's thread, a worker pool).
    before = signal.getsignal(signal.SIGTERM)
    stack = AirflowStack(home=tmp_path, dags_folder=tmp_path)
    thread = threading.Thread(target=stack.arm)
    thread.start()
    thread.join()
    assert signal.getsignal(signal.SIGTERM) == before
    assert watchdogs(tmp_path)
    stack.stop()
    assert watchdogs(tmp_path) == []


def test_a_signal_while_a_process_is_being_recorded_waits_for_the_record():
    # Between starting a component and recording it, a stop would not know it: it would outlive.
    order: list[str] = []
    previous = signal.signal(signal.SIGHUP, lambda signo, frame: order.append("previous handler"))
    guard = StopOnSignals(lambda: order.append("stop"), "test")
    try:
        guard.install()
        with guard.deferred():
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(0.1)  # the handler has run by now, and must only have noted the signal
            order.append("recorded")
        assert order == ["recorded", "stop", "previous handler"]
    finally:
        guard.uninstall()
        signal.signal(signal.SIGHUP, previous)

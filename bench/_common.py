"""What every benchmark shares: the result type, memory probes, and a simulator in its own process.

Each benchmark module has ``run(smoke: bool) -> Section``. ``smoke`` runs a tiny size that only proves
the code still works (``make test``); the full size is what ``make bench`` reports. Figures are ratios
against a baseline measured in the same run, because these machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_provider_kling.api import API_PREFIX

ROOT = Path(__file__).resolve().parent.parent
SIM_KEY = "bench-key"
#: The simulator's counter of status polls (``/_simulator/stats``).
POLL_ROUTE = "GET /requests/{id}"
# Importing Airflow writes an airflow.cfg into AIRFLOW_HOME (default ~/airflow): keep benchmarks out
# of the user's. Child processes inherit it; the process that made it deletes it at exit.
if "AIRFLOW_HOME" not in os.environ:
    os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="kling-bench-airflow-")
    atexit.register(shutil.rmtree, os.environ["AIRFLOW_HOME"], ignore_errors=True)


@dataclass(frozen=True)
class Target:
    """One target of the issue: what it asks, what was measured, and whether that meets it."""

    name: str
    goal: str
    measured: str
    met: bool


@dataclass
class Section:
    """One benchmark's part of ``docs/performance.md``."""

    title: str
    commands: list[str]
    body: str
    targets: list[Target] = field(default_factory=list)
    #: Why the docs tests do not run the commands (they run every command block they can).
    skip_reason: str = "takes minutes at full size; make bench-smoke runs it with --smoke"

    def markdown(self) -> str:
        marker = f"<!-- docs-test: skip {self.skip_reason} -->"
        lines = [f"## {self.title}", "", "Run alone with:", "", marker, "```sh"]
        lines += [*self.commands, "```", "", self.body.strip(), ""]
        if self.targets:
            lines += table(
                ["Target", "Goal", "Measured", "Met"],
                [[t.name, t.goal, t.measured, "yes" if t.met else "**no**"] for t in self.targets],
            )
            lines.append("")
        return "\n".join(lines)


def cli(run: Callable[[bool], Section], doc: str | None) -> None:
    """Run one benchmark as a script: ``python bench/NAME.py [--smoke]`` prints its section."""
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--smoke", action="store_true", help="a tiny run that only proves it works")
    print(run(parser.parse_args().smoke).markdown())


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """A Markdown table."""
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return out


def ratio(value: float, baseline: float) -> str:
    """``value / baseline`` as text, e.g. ``0.12x``."""
    return "n/a" if baseline <= 0 else f"{value / baseline:.2f}x"


# Memory, from /proc (Linux): RSS now, and its peak since the last reset.


def _status_kb(name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {name}")


def rss_kb() -> int:
    """Resident set size of this process now, in KiB."""
    return _status_kb("VmRSS")


def peak_rss_kb() -> int:
    """Peak resident set size since the process started or :func:`reset_peak_rss`, in KiB."""
    return _status_kb("VmHWM")


def reset_peak_rss() -> None:
    """Reset the kernel's peak-RSS counter to the current RSS, so the next peak is this step's own."""
    Path("/proc/self/clear_refs").write_text("5")


# The simulator, in a process of its own so its CPU is never counted as ours.


@dataclass(frozen=True)
class SimulatorProcess:
    base_url: str
    api_key: str

    @classmethod
    def from_connection_env(cls, conn_id: str = "kling_default") -> SimulatorProcess:
        """The simulator a child process was pointed at by :func:`connection_env`."""
        conn = json.loads(os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"])
        return cls(conn["host"], conn["password"])

    @property
    def api_url(self) -> str:
        return self.base_url + API_PREFIX

    def control(self, path: str, body: Any = None) -> Any:
        """Call the simulator's ``/_simulator/`` control API."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.base_url}/_simulator/{path}",
            data=data,
            method="GET" if body is None else "POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.load(resp)

    def api(self, path: str, body: Any = None) -> Any:
        """Call the GMI API of the simulator with its key: GET, or POST of ``body`` as JSON."""
        req = urllib.request.Request(
            f"{self.api_url}{path}",
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.load(resp)

    def submit(self) -> str:
        """Submit one image-to-video request of a URL image, without the provider; its id."""
        payload = {"first_frame": "https://example.com/a.png", "prompt": "bench"}
        answer = self.api("/requests", {"model": "kling-3.0-turbo-i2v", "payload": payload})
        return str(answer["request_id"])


@contextlib.contextmanager
def simulator(*options: str) -> Iterator[SimulatorProcess]:
    """Serve the simulator on a free loopback port in a child process; options are its CLI flags."""
    cmd = [sys.executable, "-m", "airflow_provider_kling.testing.simulator", "--port", "0"]
    proc = subprocess.Popen(
        [*cmd, "--api-key", SIM_KEY, *options], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert proc.stdout is not None
        base = proc.stdout.readline().strip()
        if not base.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"the simulator did not start (it printed {base!r})")
        yield SimulatorProcess(base, SIM_KEY)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def connection_env(sim: SimulatorProcess, conn_id: str = "kling_default") -> dict[str, str]:
    """Environment that defines an Airflow ``kling`` connection to the simulator."""
    uri = json.dumps({"conn_type": "kling", "host": sim.base_url, "password": sim.api_key})
    return {f"AIRFLOW_CONN_{conn_id.upper()}": uri}


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Send file descriptor 1 to /dev/null: log lines still get rendered (as in Airflow) but go nowhere."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def run_child(args: Sequence[str], env: dict[str, str] | None = None, timeout: float = 600) -> Any:
    """Run ``python <args>`` and parse the JSON it prints last: each measurement gets a fresh process."""
    full_env = {**os.environ, **(env or {})}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=full_env, timeout=timeout, cwd=ROOT
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args)} exited {proc.returncode} after {time.monotonic() - started:.0f} s:\n"
            f"{proc.stderr[-3000:]}"
        )
    return json.loads(proc.stdout.strip().splitlines()[-1])

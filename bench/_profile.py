"""Whose CPU and memory a triggerer spends: ``bench/deployment.py --profile DIR``.

The first triggerer is sampled with py-spy (its supervisor and its trigger runner, from
outside, ``--nonblocking`` so they never pause); the second traces its allocations with
tracemalloc from before its triggers start to when they all run (the hooks in
``bench/profiling/airflow_local_settings.py``). Each sample and each live allocation is then
put in one bucket by the frames on its stack (:func:`bucket`), and
``python bench/_profile.py DIR`` prints the shares.
"""

from __future__ import annotations

import ast
import collections
import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # devtools/, run as a script too

from _common import Target, table

from devtools.processes import group_members

HOOKS = Path(__file__).resolve().parent / "profiling"
START_TRACING, DUMP = signal.SIGRTMIN + 1, signal.SIGRTMIN + 2
MOST_TYPES = 25
ROLES = {
    "supervisor": (
        "Airflow only. On every wake of its loop (each message or log line from the runner, at least "
        "once a second) it assigns, lists and cleans up triggers in Postgres "
        "(`Trigger.assign_unassigned`, `ids_for_triggerer`, `clean_unused`) and heartbeats; per "
        "trigger it keeps an open log file with its buffer and logger and the task instance; its "
        "first trigger imports the in-process Execution API (tens of MB, once)"
    ),
    "runner": (
        "The provider's polls (its CPU is the bench's), and Airflow's per trigger: for "
        "`start_from_trigger` a deserialized copy of the DAG, a task instance and a template "
        "context, a greenback portal (a greenlet every step of the trigger runs through), an "
        "OpenTelemetry span, the once-a-second state sync with the supervisor"
    ),
}
PROVIDER = "trigger, hook, shared HTTP client, records, log lines: the same polls in one process"
IDLE = ("selectors.py:EpollSelector.select", "threading.py:Condition.wait")

#: (bucket, substring of a frame's file or function): the first rule a stack matches, searched
#: from its innermost frame outwards for the provider rules, decides the bucket.
PROVIDER_RULES = (
    ("provider: log lines", "/api/waiting.py:log_to"),
    ("provider: trigger + hook + httpx", "airflow_provider_kling/"),
    ("provider: trigger + hook + httpx", "/_scale_trigger.py"),
)
AIRFLOW_RULES = (
    ("(the profiler's own object count)", "airflow_local_settings.py"),
    ("airflow: greenback portal per trigger", "greenback/"),
    ("airflow: greenback portal per trigger", "greenlet"),
    ("airflow: creating triggers (DAG, context, kwargs)", "create_runtime_ti"),
    ("airflow: creating triggers (DAG, context, kwargs)", "render_template_fields"),
    ("airflow: trigger log lines (runner → supervisor → file)", "_process_log_messages_from_subprocess"),
    ("airflow: trigger log lines (runner → supervisor → file)", "structlog/"),
    ("airflow: creating triggers (DAG, context, kwargs)", "create_triggers"),
    ("airflow: creating triggers (DAG, context, kwargs)", "_create_workload"),
    ("airflow: creating triggers (DAG, context, kwargs)", "update_triggers"),
    ("airflow: runner ↔ supervisor messages", "sync_state_to_supervisor"),
    ("airflow: runner ↔ supervisor messages", "comms"),
    ("airflow: runner ↔ supervisor messages", "_handle_request"),
    ("airflow: DB every loop (assign, clean_unused, heartbeat, events)", "heartbeat"),
    ("airflow: DB every loop (assign, clean_unused, heartbeat, events)", "sqlalchemy/"),
    ("airflow: DB every loop (assign, clean_unused, heartbeat, events)", "emit_metrics"),
    ("airflow: DB every loop (assign, clean_unused, heartbeat, events)", "load_triggers"),
    ("airflow: DB every loop (assign, clean_unused, heartbeat, events)", "handle_events"),
    ("airflow: event loop, watchdog, other", ""),
)


def bucket(frames: Sequence[str]) -> str:
    """The bucket of one stack, ``frames`` innermost first, each ``function (file:line)``-like text."""
    for name, needle in PROVIDER_RULES:
        if any(needle in frame for frame in frames):
            return name
    for name, needle in AIRFLOW_RULES:
        if any(needle in frame for frame in frames):
            return name
    raise AssertionError("the last rule matches every stack")


def whose(
    triggerers: list[Any], polls: int, deployment: tuple[float, float], bench: Any
) -> tuple[list[str], list[Target]]:
    """
    The figures split by whose they are: the provider's trigger, hook and client alone are the
    one-process bench (``bench``); the rest is Airflow's, per process (``Triggerer.roles_*``).
    ``deployment`` is the groups' (CPU per 1,000 polls, RSS per trigger).
    """
    cpu, rss = deployment
    held = max(1, sum(t.most_triggers for t in triggerers))
    rows, shares = [], {}
    for role, what in ROLES.items():
        if not all(role in t.roles_end and role in t.idle_roles for t in triggerers):
            continue
        role_cpu = (
            1000 * sum(t.roles_end[role][0] - t.roles_start[role][0] for t in triggerers) / max(polls, 1)
        )
        role_rss = sum(t.peak_role_rss[role] - t.idle_roles[role][1] for t in triggerers) / held
        shares[role] = role_cpu
        rows.append([role, f"{role_cpu:.2f} s", f"{role_rss:.1f} KB", what])
    rows.append(
        [
            "the provider alone (bench)",
            f"{bench.cpu_per_1000:.2f} s",
            f"{bench.rss_per_trigger_kb:.1f} KB",
            PROVIDER,
        ]
    )
    lines = [
        f"**Whose it is.** The provider's trigger, hook and HTTP client polling alone in one process "
        f"(the bench) account for {100 * bench.cpu_per_1000 / max(cpu, 1e-9):.0f}% of the "
        f"triggerers' CPU per poll and {100 * bench.rss_per_trigger_kb / max(rss, 1e-9):.0f}% of their "
        "memory per trigger; the rest is Airflow's. Per process of both triggerers (each process's "
        "own peak RSS, so they need not add up to the group's; `python bench/deployment.py "
        "--profile DIR` samples them with py-spy and counts their objects per trigger):",
        "",
        *table(["process", "CPU / 1,000 polls", "peak RSS growth / trigger", "what it spends it on"], rows),
    ]
    ratio = cpu / max(bench.cpu_per_1000, 1e-9)
    supervisor = 100 * shares.get("supervisor", 0.0) / max(cpu, 1e-9)
    targets = [
        Target(
            "Triggerer CPU / 1,000 polls vs one process",
            "≤ 1.5x",
            f"{ratio:.2f}x ({supervisor:.0f}% of it in Airflow's triggerer supervisor)",
            ratio <= 1.5,
        ),
        Target(
            "Triggerer RSS per trigger",
            "≤ 50 KB",
            f"{rss:.0f} KB (the provider's trigger, hook and client: {bench.rss_per_trigger_kb:.1f} KB)",
            rss <= 50,
        ),
    ]
    return lines, targets


def _stat(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command: state is [0], ppid [1], utime [11]."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def triggerer_processes(pgid: int) -> dict[str, int]:
    """The supervisor (the group's leader) and its trigger runner (its last forked child)."""
    children = []
    for pid in group_members(pgid):
        with contextlib.suppress(OSError):
            fields = _stat(pid)
            if int(fields[1]) == pgid:
                children.append((int(fields[19]), pid))  # started at, in clock ticks since boot
    return {"supervisor": pgid, "runner": max(children)[1]}


def role_usage(pgid: int) -> dict[str, tuple[float, int]]:
    """CPU seconds and RSS (KiB) of a triggerer's supervisor and runner; ``{}`` if it has no runner yet."""
    usage = {}
    try:
        for role, pid in triggerer_processes(pgid).items():
            fields = _stat(pid)
            cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            usage[role] = (cpu, int(fields[21]) * os.sysconf("SC_PAGE_SIZE") // 1024)
    except (OSError, ValueError):
        return {}
    return usage


def start_tracing(pgid: int, name: str) -> dict[str, int]:
    """Count the idle objects of a triggerer's two processes (and trace from now, if asked)."""
    procs = {f"{name}.{role}": pid for role, pid in triggerer_processes(pgid).items()}
    for pid in procs.values():
        os.kill(pid, START_TRACING)
    return procs


def dump(procs: dict[str, int], folder: Path) -> None:
    for pid in procs.values():
        os.kill(pid, DUMP)
    deadline = time.monotonic() + 300
    for role, pid in procs.items():
        done = folder / f"{pid}.types.json"
        while not done.exists() and time.monotonic() < deadline:
            time.sleep(1)
        for suffix in ("tracemalloc", "types.json", "idle.json"):
            if (folder / f"{pid}.{suffix}").exists():
                (folder / f"{pid}.{suffix}").rename(folder / f"{role}.{suffix}")


def record_cpu(pgid: int, name: str, folder: Path, seconds: int) -> list[subprocess.Popen[bytes]]:
    """py-spy, sampling the supervisor and the runner for ``seconds`` in the background."""
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if py_spy is None:
        raise RuntimeError("py-spy is not installed: make venv installs it (requirements/airflow-3.3.in)")
    spy = [py_spy, "record", "--nonblocking", "--rate", "50", "--format", "raw", "--duration", str(seconds)]
    return [
        subprocess.Popen(
            [*spy, "--pid", str(pid), "--output", str(folder / f"{name}.{role}.pyspy.txt")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for role, pid in triggerer_processes(pgid).items()
    ]


def cpu_shares(path: Path) -> collections.Counter[str]:
    """Samples per bucket of one py-spy ``raw`` (collapsed stacks, outermost first) file."""
    counts: collections.Counter[str] = collections.Counter()
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        # Each frame is ``function (file:line)``: as ``file:function``, the form rules match.
        frames = [_frame(f) for f in stack.split(";")]
        # py-spy --nonblocking cannot always tell a thread waiting in epoll or on a lock from a busy one.
        if frames and frames[-1].endswith(IDLE):
            continue
        counts[bucket(frames[::-1])] += int(n)
    return counts


def _frame(spy: str) -> str:
    name, _, where = spy.partition(" (")
    return f"{where.rsplit(':', 1)[0]}:{name}"


def memory_shares(path: Path) -> collections.Counter[str]:
    """Live bytes per bucket of one tracemalloc snapshot."""
    counts: collections.Counter[str] = collections.Counter()
    for stat in tracemalloc.Snapshot.load(str(path)).statistics("traceback"):
        frames = [f"{f.filename}:{_function(f.filename, f.lineno)}" for f in stat.traceback]
        counts[bucket(frames)] += stat.size
    return counts


@functools.cache
def _functions(filename: str) -> list[tuple[int, int, str]]:
    """(first line, last line, name) of every function in a source file."""
    try:
        tree = ast.parse(Path(filename).read_text())
    except (OSError, SyntaxError, ValueError):
        return []
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef)
    return [(n.lineno, n.end_lineno or n.lineno, n.name) for n in ast.walk(tree) if isinstance(n, kinds)]


def _function(filename: str, line: int) -> str:
    """The innermost function of ``filename`` holding ``line`` (tracemalloc names none)."""
    found = [(first, name) for first, last, name in _functions(filename) if first <= line <= last]
    return max(found)[1] if found else "<module>"


def report(folder: Path, triggers: dict[str, int]) -> str:
    """The shares, as Markdown: CPU by bucket (py-spy), objects per trigger by type, memory by bucket."""
    lines = ["| process | bucket | share |", "|---|---|---|"]
    for path in sorted(folder.glob("*.pyspy.txt")):
        lines += _rows(f"{path.name.split('.pyspy')[0]} CPU", cpu_shares(path), _percent)
    lines += ["", "| process | type | objects / trigger |", "|---|---|---|"]
    for path in sorted(folder.glob("*.types.json")):
        name = path.name.split(".types")[0]
        n = max(1, triggers.get(name.split(".")[0], 1))
        idle_path = folder / f"{name}.idle.json"
        if not idle_path.exists():
            continue
        idle, peak = json.loads(idle_path.read_text()), json.loads(path.read_text())
        grown = collections.Counter({t: c - idle.get(t, 0) for t, c in peak.items()})
        lines += [f"| {name} | {t} | {c / n:.2f} |" for t, c in grown.most_common(MOST_TYPES) if c > n / 2]
    for path in sorted(folder.glob("*.tracemalloc")):
        name = path.name.split(".tracemalloc")[0]
        n = max(1, triggers.get(name.split(".")[0], 1))
        per_trigger = functools.partial(_kb_per_trigger, n=n)
        lines += _rows(f"{name} memory", memory_shares(path), per_trigger)
    return "\n".join(lines)


def _kb_per_trigger(value: int, total: int, n: int) -> str:
    return f"{value / n / 1024:.1f} KB/trigger"


def _percent(value: int, total: int) -> str:
    return f"{100 * value / total:.0f}%"


def _rows(what: str, counts: collections.Counter[str], fmt: object) -> list[str]:
    total = sum(counts.values()) or 1
    return [f"| {what} | {name} | {fmt(value, total)} |" for name, value in counts.most_common()]  # type: ignore[operator]


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    print(report(folder, json.loads((folder / "triggers.json").read_text())))

"""Part 5: N waiting requests across the two triggerers of the production deployment.

The celery topology of ``devtools.topology`` (Postgres, CeleryExecutor on
Redis, two triggerers) with ``bench/dags/kling_scale.py``: N mapped tasks that the scheduler
defers straight to the triggerers, each waiting for one request with the provider's trigger
on its default schedule (``bench/_scale_trigger.py``). The simulator runs in its own process
with long renders. Each triggerer process group's CPU and RSS are read from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # devtools/, which is not in the package
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _profile
import httpx
from _common import POLL_ROUTE, ROOT, Section, Target, table

from airflow_provider_kling.api import API_PREFIX
from devtools.deployment import AirflowStack
from devtools.processes import group_usage, open_trigger_logs
from devtools.topology import TRIGGERERS

BENCH = Path(__file__).resolve().parent
PAYLOAD = {"first_frame": "https://example.com/product.png", "prompt": "scale", "duration": "5"}


DESCRIPTION = """
{n:,} mapped tasks ({ok:,} succeeded, run {state}) deferred by the scheduler straight to the two
triggerers (`start_from_trigger`), each waiting for one request of {low:.0f}-{high:.0f} s with the
provider's trigger on its default schedule (first poll 25 s after the trigger starts, then about
every 9.5 s) and ending its task itself, so no worker is involved. Both triggerers run in the
same deployment as the end-to-end tests: Postgres, the CeleryExecutor on Redis. *CPU* is both
triggerer process groups (supervisor, trigger runner and log server) while every trigger ran,
per 1,000 polls counted by the simulator; *RSS per trigger* is the groups' peak RSS growth over
their idle RSS, divided by the most triggers each held at once; *completion → task success* is
from the moment the simulator turns a request `success` to its task instance's end date in
Airflow's database.
"""


@dataclass(frozen=True)
class Size:
    n: int
    render: tuple[float, float]  # seconds, drawn per request: long enough to outlast the set-up


FULL = Size(2000, (240.0, 420.0))
PROFILE_SECONDS = 60
SMOKE = Size(20, (60.0, 90.0))


@dataclass
class Triggerer:
    name: str
    idle_rss_kb: int = 0
    peak_rss_kb: int = 0
    most_triggers: int = 0
    cpu_start: float = 0.0
    cpu_end: float = 0.0
    # The same per process (supervisor, runner), to say whose they are.
    idle_roles: dict[str, tuple[float, int]] = field(default_factory=dict)
    peak_role_rss: dict[str, int] = field(default_factory=dict)
    roles_start: dict[str, tuple[float, int]] = field(default_factory=dict)
    roles_end: dict[str, tuple[float, int]] = field(default_factory=dict)


def submit_all(api_url: str, api_key: str, n: int) -> list[str]:
    async def go() -> list[str]:
        gate = asyncio.Semaphore(50)
        headers = {"Authorization": f"Bearer {api_key}"}
        async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=60) as client:

            async def one() -> str:
                async with gate:
                    body = {"model": "kling-3.0-turbo-i2v", "payload": PAYLOAD}
                    resp = await client.post("/requests", json=body)
                    resp.raise_for_status()
                    return str(resp.json()["request_id"])

            return list(await asyncio.gather(*(one() for _ in range(n))))

    return asyncio.run(go())


def measure(size: Size, profile: Path | None = None, knobs: dict[str, str] | None = None) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="kling-bench-deployment-"))
    ids_file = home / "scale-ids.json"
    env = {
        "PYTHONPATH": str(BENCH),
        "KLING_SCALE_N": str(size.n),
        "KLING_SCALE_IDS": str(ids_file),
        "KLING_SCALE_END": str(time.time() + 3 * 3600),
        "AIRFLOW__CORE__MAX_MAP_LENGTH": str(max(1024, size.n)),
        # Each triggerer takes its half: otherwise the first to look may take them all.
        "AIRFLOW__TRIGGERER__CAPACITY": str(-(-size.n // len(TRIGGERERS))),
    }
    env.update(knobs or {})
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
        env["PYTHONPATH"] += os.pathsep + str(_profile.HOOKS)
        env["KLING_PROFILE_DIR"] = str(profile.resolve())
    stack = AirflowStack(
        home=home, dags_folder=BENCH / "dags", with_simulator=True, topology="celery", extra_env=env
    )
    # Deleted with the cluster however the run ends: stop(), a signal, or the watchdog.
    stack.record_cleanup(str(home))
    try:
        stack.start(timeout=900)
        return run_load(stack, size, ids_file, profile)
    finally:
        stack.stop()


def run_load(stack: AirflowStack, size: Size, ids_file: Path, profile: Path | None = None) -> dict[str, Any]:
    sim = httpx.Client(base_url=f"{stack.kling_base_url}/_simulator", timeout=120)
    low, high = size.render
    config = {
        "rate_limit": None,
        "queued_seconds": 0,
        "processing_seconds": low,
        "processing_seconds_max": high,
    }
    sim.post("/config", json=config).raise_for_status()
    api = httpx.Client(base_url=stack.base_url, timeout=120)
    api.headers["Authorization"] = f"Bearer {stack.token()}"
    while api.get("/api/v2/dags/kling_scale").status_code != 200:
        time.sleep(1)
    triggerers = {name: Triggerer(name) for name in TRIGGERERS}
    for t in triggerers.values():
        t.idle_rss_kb = group_usage(stack.pids[t.name])[1]
        t.idle_roles = _profile.role_usage(stack.pids[t.name])
    # Profiling: objects are counted now and at the peak; triggerer 1 is sampled by py-spy.
    traced: dict[str, int] = {}
    if profile:
        for name in TRIGGERERS:
            traced |= _profile.start_tracing(stack.pids[name], name)
    profiled = False

    ids = submit_all(f"{stack.kling_base_url}{API_PREFIX}", str(stack.kling_api_key), size.n)
    submitted_wall, window_start_wall = time.time(), float("nan")
    ids_file.write_text(json.dumps(ids))
    api.patch("/api/v2/dags/kling_scale", json={"is_paused": False}).raise_for_status()
    run = api.post("/api/v2/dags/kling_scale/dagRuns", json={"logical_date": None}).json()
    run_path = f"/api/v2/dags/kling_scale/dagRuns/{urllib.parse.quote(run['dag_run_id'], safe='')}"

    started = time.monotonic()
    polls_start = None
    window_start = 0.0
    while True:
        held = {name: sum(open_trigger_logs(stack.pids[name]).values()) for name in triggerers}
        for t in triggerers.values():
            t.peak_rss_kb = max(t.peak_rss_kb, group_usage(stack.pids[t.name])[1])
            t.most_triggers = max(t.most_triggers, held[t.name])
            for role, (_, rss) in _profile.role_usage(stack.pids[t.name]).items():
                t.peak_role_rss[role] = max(t.peak_role_rss.get(role, 0), rss)
        if polls_start is None and sum(held.values()) >= size.n:
            # Every trigger runs: the window of the CPU and poll figures starts.
            window_start, window_start_wall = time.monotonic(), time.time()
            polls_start = sim.get("/stats").json()["counts"].get(POLL_ROUTE, 0)
            for t in triggerers.values():
                t.cpu_start = group_usage(stack.pids[t.name])[0]
                t.roles_start = _profile.role_usage(stack.pids[t.name])
        if profile and not profiled and polls_start is not None and time.monotonic() - window_start > 30:
            profiled = True
            spies = _profile.record_cpu(stack.pids[TRIGGERERS[0]], TRIGGERERS[0], profile, PROFILE_SECONDS)
            _profile.dump(traced, profile)
            (profile / "triggers.json").write_text(json.dumps(held))
            for spy in spies:
                spy.wait(PROFILE_SECONDS + 60)
        state = api.get(run_path).json()["state"]
        if state in ("success", "failed"):
            break
        if time.monotonic() - started > high + 1800:
            raise RuntimeError(f"kling_scale still {state} after {time.monotonic() - started:.0f} s")
        time.sleep(2)
    window = time.monotonic() - window_start
    for t in triggerers.values():
        t.cpu_end = group_usage(stack.pids[t.name])[0]
        t.roles_end = _profile.role_usage(stack.pids[t.name])
    stats = sim.get("/stats").json()
    if polls_start is None:
        raise RuntimeError("the triggers never all ran at once: renders too short for this machine")
    polls = stats["counts"].get(POLL_ROUTE, 0) - polls_start
    by_id = {r["request_id"]: r for r in stats["requests"]}
    delays, noticed, handed, late = [], [], [], 0
    for ti in task_instances(api, run_path):
        if ti["state"] != "success":
            continue
        request = by_id[ids[ti["map_index"]]]
        ended = datetime.fromisoformat(ti["end_date"]).timestamp()
        finished, read = request["finishes_at"], request["finished_read_at"] or ended
        delays.append(ended - finished)
        # The delay in two parts: until a poll saw the request finished, then until Airflow
        # recorded the task's success (the trigger's event through the triggerer to Postgres).
        noticed.append(read - finished)
        handed.append(ended - read)
        late += (request["first_read_at"] or ended) > finished  # polled first only once finished
    return {
        "n": size.n,
        "state": state,
        "succeeded": len(delays),
        "polls": polls,
        "window": window,
        "triggerers": triggerers,
        "delays": sorted(delays),
        "noticed": sorted(noticed),
        "handed": sorted(handed),
        "late_first_poll": late,
        "all_running_after": window_start_wall - submitted_wall,
    }


def percentiles(values: list[float]) -> tuple[float, float]:
    """p50 and p99 of sorted ``values`` (NaN when empty)."""
    if not values:
        return float("nan"), float("nan")
    return statistics.median(values), values[min(len(values) - 1, int(len(values) * 0.99))]


def task_instances(api: httpx.Client, run_path: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        page = api.get(
            f"{run_path}/taskInstances", params={"limit": 100, "offset": len(found), "order_by": "id"}
        )
        page.raise_for_status()
        data = page.json()
        found += data["task_instances"]
        if not data["task_instances"] or len(found) >= data["total_entries"]:
            return found


def predicted(n: int, smoke: bool) -> Any:
    """What ``bench/triggers.py`` measures for one process holding this triggerer's share."""
    import triggers

    per_process = max(1, n // len(TRIGGERERS))
    scenario = triggers.Scenario(
        per_process, 2.0 if not smoke else 0.5, (10.0, 40.0) if not smoke else (1, 3), ("provider",)
    )
    return triggers.measure(scenario, "provider")


def run(
    smoke: bool, size: Size | None = None, profile: Path | None = None, knobs: dict[str, str] | None = None
) -> Section:
    size = size or (SMOKE if smoke else FULL)
    result = measure(size, profile, knobs)
    bench = predicted(size.n, smoke)
    triggerers: dict[str, Triggerer] = result["triggerers"]
    cpu = sum(t.cpu_end - t.cpu_start for t in triggerers.values())
    cpu_per_1000 = 1000 * cpu / max(result["polls"], 1)
    rss_per_trigger = sum(t.peak_rss_kb - t.idle_rss_kb for t in triggerers.values()) / max(
        1, sum(t.most_triggers for t in triggerers.values())
    )
    p50, p99 = percentiles(result["delays"])
    notice50, notice99 = percentiles(result["noticed"])
    hand50, hand99 = percentiles(result["handed"])
    rows = [
        [
            f"{t.name}",
            f"{t.most_triggers:,}",
            f"{t.idle_rss_kb / 1024:.0f} MiB → {t.peak_rss_kb / 1024:.0f} MiB",
            f"{t.cpu_end - t.cpu_start:.1f} s",
        ]
        for t in triggerers.values()
    ]
    whose_lines, whose_targets = _profile.whose(
        list(triggerers.values()), result["polls"], (cpu_per_1000, rss_per_trigger), bench
    )
    comparison = [
        [
            "CPU / 1,000 polls",
            f"{cpu_per_1000:.2f} s",
            f"{bench.cpu_per_1000:.2f} s",
            f"{cpu_per_1000 / bench.cpu_per_1000:.2f}x",
        ],
        [
            "peak RSS / trigger",
            f"{rss_per_trigger:.1f} KB",
            f"{bench.rss_per_trigger_kb:.1f} KB",
            f"{rss_per_trigger / max(bench.rss_per_trigger_kb, 0.1):.2f}x",
        ],
        ["polls / s", f"{result['polls'] / result['window']:.1f}", "-", "-"],
        [
            "completion → task success, p50 / p99",
            f"{p50:.1f} s / {p99:.1f} s",
            "≤ poll interval + 1 s (event)",
            "-",
        ],
        ["… completion → a poll sees it, p50 / p99", f"{notice50:.1f} s / {notice99:.1f} s", "≤ 9.5 s", "-"],
        ["… that poll → task success, p50 / p99", f"{hand50:.1f} s / {hand99:.1f} s", "≤ 1 s", "-"],
    ]
    body = "\n".join(
        [
            " ".join(DESCRIPTION.split()).format(
                n=result["n"],
                ok=result["succeeded"],
                state=result["state"],
                low=size.render[0],
                high=size.render[1],
            ),
            "",
            *table(["triggerer", "most triggers at once", "RSS idle → peak", "CPU while all ran"], rows),
            "",
            "Next to what `bench/triggers.py` measures for one process holding one triggerer's share "
            f"({max(1, size.n // 2):,} triggers, polling every {bench.poll_interval:g} s), run right after:",
            "",
            *table(["figure", "deployment", "bench, one process", "deployment ÷ bench"], comparison),
            "",
            *whose_lines,
            "",
            f"Every trigger was running {result['all_running_after']:.0f} s after the submits; "
            f"{result['late_first_poll']:,} requests were first polled only after they had finished "
            "(their trigger started, or first polled, late).",
            "",
            "The deployment's CPU includes what the bench leaves out: the triggerer's supervisor "
            "process (heartbeats, reading trigger assignments from Postgres, writing each trigger's log "
            "lines to its file) and the trigger runner's messages to it.",
            "",
            "Where the completion → success delay goes: a poll sees the request finished and the "
            "trigger yields its event at once; the event then travels from the trigger runner to the "
            "triggerer's supervisor, whose single loop writes it to Postgres (that write sets the task "
            "instance's end date) between assigning triggers, servicing the runner's messages (every "
            "trigger's log lines) for up to a second, cleaning unused triggers and heartbeating. A "
            "first part above the poll interval means the runner's event loop fell behind its "
            "schedule; a second part above a second means the supervisor's loop did.",
        ]
    )
    targets = [
        Target(
            "Every wait ends",
            f"{size.n:,} of {size.n:,} succeed",
            f"{result['succeeded']:,} of {size.n:,}",
            result["succeeded"] == size.n,
        ),
        *whose_targets,
    ]
    return Section(
        "Triggers in the production deployment",
        [
            "make bench-deployment          # N=2,000, ~15 min",
            "python bench/deployment.py --smoke",
        ],
        body,
        targets,
        skip_reason=(
            "starts a Postgres and Celery deployment (minutes); "
            "tests/e2e/test_topology.py starts the same one"
        ),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a tiny run that only proves it works")
    parser.add_argument("--waits", type=int, help=f"how many waits (default {FULL.n:,}; smoke {SMOKE.n})")
    parser.add_argument("--render", nargs=2, type=float, metavar=("LOW", "HIGH"), help="render seconds")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="also profile the triggerers into DIR (py-spy on the first, tracemalloc on the second: "
        "its CPU figure is then not comparable); python bench/_profile.py DIR prints the shares",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable for every Airflow process (a knob to measure), repeatable",
    )
    args = parser.parse_args()
    knobs = dict(item.split("=", 1) for item in args.env)
    base = SMOKE if args.smoke else FULL
    render = (args.render[0], args.render[1]) if args.render else base.render
    size = Size(args.waits or base.n, render)
    os.chdir(ROOT)
    print(run(args.smoke, size, args.profile, knobs).markdown())
    if args.profile:
        print(_profile.report(args.profile, json.loads((args.profile / "triggers.json").read_text())))


if __name__ == "__main__":
    main()

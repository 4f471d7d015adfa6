"""Part 5: N waiting requests across the two triggerers of the production deployment.

The celery topology of ``devtools.topology`` (Postgres, CeleryExecutor on Redis, two
triggerers), waiting N times on each of two paths in one deployment (``--path``):

- ``scale``: ``bench/dags/kling_scale.py``, N mapped tasks the scheduler defers straight to the
  triggerers, each waiting with the provider's trigger (``bench/_scale_trigger.py``);
- ``sensor``: ``bench/dags/kling_scale_sensor.py``, the same waits as users get them, a mapped
  deferrable ``KlingStatusSensor`` over an upstream task's list of request ids, which on
  Airflow 3.3 starts and ends in the triggerer.

The triggerers are restarted between the paths, so each path's figures are those of fresh
processes. The simulator runs in its own process with long renders. Each triggerer process
group's CPU and RSS are read from /proc; ``bench/_deployment_report.py`` writes the section.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
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
from _common import POLL_ROUTE, ROOT, Section

from airflow_provider_kling.api import API_PREFIX
from devtools.deployment import AirflowStack
from devtools.processes import group_usage, open_trigger_logs, worker_task_starts
from devtools.topology import TRIGGERERS

BENCH = Path(__file__).resolve().parent
PAYLOAD = {"first_frame": "https://example.com/product.png", "prompt": "scale", "duration": "5"}
#: How many map indexes of the sensor path have their ``return_value`` read back over the REST API.
XCOM_SAMPLE = 20


@dataclass(frozen=True)
class Size:
    n: int
    render: tuple[float, float]  # seconds, drawn per request: long enough to outlast the set-up


@dataclass(frozen=True)
class WaitPath:
    """One way of waiting N times: its DAG, and the environment variable naming its ids file."""

    name: str
    dag_id: str
    ids_env: str
    label: str


PATHS = {
    "scale": WaitPath("scale", "kling_scale", "KLING_SCALE_IDS", "bench trigger (ScaleWait)"),
    "sensor": WaitPath(
        "sensor", "kling_scale_sensor", "KLING_SENSOR_IDS", "KlingStatusSensor, as users get it"
    ),
}
FULL = Size(2000, (240.0, 420.0))
PROFILE_SECONDS = 60
SMOKE = Size(20, (60.0, 90.0))


@dataclass
class Triggerer:
    name: str
    idle_rss_kb: int = 0
    peak_rss_kb: int = 0
    most_triggers: int = 0
    cpu_triggered: float = 0.0  # when the DAG run was created: from here to cpu_start, the starts
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


def measure(
    size: Size,
    paths: list[WaitPath],
    profile: Path | None = None,
    knobs: dict[str, str] | None = None,
    keep_logs: Path | None = None,
) -> dict[str, dict[str, Any]]:
    home = Path(tempfile.mkdtemp(prefix="kling-bench-deployment-"))
    env = {
        "PYTHONPATH": str(BENCH),
        "KLING_SCALE_N": str(size.n),
        "KLING_SCALE_END": str(time.time() + 3 * 3600),
        "AIRFLOW__CORE__MAX_MAP_LENGTH": str(max(1024, size.n)),
        # Each triggerer takes its half: otherwise the first to look may take them all.
        "AIRFLOW__TRIGGERER__CAPACITY": str(-(-size.n // len(TRIGGERERS))),
        **{path.ids_env: str(home / f"{path.name}-ids.json") for path in PATHS.values()},
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
    results = {}
    try:
        stack.start(timeout=900)
        for i, path in enumerate(paths):
            if i:
                fresh_triggerers(stack)
            # Profiled: the first path only (the profiler's hooks are armed once per process).
            results[path.name] = run_load(stack, size, path, profile if i == 0 else None)
        return results
    finally:
        if keep_logs is not None:  # the deployment's home goes with it: copy its components' logs first
            shutil.copytree(stack.log_dir, keep_logs, dirs_exist_ok=True)
        stack.stop()


def fresh_triggerers(stack: AirflowStack) -> None:
    """Restart both triggerers, so that the next path starts from idle processes, as the first did."""
    for name in TRIGGERERS:
        stack.restart_component(name, sig=signal.SIGTERM)
    deadline = time.monotonic() + 300
    while not all(len(_profile.role_usage(stack.pids[name])) == 2 for name in TRIGGERERS):
        if time.monotonic() > deadline:
            raise RuntimeError("the restarted triggerers never started their trigger runners")
        time.sleep(2)
    time.sleep(15)  # their imports and first heartbeats done: idle is idle


def run_load(stack: AirflowStack, size: Size, path: WaitPath, profile: Path | None = None) -> dict[str, Any]:
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
    dag_path = f"/api/v2/dags/{path.dag_id}"
    while api.get(dag_path).status_code != 200:
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
    Path(stack.extra_env[path.ids_env]).write_text(json.dumps(ids))
    for t in triggerers.values():
        t.cpu_triggered = group_usage(stack.pids[t.name])[0]
    api.patch(dag_path, json={"is_paused": False}).raise_for_status()
    run = api.post(f"{dag_path}/dagRuns", json={"logical_date": None}).json()
    run_path = f"{dag_path}/dagRuns/{urllib.parse.quote(run['dag_run_id'], safe='')}"

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
            raise RuntimeError(f"{path.dag_id} still {state} after {time.monotonic() - started:.0f} s")
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
    tis = task_instances(api, run_path)
    waits = [ti for ti in tis if ti["task_id"] == "wait"]
    delays, noticed, handed, late = [], [], [], 0
    for ti in waits:
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
    # From Airflow's records in the Celery workers' logs: which task instances ran on a worker.
    starts = worker_task_starts(stack.log_dir)
    return {
        "path": path,
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
        "wait_worker_starts": sum(starts[ti["id"]] for ti in waits),
        "other_worker_starts": {ti["task_id"]: starts[ti["id"]] for ti in tis if ti["task_id"] != "wait"},
        "xcoms": xcom_sample(api, run_path, size.n) if path.name == "sensor" else None,
    }


def xcom_sample(api: httpx.Client, run_path: str, n: int) -> tuple[int, int, list[str]]:
    """How many of ``XCOM_SAMPLE`` map indexes, spread over all, returned a dict with status
    success (read as a downstream task's user would, over the REST API), and what the others held."""
    indexes = sorted({round(i * (n - 1) / max(XCOM_SAMPLE - 1, 1)) for i in range(min(XCOM_SAMPLE, n))})
    ok, bad = 0, []
    for index in indexes:
        resp = api.get(f"{run_path}/taskInstances/wait/xcomEntries/return_value", params={"map_index": index})
        value = resp.json().get("value") if resp.status_code == 200 else f"HTTP {resp.status_code}"
        if isinstance(value, dict) and value.get("status") == "success" and value.get("media_urls"):
            ok += 1
        else:
            bad.append(f"map index {index}: {str(value)[:80]}")
    return ok, len(indexes), bad


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
    smoke: bool,
    size: Size | None = None,
    profile: Path | None = None,
    knobs: dict[str, str] | None = None,
    paths: list[WaitPath] | None = None,
    keep_logs: Path | None = None,
) -> Section:
    import _deployment_report

    size = size or (SMOKE if smoke else FULL)
    results = measure(size, paths or [PATHS["sensor"], PATHS["scale"]], profile, knobs, keep_logs)
    return _deployment_report.section(size, results, predicted(size.n, smoke))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a tiny run that only proves it works")
    parser.add_argument("--waits", type=int, help=f"how many waits (default {FULL.n:,}; smoke {SMOKE.n})")
    parser.add_argument("--render", nargs=2, type=float, metavar=("LOW", "HIGH"), help="render seconds")
    parser.add_argument(
        "--path",
        nargs="+",
        choices=[*PATHS, "both"],
        default=["both"],
        help="which waits, in this order in the same deployment: the bench trigger (scale), the sensor "
        "as users get it (sensor), or both (default: the sensor first)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="also profile the triggerers into DIR while the first path waits (py-spy on the first, "
        "tracemalloc on the second: its CPU figure is then not comparable); python "
        "bench/_profile.py DIR prints the shares",
    )
    parser.add_argument(
        "--keep-logs", type=Path, metavar="DIR", help="copy the components' logs into DIR before the teardown"
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
    # The sensor first: the path users get, and the one that fails in a new way if one does.
    chosen = ["sensor", "scale"] if "both" in args.path else list(dict.fromkeys(args.path))
    paths = [PATHS[name] for name in chosen]
    os.chdir(ROOT)
    print(run(args.smoke, size, args.profile, knobs, paths, args.keep_logs).markdown())
    if args.profile:
        print(_profile.report(args.profile, json.loads((args.profile / "triggers.json").read_text())))


if __name__ == "__main__":
    main()

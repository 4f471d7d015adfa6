"""Part 6: what a Kling wait costs the Celery workers, on the path it takes now and the one it took before.

One deployment of the celery topology of ``devtools.topology`` (Postgres, CeleryExecutor on
Redis, two workers, two triggerers) runs the DAGs of ``bench/dags/kling_paths.py`` one after
the other: the operator's own wait (``KlingI2VOperator(wait_for_completion=True,
deferrable=True)``) and the flagship pipeline (submit -> ``KlingStatusSensor`` -> download),
each on the old path (every wait started and ended on a worker) and the new one (the sensor
starts in the triggerer, and a wait with nothing left for a worker ends there). Worker task
processes are counted from the workers' own logs (``devtools.processes.worker_task_starts``),
CPU from their process groups in /proc, wall time from Airflow's REST API.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
import time
import urllib.parse
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # devtools/, which is not in the package
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from _common import ROOT, Section, Target, cli, ratio, table
from deployment import task_instances

from devtools.deployment import AirflowStack
from devtools.processes import group_usage, worker_task_starts
from devtools.topology import CELERY_WORKERS, TRIGGERERS

BENCH = Path(__file__).resolve().parent
PATHS = ("old", "new")
#: Worker task-process starts per video the issue asks for, old path -> new, per pipeline.
GOALS = {"flagship": (4, 2), "operator": (2, 1)}


@dataclasses.dataclass(frozen=True)
class Size:
    batch: int  # videos of the flagship pipeline, per path
    each: int  # videos of the operator-waits pipeline, per path
    # Seconds, drawn per request. A mapped sensor maps only once every submit of the batch has
    # finished, and then waits for a worker slot: the flagship's renders must outlast both, or an
    # old-path sensor finds its request finished and ends on its first worker start, undeferred
    # (renders of 60-90 s did, for all 100, on two loaded cores).
    batch_render: tuple[float, float]
    each_render: tuple[float, float]


FULL = Size(100, 10, (300.0, 360.0), (20.0, 40.0))
SMOKE = Size(3, 3, (30.0, 40.0), (20.0, 30.0))


@dataclasses.dataclass(frozen=True)
class Run:
    pipeline: str
    path: str
    videos: int
    succeeded: int
    state: str
    starts: int  # worker task processes started during the run, retries included
    starts_by_task: dict[str, int]
    worker_cpu: float
    triggerer_cpu: float
    wall: float

    def per_video(self, value: float) -> float:
        return value / max(1, self.videos)


def cpu(stack: AirflowStack, names: tuple[str, ...]) -> float:
    return sum(group_usage(stack.pids[name])[0] for name in names)


def total_starts(stack: AirflowStack) -> int:
    return sum(worker_task_starts(stack.log_dir).values())


def settled_starts(stack: AirflowStack, quiet: float = 5.0, timeout: float = 60.0) -> int:
    """The worker starts once no new one has been logged for ``quiet`` seconds: a task's success
    ends its DAG run before its worker process has exited and logged it."""
    deadline, count, since = time.monotonic() + timeout, total_starts(stack), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < quiet:
        time.sleep(1)
        if (now := total_starts(stack)) != count:
            count, since = now, time.monotonic()
    return count


def one_run(stack: AirflowStack, api: httpx.Client, pipeline: str, path: str, videos: int) -> Run:
    dag_id = f"kling_paths_{pipeline}_{path}"
    starts_before = total_starts(stack)
    workers_before, triggerers_before = cpu(stack, CELERY_WORKERS), cpu(stack, TRIGGERERS)
    run = api.post(f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None})
    run.raise_for_status()
    run_path = f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run.json()['dag_run_id'], safe='')}"
    started = time.monotonic()
    while (state := api.get(run_path).json()["state"]) not in ("success", "failed"):
        if time.monotonic() - started > 3600:
            raise RuntimeError(f"{dag_id} still {state} after {time.monotonic() - started:.0f} s")
        time.sleep(2)
    starts_after = settled_starts(stack)
    workers_after, triggerers_after = cpu(stack, CELERY_WORKERS), cpu(stack, TRIGGERERS)
    detail = api.get(run_path).json()
    wall = (
        datetime.fromisoformat(detail["end_date"]) - datetime.fromisoformat(detail["start_date"])
    ).total_seconds()
    tis = task_instances(api, run_path)
    counted = worker_task_starts(stack.log_dir)
    by_task: dict[str, int] = {}
    for ti in tis:
        by_task[ti["task_id"]] = by_task.get(ti["task_id"], 0) + counted[ti["id"]]
    last = "download" if pipeline == "flagship" else "render"  # a video is done once this succeeds
    return Run(
        pipeline=pipeline,
        path=path,
        videos=videos,
        succeeded=sum(t["state"] == "success" for t in tis if t["task_id"] == last),
        state=state,
        starts=starts_after - starts_before,
        starts_by_task=by_task,
        worker_cpu=workers_after - workers_before,
        triggerer_cpu=triggerers_after - triggerers_before,
        wall=wall,
    )


def measure(size: Size) -> list[Run]:
    home = Path(tempfile.mkdtemp(prefix="kling-bench-paths-"))
    env = {"KLING_PATHS_BATCH": str(size.batch), "KLING_PATHS_EACH": str(size.each)}
    stack = AirflowStack(
        home=home, dags_folder=BENCH / "dags", with_simulator=True, topology="celery", extra_env=env
    )
    # Deleted with the cluster however the run ends: stop(), a signal, or the watchdog.
    stack.record_cleanup(str(home))
    try:
        stack.start(timeout=900)
        return run_all_paths(stack, size)
    finally:
        stack.stop()


def renders(stack: AirflowStack, seconds: tuple[float, float]) -> None:
    """Have the simulator render each request in ``seconds`` (drawn per request), with no rate limit."""
    low, high = seconds
    config = {
        "rate_limit": None,
        "queued_seconds": 0,
        "processing_seconds": low,
        "processing_seconds_max": high,
    }
    httpx.post(f"{stack.kling_base_url}/_simulator/config", json=config, timeout=60).raise_for_status()


def run_all_paths(stack: AirflowStack, size: Size) -> list[Run]:
    api = httpx.Client(base_url=stack.base_url, timeout=120)
    api.headers["Authorization"] = f"Bearer {stack.token()}"
    dag_ids = [f"kling_paths_{pipeline}_{path}" for pipeline in GOALS for path in PATHS]
    deadline = time.monotonic() + 300
    for dag_id in dag_ids:
        while api.get(f"/api/v2/dags/{dag_id}").status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{dag_id} was not parsed; see {stack.log_dir / 'dag-processor.log'}")
            time.sleep(1)
        api.patch(f"/api/v2/dags/{dag_id}", json={"is_paused": False}).raise_for_status()
    # The operator's runs first: they also warm the workers (imports, connections) for the batch.
    runs = []
    for pipeline, videos, seconds in (
        ("operator", size.each, size.each_render),
        ("flagship", size.batch, size.batch_render),
    ):
        renders(stack, seconds)
        for path in PATHS:
            print(f"bench: paths: {pipeline}, {path} path, {videos} videos...", file=sys.stderr, flush=True)
            runs.append(one_run(stack, api, pipeline, path, videos))
            print(f"bench: paths: {json.dumps(dataclasses.asdict(runs[-1]))}", file=sys.stderr, flush=True)
    return runs


DESCRIPTION = """
One Celery deployment (Postgres, the CeleryExecutor on Redis, two workers of two slots each,
two triggerers, as in the end-to-end tests) runs each pipeline on the old path and then the
new one, mapped over {each} images for the operator's own wait
(`KlingI2VOperator(wait_for_completion=True, deferrable=True)`) and {batch} for the flagship
pipeline (`KlingI2VOperator` → `KlingStatusSensor(deferrable=True)` →
`KlingDownloadVideoOperator`), against the simulator with no rate limit and renders of
{each_low:.0f}-{each_high:.0f} s for the operator, {low:.0f}-{high:.0f} s for the flagship. The
*old path* is the provider before waits could start and end in the triggerer
(bench-only subclasses in `bench/dags/kling_paths.py`: `start_from_trigger=False`,
`ends_in_triggerer()` false): the sensor starts on a worker, which defers it, and every wait
resumes on a worker to end. *Worker task starts* are the task processes the Celery workers
started during the run, retries included, counted from the workers' logs (one "Workload
finished" line per `ExecuteTask`); *worker CPU* is both worker process groups' CPU over the
run, the exited task processes included; *triggerer CPU* the same for both triggerers;
*wall* is the DAG run's start to end in Airflow's REST API. All per video.
"""


def run(smoke: bool) -> Section:
    size = SMOKE if smoke else FULL
    return section(size, measure(size))


def deferrals(old: Run) -> str:
    """How many old-path sensors deferred: a sensor's first check on a worker that finds the
    request finished ends the task there, so the old path costs 4 worker starts per video only
    when the render outlasts the wait for that first start."""
    deferred = old.starts_by_task.get("wait", 0) - old.videos
    return (
        f"On the old path {deferred} of {old.videos} sensors found their request still rendering at "
        "their first check on a worker and deferred (two worker starts each); "
        f"{old.videos - deferred} found it finished and ended there (one start). The mapped sensors "
        "start only once every submit of the batch has finished, so the old path's four starts per "
        "video need renders longer than the batch's submits and the queue for a worker slot, as "
        "real renders of minutes are."
    )


def section(size: Size, runs: list[Run]) -> Section:
    """The page's section for the runs of one deployment."""
    by = {(r.pipeline, r.path): r for r in runs}
    rows = [
        [
            r.pipeline,
            r.path,
            f"{r.succeeded} of {r.videos} (run {r.state})",
            f"{r.per_video(r.starts):.2f}",
            " / ".join(f"{task} {n}" for task, n in sorted(r.starts_by_task.items())),
            f"{r.per_video(r.worker_cpu):.2f} s",
            f"{r.per_video(r.triggerer_cpu):.2f} s",
            f"{r.per_video(r.wall):.2f} s",
        ]
        for r in runs
    ]
    comparison = [
        [
            f"{pipeline}, {by[(pipeline, 'old')].videos} videos",
            ratio(by[(pipeline, "new")].starts, by[(pipeline, "old")].starts),
            ratio(by[(pipeline, "new")].worker_cpu, by[(pipeline, "old")].worker_cpu),
            ratio(by[(pipeline, "new")].wall, by[(pipeline, "old")].wall),
        ]
        for pipeline in GOALS
    ]
    body = "\n".join(
        [
            " ".join(DESCRIPTION.split()).format(
                each=size.each,
                batch=size.batch,
                low=size.batch_render[0],
                high=size.batch_render[1],
                each_low=size.each_render[0],
                each_high=size.each_render[1],
            ),
            "",
            *table(
                [
                    "pipeline",
                    "path",
                    "videos",
                    "worker task starts / video",
                    "starts by task",
                    "worker CPU / video",
                    "triggerer CPU / video",
                    "wall / video",
                ],
                rows,
            ),
            "",
            "New path ÷ old, same deployment, same run:",
            "",
            *table(["pipeline", "worker task starts", "worker CPU", "wall"], comparison),
            "",
            deferrals(by[("flagship", "old")]),
            "",
            "Each worker task start is an Airflow 3 task-runner start (a fork, the DAG file parsed, "
            "the task instance fetched and its state reported through the API server), whatever "
            "the task then does: a wait that starts and ends in the triggerer saves the workers "
            "that whole cost, and its slot. The triggerers made the polls on both paths; on the new "
            "one they also read the sensor's request id and end the task (the triggerer CPU column).",
        ]
    )
    targets = []
    for pipeline, (before, after) in GOALS.items():
        old, new = by[(pipeline, "old")], by[(pipeline, "new")]
        targets.append(
            Target(
                f"Worker task starts per video, {pipeline} pipeline",
                f"{before} → {after}",
                f"{old.per_video(old.starts):.2f} → {new.per_video(new.starts):.2f}",
                new.succeeded == new.videos and new.starts <= after * new.videos,
            )
        )
    return Section(
        "Worker processes per video, old path against new",
        [
            f"make bench-paths               # {FULL.batch} videos per path, ~25 min",
            "python bench/paths.py --smoke",
        ],
        body,
        targets,
        skip_reason=(
            "starts a Postgres and Celery deployment (minutes); "
            "tests/e2e/test_wait_paths.py starts the same one"
        ),
    )


if __name__ == "__main__":
    os.chdir(ROOT)
    cli(run, __doc__)

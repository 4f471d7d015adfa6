"""The section of ``docs/performance.md`` that ``bench/deployment.py`` writes: both paths side by side."""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import _profile
from _common import Section, Target, table

from airflow_provider_kling.api.polling import DEFAULT_SCHEDULE

if TYPE_CHECKING:  # deployment.py imports this module: no cycle at run time
    from deployment import Size, Triggerer

#: The paths' columns, left to right, whichever ran first.
ORDER = ("scale", "sensor")
#: The goal for completion → task success at p99: one poll interval, and two seconds to record it.
LATENCY_GOAL = DEFAULT_SCHEDULE.interval + 2.0

DESCRIPTION = """
{n:,} waits for requests of {low:.0f}-{high:.0f} s, each with the provider's trigger on its
default schedule (first poll 25 s after the trigger starts, then about every 9.5 s), on two paths
measured one after the other in the same deployment, the triggerers restarted in between: *{scale}*,
{n:,} mapped tasks the scheduler defers straight to the two triggerers (`start_from_trigger`),
whose trigger ends its task (`bench/dags/kling_scale.py`); and *{sensor}*,
`KlingStatusSensor.partial(task_id="wait", deferrable=True, timeout=...).expand(request_id=ids)`
over an upstream task returning the {n:,} request ids (`bench/dags/kling_scale_sensor.py`): the
upstream runs once on a worker, then each sensor starts in a triggerer, reads its request id there
from the upstream's XCom with its map index, waits, and ends its task with the XComs a worker would
push. Both triggerers run in the same deployment as the end-to-end tests: Postgres, the
CeleryExecutor on Redis. *CPU* is both triggerer process groups (supervisor, trigger runner and
log server) while every trigger ran, per 1,000 polls counted by the simulator; *CPU to start
them* is the same groups' CPU from the DAG run's creation until every trigger ran, per trigger;
*RSS per trigger* is the groups' peak RSS growth over their idle RSS, divided by the most triggers
each held at once; *completion → task success* is from the moment the simulator turns a request
`success` to its task instance's end date in Airflow's database.
"""

DELAY = """
Where the completion → success delay goes: a poll sees the request finished and the trigger yields
its event at once (the sensor's trigger first pushes its two XComs through the triggerer's
supervisor); the event then travels from the trigger runner to the triggerer's supervisor, whose
single loop writes it to Postgres (that write sets the task instance's end date) between assigning
triggers, servicing the runner's messages (every trigger's log lines) for up to a second, cleaning
unused triggers and heartbeating. A first part above the poll interval means the runner's event
loop fell behind its schedule; a second part above a second means the supervisor's loop did.
"""


def percentiles(values: list[float]) -> tuple[float, float]:
    """p50 and p99 of sorted ``values`` (NaN when empty)."""
    if not values:
        return float("nan"), float("nan")
    return statistics.median(values), values[min(len(values) - 1, int(len(values) * 0.99))]


@dataclass
class Figures:
    """One path's figures, from ``deployment.run_load``'s result."""

    result: dict[str, Any]
    cpu_per_1000: float
    start_cpu_ms: float
    rss_per_trigger: float

    @classmethod
    def of(cls, result: dict[str, Any]) -> Figures:
        triggerers: list[Triggerer] = list(result["triggerers"].values())
        cpu = sum(t.cpu_end - t.cpu_start for t in triggerers)
        held = max(1, sum(t.most_triggers for t in triggerers))
        return cls(
            result,
            1000 * cpu / max(result["polls"], 1),
            1000 * sum(t.cpu_start - t.cpu_triggered for t in triggerers) / result["n"],
            sum(t.peak_rss_kb - t.idle_rss_kb for t in triggerers) / held,
        )

    def pair(self, key: str) -> str:
        p50, p99 = percentiles(self.result[key])
        return f"{p50:.1f} s / {p99:.1f} s"


def section(size: Size, results: dict[str, dict[str, Any]], bench: Any) -> Section:
    figures = {name: Figures.of(results[name]) for name in ORDER if name in results}
    labels = {name: f.result["path"].label for name, f in figures.items()}
    rows = [
        [
            labels[name],
            t.name,
            f"{t.most_triggers:,}",
            f"{t.idle_rss_kb / 1024:.0f} MiB → {t.peak_rss_kb / 1024:.0f} MiB",
            f"{t.cpu_start - t.cpu_triggered:.1f} s",
            f"{t.cpu_end - t.cpu_start:.1f} s",
        ]
        for name, f in figures.items()
        for t in f.result["triggerers"].values()
    ]

    def row(figure: str, cell: Any, bench_cell: str = "-", goal: str = "-") -> list[str]:
        return [figure, *(cell(f) for f in figures.values()), bench_cell, goal]

    comparison = [
        row(
            "CPU / 1,000 polls (÷ bench)",
            lambda f: f"{f.cpu_per_1000:.2f} s ({f.cpu_per_1000 / bench.cpu_per_1000:.2f}x)",
            f"{bench.cpu_per_1000:.2f} s",
            "≤ 1.5x",
        ),
        row(
            "peak RSS / trigger (÷ bench)",
            lambda f: (
                f"{f.rss_per_trigger:.1f} KB ({f.rss_per_trigger / max(bench.rss_per_trigger_kb, 0.1):.0f}x)"
            ),
            f"{bench.rss_per_trigger_kb:.1f} KB",
            "≤ 50 KB",
        ),
        row("CPU to start them, per trigger", lambda f: f"{f.start_cpu_ms:.0f} ms"),
        row("polls / s", lambda f: f"{f.result['polls'] / f.result['window']:.1f}"),
        row(
            "completion → task success, p50 / p99",
            lambda f: f.pair("delays"),
            "-",
            f"p99 ≤ {LATENCY_GOAL:g} s",
        ),
        row("… completion → a poll sees it, p50 / p99", lambda f: f.pair("noticed"), "-", "≤ 9.5 s"),
        row("… that poll → task success, p50 / p99", lambda f: f.pair("handed"), "-", "≤ 1 s"),
        row("every trigger running after the submits", lambda f: f"{f.result['all_running_after']:.0f} s"),
        row("requests first polled only once finished", lambda f: f"{f.result['late_first_poll']:,}"),
        row(
            "worker task-process starts: `wait` / other tasks",
            lambda f: (
                f"{f.result['wait_worker_starts']:,} / "
                + (", ".join(f"{k} {v}" for k, v in f.result["other_worker_starts"].items()) or "none")
            ),
            "-",
            "`wait`: 0",
        ),
        row(
            "`return_value` a dict with status success (sampled map indexes)",
            lambda f: "-" if f.result["xcoms"] is None else "{} of {}".format(*f.result["xcoms"]),
            "-",
            "all",
        ),
    ]
    body = [
        " ".join(DESCRIPTION.split()).format(
            n=size.n,
            low=size.render[0],
            high=size.render[1],
            scale="bench trigger (ScaleWait)",
            sensor="KlingStatusSensor, as users get it",
        ),
        "",
        *table(
            [
                "path",
                "triggerer",
                "most triggers at once",
                "RSS idle → peak",
                "CPU to start them",
                "CPU while all ran",
            ],
            rows,
        ),
        "",
        "Next to what `bench/triggers.py` measures for one process holding one triggerer's share "
        f"({max(1, size.n // 2):,} triggers, polling every {bench.poll_interval:g} s), run right after:",
        "",
        *table(["figure", *labels.values(), "bench, one process", "goal"], comparison),
        "",
    ]
    targets = []
    for name, f in figures.items():
        result, label = f.result, labels[name]
        whose_lines, whose_targets = _profile.whose(
            list(result["triggerers"].values()), result["polls"], (f.cpu_per_1000, f.rss_per_trigger), bench
        )
        body += [f"*{label}:* " + whose_lines[0], *whose_lines[1:], ""]
        p99 = percentiles(result["delays"])[1]
        targets += [
            Target(
                f"Every wait ends ({label})",
                f"{size.n:,} of {size.n:,} succeed",
                f"{result['succeeded']:,} of {size.n:,}",
                result["succeeded"] == size.n,
            ),
            Target(
                f"Completion → task success p99 ({label})",
                f"≤ {LATENCY_GOAL:g} s (poll interval + 2 s)",
                f"{p99:.1f} s",
                p99 <= LATENCY_GOAL,
            ),
            *(dataclasses.replace(t, name=f"{t.name} ({label})") for t in whose_targets),
            Target(
                f"No `wait` task instance on a worker ({label})",
                "0 worker task-process starts",
                f"{result['wait_worker_starts']:,}",
                result["wait_worker_starts"] == 0,
            ),
        ]
        if result["xcoms"] is not None:
            ok, sampled, bad = result["xcoms"]
            targets.append(
                Target(
                    f"`return_value` a dict with status success ({label})",
                    f"{sampled} of {sampled} sampled map indexes",
                    f"{ok} of {sampled}" + (f" ({bad[0]})" if bad else ""),
                    ok == sampled,
                )
            )
    body.append(" ".join(DELAY.split()))
    return Section(
        "Triggers in the production deployment",
        [
            "make bench-deployment          # N=2,000 on each path, ~30 min",
            "python bench/deployment.py --waits 1000 --render 180 300 --path scale sensor",
            "python bench/deployment.py --smoke",
        ],
        "\n".join(body),
        targets,
        skip_reason=(
            "starts a Postgres and Celery deployment (minutes); "
            "tests/e2e/test_topology.py starts the same one"
        ),
    )

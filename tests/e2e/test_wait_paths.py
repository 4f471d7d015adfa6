"""Waits that cost no worker, on the production topology (Postgres, Celery on Redis, two triggerers).

Which task instances ran on a worker is read from the Celery workers' own records: each task
process a worker starts is one ``ExecuteTask`` workload, which its supervisor logs as finished
(``devtools.processes.worker_task_starts``).
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from airflow_provider_kling.tasks.ledger import STATUS_KEY
from airflow_provider_kling.testing.readiness import wait_until
from devtools.processes import worker_task_starts

from .conftest import PROCESSING_SECONDS, AirflowAPI, states, trigger_log_job_ids

pytestmark = [pytest.mark.topology("celery"), pytest.mark.timeout(900)]

PATHS = "kling_e2e_paths"
RETRY = "kling_e2e_paths_retry"


def xcom(api: AirflowAPI, dag_id: str, run_id: str, task_id: str, key: str) -> object:
    path = f"/api/v2/dags/{dag_id}/dagRuns/{api.q(run_id)}/taskInstances/{task_id}/xcomEntries/{key}"
    return api.get(path, map_index=-1)["value"]


def starts(api: AirflowAPI, stack, dag_id: str, run_id: str) -> dict[str, int]:
    """Worker task-process starts per task of the run, once the workers have logged them all.

    A task process reports its state before its supervisor logs that it exited (seconds later,
    once its log is flushed), so the count is read until it stops changing.
    """
    tis = api.task_instances(dag_id, run_id)
    seen: list[dict[str, int]] = []

    def settled() -> dict[str, int] | None:
        counted = worker_task_starts(stack.log_dir)
        seen.append({ti["task_id"]: counted[ti["id"]] for ti in tis})
        # Unchanged for 15 s: a supervisor logs its task's exit seconds after the task's success.
        return seen[-1] if len(seen) >= 16 and seen[-1] == seen[-16] else None

    return wait_until(settled, 120, "the workers' logs to settle", interval=1)


def test_a_sensor_starts_and_ends_in_the_triggerer_with_the_worker_paths_xcoms(api, stack, simulator):
    posts_before = simulator.count("POST /requests")
    # Renders long enough that every wait, on every path, finds its request still running.
    simulator.configure(processing_seconds=30)
    try:
        run_id = api.trigger(PATHS)
        run = api.wait_for_run(PATHS, run_id)
    finally:
        simulator.configure(processing_seconds=PROCESSING_SECONDS)
    assert run["state"] == "success", api.failure_report(PATHS, run_id)
    assert simulator.count("POST /requests") - posts_before == 2  # submit and render, once each

    # From Airflow's records: the sensor as users get it never ran on a worker; the one kept on
    # the worker start ran there once (its first check), and its trigger ended it; the operator
    # once (its submit), the submit once.
    # The one with download_to started in the triggerer and resumed on a worker for the download.
    assert starts(api, stack, PATHS, run_id) == {
        "submit": 1,
        "in_triggerer": 0,
        "on_worker": 1,
        "with_download": 1,
        "render": 1,
    }

    # The same XComs as the worker path's, for the same request.
    for key in ("return_value", STATUS_KEY):
        assert xcom(api, PATHS, run_id, "in_triggerer", key) == xcom(api, PATHS, run_id, "on_worker", key)
    result = xcom(api, PATHS, run_id, "in_triggerer", "return_value")
    assert result["request_id"] == api.xcom(PATHS, run_id, "submit")
    # The extra links the UI shows, stored as the worker's task runner stores them.
    for link in ("_link_KlingVideoLink", "_link_KlingRequestLink"):
        assert xcom(api, PATHS, run_id, "in_triggerer", link) == xcom(
            api, PATHS, run_id, "with_download", link
        )
    assert xcom(api, PATHS, run_id, "in_triggerer", "_link_KlingVideoLink") == result["media_urls"][0]
    stored = xcom(api, PATHS, run_id, "with_download", "return_value")
    assert {k: stored[k] for k in result} == result
    assert Path(stored["files"][0]["uri"]).read_bytes()[4:8] == b"ftyp"
    assert result["status"] == "success"
    # The operator's result still carries its price, as its worker resume added it.
    rendered = xcom(api, PATHS, run_id, "render", "return_value")
    assert rendered["estimated_cost_usd"] == xcom(api, PATHS, run_id, "render", "estimated_cost_usd")
    assert xcom(api, PATHS, run_id, "render", STATUS_KEY)["status"] == "success"

    # The task's log, as the UI shows it, is the wait's timeline, written by a triggerer.
    log = api.log_text(PATHS, run_id, "in_triggerer", 1)
    assert trigger_log_job_ids(log) <= api.triggerer_job_ids()
    assert trigger_log_job_ids(log)
    assert re.search(rf"Kling request {result['request_id']} is \w+ \(first check\)", log), log[-2000:]
    assert f"Kling request {result['request_id']} succeeded" in log


def test_a_failed_request_fails_the_task_in_the_triggerer_and_its_retry_runs(api, stack, simulator):
    message = f"E2E {uuid.uuid4().hex[:8]}: the first frame was rejected by content moderation"
    simulator.fail_next(message)
    run_id = api.trigger(RETRY)
    run = api.wait_for_run(RETRY, run_id)

    assert run["state"] == "failed"
    assert states(api, RETRY, run_id) == {("submit", -1): "success", ("in_triggerer", -1): "failed"}
    ti = api.task_instance(RETRY, run_id, "in_triggerer")
    # retries=1 was honoured (apache/airflow#69819 is fixed in 3.3.2): two tries, both in the
    # triggerer, each failing with GMI's message in its log.
    assert ti["try_number"] == 2, ti
    assert starts(api, stack, RETRY, run_id)["in_triggerer"] == 0
    for try_number in (1, 2):
        assert message in api.log_text(RETRY, run_id, "in_triggerer", try_number)
    entry = xcom(api, RETRY, run_id, "in_triggerer", STATUS_KEY)
    assert entry["status"] == "failed"
    assert message in entry["error"]

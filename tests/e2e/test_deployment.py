"""The provider in a real Airflow deployment, checked through Airflow's REST API.

api-server, scheduler, dag-processor and triggerer run as separate processes (see
``devtools.deployment``); DAG runs are triggered with
``POST /api/v2/dags/{id}/dagRuns`` and everything is read back through ``/api/v2``. The tests
run on the production topology, sharing its deployment with ``test_topology.py`` (which
covers a batch and triggerer kills), in file order.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from .conftest import EXAMPLE, states, trigger_log_job_ids

# A whole deployment on two cores: far above pyproject's 300 s default, bounded all the same.
pytestmark = [pytest.mark.topology("celery"), pytest.mark.timeout(900)]

BATCH = "kling_batch"
TRIGGER_CLASSPATH = "airflow_provider_kling.tasks.start.KlingTaskTrigger"


def test_example_dag_defers_to_the_real_triggerer_and_downloads_the_video(api, stack, simulator):
    posts_before = simulator.count("POST /requests")
    run_id = api.trigger(EXAMPLE)

    # The sensor hands the wait to the triggerer: its task instance is `deferred`, with our
    # trigger (rebuilt by the triggerer process from its serialized kwargs) on a triggerer job.
    deferred = api.wait_for_task_state(EXAMPLE, run_id, "wait", "deferred")
    assert deferred["trigger"]["classpath"] == TRIGGER_CLASSPATH, deferred["trigger"]
    run = api.wait_for_run(EXAMPLE, run_id)
    assert run["state"] == "success", states(api, EXAMPLE, run_id)
    assert set(states(api, EXAMPLE, run_id).values()) == {"success"}

    request_id = api.xcom(EXAMPLE, run_id, "submit")
    result = api.xcom(EXAMPLE, run_id, "wait")
    assert result["request_id"] == request_id
    assert result["status"] == "success"
    assert result["media_urls"] == [f"{simulator.base_url}/media/{request_id}/sample_0.mp4"]
    assert simulator.count("POST /requests") - posts_before == 1

    # The sensor's log (through the REST API) includes the trigger's own log, written by a
    # triggerer job: the trigger was rebuilt there from its serialized kwargs and polled.
    log = api.log_text(EXAMPLE, run_id, "wait", 1)
    trigger_jobs = trigger_log_job_ids(log)
    assert trigger_jobs, log[-3000:]
    assert trigger_jobs <= api.triggerer_job_ids()
    transition = rf"Kling request {request_id} is \w+ \((first check|before: \w+)\); submitted \d+ s ago"
    assert re.search(transition, log), "the trigger logged no status change"

    # The example downloads with KlingDownloadVideoOperator: its XCom names the stored copies.
    downloaded = api.xcom(EXAMPLE, run_id, "download")
    video = Path(stack.home) / "out" / f"{request_id}.mp4"
    assert downloaded["request_id"] == request_id
    assert downloaded["uris"] == [str(video)]
    assert video.read_bytes()[4:8] == b"ftyp"


def test_a_failed_request_fails_the_task_with_the_api_message_in_its_log(api, simulator):
    message = f"E2E {uuid.uuid4().hex[:8]}: the first frame was rejected by content moderation"
    simulator.fail_next(message)
    run_id = api.trigger(EXAMPLE)
    run = api.wait_for_run(EXAMPLE, run_id)

    assert run["state"] == "failed"
    task_states = states(api, EXAMPLE, run_id)
    assert task_states[("submit", -1)] == "success"
    assert task_states[("wait", -1)] == "failed"
    assert task_states[("download", -1)] == "upstream_failed"
    ti = api.task_instance(EXAMPLE, run_id, "wait")
    log = api.log_text(EXAMPLE, run_id, "wait", ti["try_number"])
    assert message in log


def test_the_local_stack_stores_kling_default_as_a_real_connection(api, simulator):
    # Admin -> Connections lists what the API lists: an environment variable would not show.
    conn = api.get("/api/v2/connections/kling_default")
    assert conn["conn_type"] == "kling"
    assert conn["host"] == simulator.base_url


def test_the_provider_and_its_connection_form_are_served_by_the_api(api):
    providers = {p["package_name"]: p for p in api.get("/api/v2/providers", limit=1000)["providers"]}
    assert "airflow-provider-kling" in providers
    assert "Kling" in providers["airflow-provider-kling"]["description"]

    # What the React connection form renders, from the endpoint it calls.
    hooks = {h["connection_type"]: h for h in api.get("/ui/connections/hook_meta")}
    kling = hooks["kling"]
    assert kling["hook_name"] == "Kling (GMI Cloud)"
    standard = kling["standard_fields"]
    assert standard["password"] == {"hidden": False, "title": "API key", "placeholder": "GMI Cloud API key"}
    assert standard["host"]["title"] == "Base URL"
    assert standard["login"]["hidden"]
    # Port shows, with 443 as its hint: Airflow 3.3.2's Test button needs a stored port.
    assert standard["port"] == {
        "hidden": False,
        "title": "Port (optional; 443 lets the Test button work)",
        "placeholder": "empty, or e.g. 443",
    }
    extra = kling["extra_fields"]
    assert extra["organization_id"]["schema"]["title"] == "Organization ID"
    assert extra["timeout"]["schema"]["title"] == "Timeout (seconds)"
    assert extra["timeout"]["schema"]["type"] == ["number", "null"]

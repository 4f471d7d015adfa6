"""
Faults while waiting never fail a task: the sensor, the operator's own wait and the trigger
ride out failed polls, against the simulator's fault script.
"""

from __future__ import annotations

import time

import pytest

from airflow_provider_kling.exceptions import KlingRequestFailedError
from airflow_provider_kling.sensors.kling import KlingStatusSensor
from airflow_provider_kling.testing import Fault
from airflow_provider_kling.triggers.kling import KlingStatusTrigger
from tests.helpers import operator, submit
from tests.helpers import task_context as a_try

# --- Poll faults -------------------------------------------------------------------------

POLL_FAULTS = [
    Fault.error(503, "unavailable"),
    Fault.rate_limited(retry_after_ms=10),
    Fault.connection_reset(),
    Fault.non_json(),
    Fault.backend_error(),
]


def test_sensor_polls_survive_faults(kling_simulator, kling_connection_env, retry_sleeps):
    request_id = submit(kling_simulator)
    kling_simulator.script("GET /requests/{id}", POLL_FAULTS)
    result = KlingStatusSensor(
        task_id="wait", request_id=request_id, poke_interval=0.05, timeout=60, deferrable=False
    ).execute({})
    assert result["status"] == "success"
    assert kling_simulator.count("POST /requests") == 1


def test_operator_wait_survives_poll_faults(kling_simulator, kling_connection_env, retry_sleeps):
    kling_simulator.script("GET /requests/{id}", POLL_FAULTS)
    result = operator(wait_for_completion=True).execute(a_try())
    assert result["status"] == "success"
    assert kling_simulator.count("POST /requests") == 1


async def test_trigger_survives_a_run_of_failed_polls(kling_simulator, kling_connection_env, retry_sleeps):
    request_id = submit(kling_simulator)
    kling_simulator.script("GET /requests/{id}", POLL_FAULTS * 3)
    trigger = KlingStatusTrigger(request_id=request_id, end_time=time.time() + 60, poll_interval=0.05)
    events = [e.payload async for e in trigger.run()]
    assert [e["status"] for e in events] == ["success"]


async def test_success_without_video_is_a_clear_error(kling_simulator, kling_connection_env):
    request_id = submit(kling_simulator)
    kling_simulator.script(
        "GET /requests/{id}",
        [Fault(status=200, body={"request_id": request_id, "status": "success", "outcome": {}})],
    )
    trigger = KlingStatusTrigger(request_id=request_id, end_time=time.time() + 60, poll_interval=0.05)
    events = [e.payload async for e in trigger.run()]
    assert [e["status"] for e in events] == ["error"]
    assert "names no video URL" in events[0]["message"]


async def test_unknown_status_counts_as_running_until_the_deadline(
    kling_simulator, kling_connection_env, capsys
):
    request_id = submit(kling_simulator)
    kling_simulator.script(
        "GET /requests/{id}", [Fault(status=200, body={"request_id": request_id, "status": "paused"})] * 50
    )
    trigger = KlingStatusTrigger(request_id=request_id, end_time=time.time() + 0.3, poll_interval=0.05)
    events = [e.payload async for e in trigger.run()]
    assert [e["status"] for e in events] == ["timeout"]
    assert "unknown status 'paused'" in "".join(capsys.readouterr())


def test_failure_text_reaches_the_exception(kling_simulator, kling_connection_env):
    with pytest.raises(KlingRequestFailedError, match="content policy"):
        operator(prompt="SIMULATE_FAILURE content policy", wait_for_completion=True).execute(a_try())

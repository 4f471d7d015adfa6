"""KlingStatusSensor: poke, defer, and every way a wait can end."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest
from airflow.sdk import Asset, PokeReturnValue
from airflow.sdk.execution_time.context import OutletEventAccessors

from airflow_provider_kling.exceptions import (
    AirflowSensorTimeout,
    KlingRequestFailedError,
    KlingTriggerEventError,
)
from airflow_provider_kling.sensors.kling import KlingStatusSensor
from airflow_provider_kling.triggers.kling import KlingStatusTrigger
from tests.compat import AirflowSkipException, TaskDeferred
from tests.helpers import FakeStateStore, FakeTI, RescheduledTI, submit, wait_for_status


def sensor(**kwargs: Any) -> KlingStatusSensor:
    kwargs.setdefault("task_id", "wait")
    kwargs.setdefault("poke_interval", 0.1)
    return KlingStatusSensor(**kwargs)


def test_poke_is_false_while_running_and_returns_the_result_when_done(kling_simulator, kling_connection_env):
    request_id = submit(kling_simulator)
    task = sensor(request_id=request_id)
    assert task.poke({}) is False
    wait_for_status(kling_simulator, request_id, "success")
    done = task.poke({})
    assert isinstance(done, PokeReturnValue)
    assert done.xcom_value["request_id"] == request_id
    assert done.xcom_value["status"] == "success"
    assert done.xcom_value["media_urls"][0].endswith(".mp4")


@pytest.mark.parametrize(
    ("marker", "status"), [("SIMULATE_FAILURE out of credits", "failed"), ("SIMULATE_CANCEL", "cancelled")]
)
def test_failed_and_cancelled_requests_fail_the_sensor(kling_simulator, kling_connection_env, marker, status):
    request_id = submit(kling_simulator, prompt=marker)
    wait_for_status(kling_simulator, request_id, status)
    with pytest.raises(KlingRequestFailedError, match=status) as err:
        sensor(request_id=request_id).poke({})
    assert err.value.status == status


def test_poke_mode_returns_the_result(kling_simulator, kling_connection_env):
    request_id = submit(kling_simulator)
    result = sensor(request_id=request_id, deferrable=False, timeout=60).execute({})
    assert result["request_id"] == request_id
    assert result["media_urls"]


def test_a_waiting_sensor_says_once_that_it_holds_its_slot(kling_simulator, kling_connection_env, capsys):
    request_id = submit(kling_simulator)
    sensor(request_id=request_id, deferrable=False, timeout=60).execute({})
    logs = "".join(capsys.readouterr())
    assert logs.count("Waiting in this worker slot") == 1
    assert "deferrable=True" in logs
    assert "default_deferrable" in logs


def test_deferrable_pokes_once_then_defers_with_a_wall_clock_deadline(kling_simulator, kling_connection_env):
    request_id = submit(kling_simulator)
    task = sensor(request_id=request_id, deferrable=True, timeout=600)
    before = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        task.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, KlingStatusTrigger)
    assert trigger.request_id == request_id
    assert before + 600 <= trigger.end_time <= time.time() + 600
    assert kling_simulator.count("GET /requests/{id}") == 1


def test_deferrable_returns_at_once_when_already_done(kling_simulator, kling_connection_env):
    request_id = submit(kling_simulator)
    wait_for_status(kling_simulator, request_id, "success")
    result = sensor(request_id=request_id, deferrable=True).execute({})
    assert result["status"] == "success"


def test_request_id_accepts_the_dict_a_kling_task_returns(kling_simulator, kling_connection_env):
    request_id = submit(kling_simulator)
    assert sensor(request_id={"request_id": request_id}).poke({}) is False


def test_empty_request_id_is_a_clear_error():
    with pytest.raises(ValueError, match="Invalid request_id"):
        sensor(request_id="").poke({})


SUCCESS = {
    "status": "success",
    "request_id": "r1",
    "media_urls": ["http://v/0.mp4"],
    "message": "ok",
    "outcome": {"video_url": "http://v/0.mp4"},
}


def test_execute_complete_success():
    result = sensor(request_id="r1").execute_complete({}, event=SUCCESS)
    assert result == {
        "request_id": "r1",
        "status": "success",
        "media_urls": ["http://v/0.mp4"],
        "outcome": {"video_url": "http://v/0.mp4"},
    }


@pytest.mark.parametrize(
    ("event", "error", "match"),
    [
        (
            {"status": "failed", "request_id": "r1", "message": "GMI: bad image"},
            KlingRequestFailedError,
            "bad image",
        ),
        (
            {"status": "cancelled", "request_id": "r1", "message": "cancelled"},
            KlingRequestFailedError,
            "cancelled",
        ),
        (
            {"status": "timeout", "request_id": "r1", "message": "still queued"},
            AirflowSensorTimeout,
            "still queued",
        ),
        ({"status": "error", "request_id": "r1", "message": "HTTP 401"}, KlingTriggerEventError, "HTTP 401"),
        ({"request_id": "r1"}, KlingTriggerEventError, "does not understand"),
        ({"status": "weird"}, KlingTriggerEventError, "does not understand"),
        (None, KlingTriggerEventError, "does not understand"),
        (
            {"status": "success", "request_id": "r1", "media_urls": []},
            KlingTriggerEventError,
            "without media",
        ),
    ],
)
def test_execute_complete_raises_for_every_other_event(event, error, match):
    with pytest.raises(error, match=match):
        sensor(request_id="r1").execute_complete({}, event=event)


def test_timeout_event_skips_with_soft_fail():
    task = sensor(request_id="r1", soft_fail=True)
    with pytest.raises(AirflowSkipException):
        task.resume_execution("execute_complete", {"event": {"status": "timeout", "request_id": "r1"}}, {})


def test_soft_fail_skips_a_timeout_but_not_a_failed_request():
    task = sensor(request_id="r1", soft_fail=True)
    failed = {"status": "failed", "request_id": "r1", "message": "bad image", "error": "bad image"}
    with pytest.raises(KlingRequestFailedError, match="bad image") as err:
        task.resume_execution("execute_complete", {"event": failed}, {})
    assert err.value.error == "bad image"


# --- one fetch per poll ---------------------------------------------------------------------

POLLS = "GET /requests/{id}"
ASSET = Asset("kling://videos/sensor")


def gets(sim: Any, call: Callable[[], Any]) -> tuple[Any, int]:
    """What ``call`` gave, and how many times it fetched a request's record."""
    before = sim.count(POLLS)
    return call(), sim.count(POLLS) - before


def waited_in_mode(sim: Any, mode: str, context: dict[str, Any]) -> Any:
    """
    Wait for one request with a sensor in ``mode``, and require one GET per check: none to
    describe the video on the asset event. Poke mode checks a finished request (its own loop
    would poll a running one an unknown number of times); the others see it running first.
    """
    request_id = submit(sim, prompt="a calm sea")
    task = sensor(request_id=request_id, deferrable=mode == "deferrable", outlets=[ASSET])
    if mode == "poke":
        wait_for_status(sim, request_id, "success")
        result, fetched = gets(sim, lambda: task.execute(context))
        assert fetched == 1
        return result
    if mode == "reschedule":
        context |= {"ti": RescheduledTI(datetime.now(timezone.utc)), "task_state_store": FakeStateStore()}
        assert gets(sim, lambda: task.poke(context)) == (False, 1)
        wait_for_status(sim, request_id, "success")
        again = sensor(request_id=request_id, mode="reschedule", outlets=[ASSET])  # a new try
        done, fetched = gets(sim, lambda: again.poke(context))
        assert fetched == 1
        return done.xcom_value
    with pytest.raises(TaskDeferred) as deferred:
        gets(sim, lambda: task.execute(context))
    assert sim.count(POLLS) == 1
    wait_for_status(sim, request_id, "success")
    # The trigger carries on from the sensor's check (its next poll one interval later), so
    # the finished request is read once.
    (event,), fetched = gets(sim, lambda: asyncio.run(_events(deferred.value.trigger)))
    assert fetched == 1
    resumed = json.loads(json.dumps(event))  # as the event crosses the triggerer's database
    result, fetched = gets(sim, lambda: task.execute_complete(context, event=resumed))
    assert fetched == 0
    return result


async def _events(trigger: KlingStatusTrigger) -> list[dict[str, Any]]:
    return [e.payload async for e in trigger.run()]


@pytest.mark.parametrize("mode", ["poke", "reschedule", "deferrable"])
def test_a_sensor_describes_the_video_from_its_last_poll_without_fetching_again(
    kling_simulator, kling_connection_env, mode
):
    context: dict[str, Any] = {"ti": FakeTI(), "outlet_events": OutletEventAccessors()}
    result = waited_in_mode(kling_simulator, mode, context)
    assert result["status"] == "success"
    extra = context["outlet_events"][ASSET].extra
    # What GMI's record said, as the previous version fetched it a second time to learn.
    assert extra["model"] == "kling-3.0-turbo-i2v"
    assert extra["prompt"] == "a calm sea"
    assert extra["media_urls"] == result["media_urls"]

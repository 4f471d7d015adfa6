"""The one polling step, alone and through every way of waiting.

The last tests drive the same fault sequence at the simulator through the operator's own wait,
the sensor in poke mode, the sensor in reschedule mode and the trigger, and require the same
verdict and the same words from each.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import datetime, timezone
from typing import Any

import pytest

from airflow_provider_kling.api import KlingAPIError, KlingRequest, PollSchedule
from airflow_provider_kling.api.errors import KlingTransportError
from airflow_provider_kling.api.waiting import WaitState, begin, step
from airflow_provider_kling.exceptions import (
    AirflowSensorTimeout,
    KlingRequestFailedError,
    KlingWaitError,
)
from airflow_provider_kling.operators.kling import KlingI2VOperator
from airflow_provider_kling.sensors.kling import WAIT_STATE_KEY, KlingStatusSensor
from airflow_provider_kling.testing import Fault
from airflow_provider_kling.triggers.kling import KlingStatusTrigger
from tests.helpers import FakeStateStore, FakeTI, RescheduledTI, submit

NOW = 1_000_000.0


def state(**kwargs: Any) -> WaitState:
    kwargs.setdefault("request_id", "r1")
    kwargs.setdefault("submitted_at", NOW)
    kwargs.setdefault("deadline", NOW + 600)
    kwargs.setdefault("schedule", PollSchedule.fixed(10, jitter=0))
    return WaitState(**kwargs)


def record(status: str, **fields: Any) -> KlingRequest:
    return KlingRequest.from_record({"request_id": "r1", "status": status, **fields})


# --- the step alone ---------------------------------------------------------------------


def test_a_running_record_sleeps_one_interval_and_logs_the_change_once():
    first = step(state(), NOW + 5, record("queued"))
    assert (first.done, first.sleep) == (False, 10)
    assert first.notes == ((logging.INFO, "Kling request r1 is queued (first check); submitted 5 s ago"),)
    again = step(first.state, NOW + 15, record("queued"))
    assert again.notes == ()


def test_the_sleep_never_runs_past_the_deadline():
    decision = step(state(deadline=NOW + 3), NOW + 1, record("processing"))
    assert decision.sleep == pytest.approx(2)


def test_begin_waits_for_the_schedules_first_poll_but_not_past_the_deadline():
    default = PollSchedule(jitter=0)
    assert begin(state(schedule=default), NOW).sleep == 25
    assert begin(state(schedule=default, deadline=NOW + 4), NOW).sleep == 4
    assert begin(state(schedule=default), NOW + 100).sleep == 0  # resumed late: poll at once


@pytest.mark.parametrize(
    ("fields", "status", "text"),
    [
        ({"outcome": {"media_urls": ["https://x/v.mp4"]}}, "success", "succeeded"),
        ({"outcome": {"error": "nsfw"}, "status": "failed"}, "failed", "nsfw"),
        ({"status": "cancelled"}, "cancelled", "ended cancelled"),
        ({"outcome": {}}, "error", "names no video URL"),
    ],
)
def test_a_terminal_record_ends_the_wait(fields, status, text):
    fields = {"status": "success", **fields}
    decision = step(state(), NOW, record(**fields))
    assert decision.event is not None
    assert decision.event["status"] == status
    assert text in decision.event["message"]


@pytest.mark.parametrize("code", [400, 401, 403, 404])
def test_a_permanent_error_ends_the_wait_at_once(code):
    decision = step(state(), NOW, KlingAPIError(f"GMI answered HTTP {code}", status_code=code))
    assert decision.event is not None
    assert decision.event["status"] == "error"
    assert decision.event["message"] == f"Polling Kling request r1 failed: GMI answered HTTP {code}"


@pytest.mark.parametrize(
    "error",
    [
        KlingAPIError("busy", status_code=503),
        KlingAPIError("slow down", status_code=429),
        KlingAPIError("not JSON"),
        KlingTransportError("reset", sent=True),
    ],
    ids=["503", "429", "unreadable", "transport"],
)
def test_transient_errors_count_against_the_budget_and_a_record_resets_it(error):
    current = state(max_failures=3)
    for attempt in (1, 2):
        decision = step(current, NOW, error)
        assert not decision.done
        assert decision.notes[0][0] == logging.WARNING
        assert f"Poll {attempt} of Kling request r1 failed" in decision.notes[0][1]
        current = decision.state
    current = step(current, NOW, record("queued")).state
    assert current.failures == 0
    for _ in range(2):
        current = step(current, NOW, error).state
    last = step(current, NOW, error)
    assert last.event is not None
    assert last.event["message"].startswith("Polling Kling request r1 failed 3 times in a row")


def test_an_unexpected_exception_is_named_by_its_type():
    decision = step(state(), NOW, RecursionError("maximum recursion depth exceeded"))
    assert decision.event is not None
    assert "RecursionError: maximum recursion depth exceeded" in decision.event["message"]


def test_past_the_deadline_a_running_request_times_out_with_its_last_status():
    decision = step(state(deadline=NOW + 60), NOW + 61, record("queued"))
    assert decision.event is not None
    assert decision.event["status"] == "timeout"
    assert "still queued at the deadline, 61 s after it was submitted" in decision.event["message"]


def test_gmis_created_at_sets_the_schedules_origin_but_never_in_the_future():
    created = datetime.fromtimestamp(NOW - 30, tz=timezone.utc)
    assert step(state(), NOW, record("queued", created_at=int(created.timestamp()))).state.submitted_at == (
        NOW - 30
    )
    ahead = int(NOW + 500)
    assert step(state(), NOW, record("queued", created_at=ahead)).state.submitted_at == NOW


def test_the_state_survives_a_round_trip_through_a_store_of_the_same_request():
    busy = KlingAPIError("x", status_code=503)
    advanced = step(step(state(), NOW, busy).state, NOW, busy).state
    assert advanced.failures == 2
    fresh = state(deadline=NOW + 9999)
    assert fresh.resumed(advanced.to_dict()) == advanced
    assert fresh.resumed({**advanced.to_dict(), "request_id": "other"}) == fresh
    assert fresh.resumed("garbage") == fresh


# --- one fault sequence, every way of waiting ---------------------------------------------

BUSY = Fault.error(503, "unavailable")
DENIED = Fault.error(401, "invalid api key")


def verdict_of(error: BaseException | None, request_id: str) -> tuple[str, str]:
    """(status, message) of how a task's wait ended, with the request id and figures blanked."""
    kind = {
        KlingRequestFailedError: "failed",
        AirflowSensorTimeout: "timeout",
        KlingWaitError: "error",
    }
    status = "success" if error is None else next(v for k, v in kind.items() if isinstance(error, k))
    return status, _normalise(str(error) if error else "", request_id)


def _normalise(message: str, request_id: str) -> str:
    if request_id:
        message = message.replace(request_id, "<id>")
    # The record's own timestamps differ per request: compare the words before it.
    message = message.split(" Record: ")[0]
    return re.sub(r"\d+ s after", "N s after", message)


def operator_wait(sim: Any, **limits: Any) -> tuple[str, str]:
    task = KlingI2VOperator(
        task_id="submit",
        first_frame="https://example.com/frame.png",
        wait_for_completion=True,
        deferrable=False,
        poll_interval=0.05,
        **limits,
    )
    try:
        task.execute({"ti": FakeTI()})
    except Exception as err:
        return verdict_of(err, task._request.request_id if task._request else "")
    return verdict_of(None, "")


def sensor_poke_mode(sim: Any, **limits: Any) -> tuple[str, str]:
    request_id = submit(sim)
    task = KlingStatusSensor(
        task_id="wait", request_id=request_id, poke_interval=0.05, deferrable=False, **limits
    )
    try:
        task.execute({"ti": FakeTI()})
    except Exception as err:
        return verdict_of(err, request_id)
    return verdict_of(None, request_id)


def sensor_reschedule_mode(sim: Any, **limits: Any) -> tuple[str, str]:
    """Each poke a new sensor, as each reschedule is a new process; the state store carries the wait."""
    request_id = submit(sim)
    store = FakeStateStore()
    first = datetime.now(timezone.utc)
    try:
        while True:
            task = KlingStatusSensor(
                task_id="wait",
                request_id=request_id,
                poke_interval=0.05,
                deferrable=False,
                mode="reschedule",
                **limits,
            )
            if task.poke({"ti": RescheduledTI(first), "task_state_store": store}):
                return verdict_of(None, request_id)
            assert WAIT_STATE_KEY in store.data
            time.sleep(0.05)
    except Exception as err:
        return verdict_of(err, request_id)


def trigger_wait(sim: Any, timeout: float = 60, max_poll_failures: int = 10) -> tuple[str, str]:
    request_id = submit(sim)
    trigger = KlingStatusTrigger(
        request_id=request_id,
        end_time=time.time() + timeout,
        poll_interval=0.05,
        max_poll_failures=max_poll_failures,
    )
    import asyncio

    async def run() -> list[dict[str, Any]]:
        return [e.payload async for e in trigger.run()]

    (event,) = asyncio.run(run())
    return event["status"], _normalise(event["message"] if event["status"] != "success" else "", request_id)


DRIVERS = [operator_wait, sensor_poke_mode, sensor_reschedule_mode, trigger_wait]

SCENARIOS = {
    # A run of outages the wait outlives; the hooks' own retries are shortened by retry_sleeps.
    "outages then success": ([BUSY] * 4, {}, "success", ""),
    "bad key": (
        [DENIED],
        {},
        "error",
        "Polling Kling request <id> failed: GMI answered HTTP 401 to get <id>: invalid api key "
        "(check the API key in the connection's Password field and the key's permissions)",
    ),
    "failure budget": (
        [BUSY] * 200,
        {"max_poll_failures": 2},
        "error",
        "Polling Kling request <id> failed 2 times in a row: GMI answered HTTP 503 to get <id>: "
        "unavailable (a server-side problem at GMI)",
    ),
}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_way_of_waiting_reaches_the_same_verdict(
    kling_simulator, kling_connection_env, retry_sleeps, scenario
):
    faults, limits, status, message = SCENARIOS[scenario]
    for driver in DRIVERS:
        kling_simulator.clear_faults()
        kling_simulator.script("GET /requests/{id}", faults)
        assert driver(kling_simulator, **limits) == (status, message), driver.__name__


def test_every_way_of_waiting_times_out_with_the_same_words(kling_simulator, kling_connection_env):
    kling_simulator.configure(queued_seconds=3600)
    verdicts = {driver.__name__: driver(kling_simulator, timeout=0.3) for driver in DRIVERS}
    expected = (
        "timeout",
        "Kling request <id> was still queued at the deadline, N s after it was submitted; it may keep "
        "running (and billing) at GMI. A request stuck in 'queued' usually means the model is not serving.",
    )
    assert verdicts == dict.fromkeys(verdicts, expected)


def test_every_way_of_waiting_carries_gmis_failure_text(kling_simulator, kling_connection_env):
    verdicts = {}
    for driver in DRIVERS:
        kling_simulator.fail_next("content policy")
        verdicts[driver.__name__] = driver(kling_simulator)
    statuses = {status for status, _ in verdicts.values()}
    assert statuses == {"failed"}
    assert all("content policy" in message for _, message in verdicts.values()), verdicts
    assert len(set(verdicts.values())) == 1, verdicts


def test_a_sensor_wait_saved_by_the_previous_version_resumes_with_the_tasks_own_schedule():
    fresh = state(max_failures=3)
    previous = {  # what the previous version kept between pokes: no schedule, no failure budget
        "request_id": "r1",
        "submitted_at": NOW - 50,
        "deadline": NOW + 100,
        "failures": 2,
        "last_status": "processing",
        "polled": True,
    }
    resumed = fresh.resumed(previous)
    assert resumed == WaitState(
        request_id="r1",
        submitted_at=NOW - 50,
        deadline=NOW + 100,
        schedule=fresh.schedule,
        max_failures=3,
        failures=2,
        last_status="processing",
        polled=True,
    )
    # A third failure in a row is the last one the task allows.
    last = step(resumed, NOW, KlingAPIError("busy", status_code=503)).event
    assert last is not None
    assert "failed 3 times in a row" in last["message"]

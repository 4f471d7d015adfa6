"""KlingStatusTrigger: one event per run, for every way a request can end."""

from __future__ import annotations

import importlib
import json
import time
from typing import Any

import pytest

from airflow_provider_kling.api import KlingValidationError, PollSchedule
from airflow_provider_kling.api.waiting import WaitState
from airflow_provider_kling.triggers.kling import KlingStatusTrigger
from tests.helpers import submit


async def run(trigger: KlingStatusTrigger) -> list[dict[str, Any]]:
    return [event.payload async for event in trigger.run()]


def trigger_for(request_id: str, **kwargs: Any) -> KlingStatusTrigger:
    kwargs.setdefault("end_time", time.time() + 60)
    kwargs.setdefault("poll_interval", 0.05)
    return KlingStatusTrigger(request_id=request_id, **kwargs)


def test_serialize_round_trip_gives_an_equal_trigger_without_secrets(kling_connection_env):
    trigger = trigger_for("r1", kling_conn_id="kling_default", end_time=1234.5)
    path, kwargs = trigger.serialize()
    module, _, name = path.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    assert cls is KlingStatusTrigger
    assert json.loads(json.dumps(kwargs)) == kwargs  # JSON primitives only
    assert cls(**kwargs).serialize() == (path, kwargs)
    assert kling_connection_env["password"] not in json.dumps(kwargs)


async def test_success_yields_one_event_with_media(kling_simulator, kling_connection_env):
    request_id = submit(kling_simulator)
    events = await run(trigger_for(request_id))
    assert len(events) == 1
    assert events[0]["status"] == "success"
    assert events[0]["request_id"] == request_id
    assert events[0]["media_urls"][0].endswith(".mp4")


@pytest.mark.parametrize(
    ("marker", "status", "text"),
    [
        ("SIMULATE_FAILURE face detected", "failed", "face detected"),
        ("SIMULATE_CANCEL", "cancelled", "cancelled"),
    ],
)
async def test_failure_and_cancel_are_never_success(
    kling_simulator, kling_connection_env, marker, status, text
):
    events = await run(trigger_for(submit(kling_simulator, prompt=marker)))
    assert [e["status"] for e in events] == [status]
    assert text in events[0]["message"]


async def test_stuck_request_times_out_at_the_wall_clock_deadline(kling_simulator, kling_connection_env):
    request_id = submit(kling_simulator, prompt="SIMULATE_STUCK")
    started = time.time()
    events = await run(trigger_for(request_id, end_time=started + 0.5))
    assert [e["status"] for e in events] == ["timeout"]
    assert "queued" in events[0]["message"]
    assert time.time() - started < 10


async def test_deadline_already_past_after_a_restart_still_checks_once(kling_simulator, kling_connection_env):
    request_id = submit(kling_simulator, prompt="SIMULATE_STUCK")
    events = await run(trigger_for(request_id, end_time=time.time() - 1))
    assert [e["status"] for e in events] == ["timeout"]
    assert kling_simulator.count("GET /requests/{id}") == 1


async def test_wrong_key_is_an_error_event_without_the_key(kling_simulator, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_KLING_DEFAULT",
        json.dumps({"conn_type": "kling", "host": kling_simulator.base_url, "password": "wrong-key-123"}),
    )
    events = await run(trigger_for("whatever"))
    assert [e["status"] for e in events] == ["error"]
    assert "401" in events[0]["message"]
    assert "wrong-key-123" not in events[0]["message"]


async def test_unknown_request_is_an_error_event(kling_simulator, kling_connection_env):
    events = await run(trigger_for("no-such-request"))
    assert [e["status"] for e in events] == ["error"]
    assert "404" in events[0]["message"]


async def test_connection_without_key_is_an_error_event(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_KLING_DEFAULT", json.dumps({"conn_type": "kling", "host": "http://127.0.0.1:9"})
    )
    events = await run(trigger_for("r1"))
    assert [e["status"] for e in events] == ["error"]
    assert "API key is missing" in events[0]["message"]


async def test_unreachable_server_gives_up_after_max_poll_failures(monkeypatch, retry_sleeps):
    monkeypatch.setenv(
        "AIRFLOW_CONN_KLING_DEFAULT",
        json.dumps({"conn_type": "kling", "host": "http://127.0.0.1:9", "password": "k"}),
    )
    events = await run(trigger_for("r1", max_poll_failures=2))
    assert [e["status"] for e in events] == ["error"]
    assert "2 times in a row" in events[0]["message"]


def test_a_new_trigger_from_serialize_resumes_the_same_request(kling_simulator, kling_connection_env):
    import asyncio

    request_id = submit(kling_simulator)
    _, kwargs = trigger_for(request_id, end_time=time.time() + 60).serialize()
    events = asyncio.run(run(KlingStatusTrigger(**kwargs)))
    assert events[0]["status"] == "success"
    assert kling_simulator.count("POST /requests") == 1


# --- the wait as one value ------------------------------------------------------------------

CLASSPATH = "airflow_provider_kling.triggers.kling.KlingStatusTrigger"


def stored(classpath: str, kwargs: dict[str, Any]) -> KlingStatusTrigger:
    """A trigger as a triggerer rebuilds it from Airflow's own row (serialized, stored, read back)."""
    from airflow.models.trigger import Trigger

    row = Trigger(classpath=classpath, kwargs=kwargs)
    module, _, name = row.classpath.rpartition(".")
    trigger = getattr(importlib.import_module(module), name)(**row.kwargs)
    assert isinstance(trigger, KlingStatusTrigger)
    return trigger


def test_the_trigger_stores_the_wait_as_one_value_and_resumes_where_it_stood():
    mid_wait = WaitState(
        request_id="r1",
        submitted_at=1000.0,
        deadline=4600.0,
        schedule=PollSchedule.fixed(7),
        max_failures=4,
        failures=2,
        last_status="processing",
        polled=True,
    )
    trigger = KlingStatusTrigger(state=mid_wait, kling_conn_id="kling_prod", cancel_on_kill=True)
    classpath, kwargs = trigger.serialize()
    assert (classpath, sorted(kwargs)) == (CLASSPATH, ["cancel_on_kill", "kling_conn_id", "state"])
    rebuilt = stored(classpath, kwargs)
    assert (rebuilt.state, rebuilt.kling_conn_id, rebuilt.cancel_on_kill) == (mid_wait, "kling_prod", True)


async def test_a_trigger_serialized_by_the_previous_version_resumes_to_completion(
    kling_simulator, kling_connection_env
):
    request_id = submit(kling_simulator)
    previous = {  # what 0.x wrote to the trigger table: seven arguments, no state
        "request_id": request_id,
        "end_time": time.time() + 60,
        "kling_conn_id": "kling_default",
        "poll_interval": 0.05,
        "max_poll_failures": 10,
        "cancel_on_kill": False,
        "submitted_at": time.time(),
    }
    trigger = stored(CLASSPATH, previous)
    events = await run(trigger)
    assert [(e["status"], e["request_id"]) for e in events] == [("success", request_id)]
    assert events[0]["media_urls"][0].endswith(".mp4")
    # Deferred again, it writes the one value.
    assert sorted(trigger.serialize()[1]) == ["cancel_on_kill", "kling_conn_id", "state"]


def test_the_state_and_the_wait_arguments_are_not_given_together():
    state = WaitState(request_id="r1", submitted_at=1000.0, deadline=2000.0)
    with pytest.raises(KlingValidationError, match=r"Invalid KlingStatusTrigger arguments: .*end_time"):
        KlingStatusTrigger(state=state, end_time=3000.0)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"deadline": "soon"}, "deadline"),
        ({"request_id": ""}, "request_id"),
        ({"schedule": {"interval": "fast"}}, "poll schedule interval"),
        ({"max_failures": -1}, "max_poll_failures"),
    ],
)
def test_an_unreadable_state_names_its_field(change, field):
    good = WaitState(request_id="r1", submitted_at=1000.0, deadline=2000.0).to_dict()
    with pytest.raises(KlingValidationError, match=f"Invalid {field}: .* Allowed: "):
        KlingStatusTrigger(state={**good, **change})

"""
Faults that must never fail a task or bill twice, driven through the real operator,
sensor and trigger against the simulator's fault script.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from airflow_provider_kling.api import KlingAPIError
from airflow_provider_kling.exceptions import KlingRequestFailedError
from airflow_provider_kling.sensors.kling import KlingStatusSensor
from airflow_provider_kling.testing import Fault
from airflow_provider_kling.triggers.kling import KlingStatusTrigger
from tests.helpers import FakeStateStore, operator, submit, wait_for_status
from tests.helpers import task_context as a_try

# --- Airflow task retries never submit twice ------------------------------------------


def test_a_retry_of_a_running_request_waits_for_it_instead_of_submitting(
    kling_simulator, kling_connection_env
):
    store = FakeStateStore()
    first = operator().execute(a_try(store))
    assert store.request_id() == first
    second = operator().execute(a_try(store))  # the worker died; Airflow retries the task
    assert second == first
    assert kling_simulator.count("POST /requests") == 1


def test_a_retry_after_success_returns_the_result_without_submitting(kling_simulator, kling_connection_env):
    store = FakeStateStore()
    request_id = operator().execute(a_try(store))
    wait_for_status(kling_simulator, request_id, "success")
    result = operator(wait_for_completion=True).execute(a_try(store))
    assert result["request_id"] == request_id
    assert result["media_urls"]
    assert kling_simulator.count("POST /requests") == 1


def test_a_retry_of_a_waiting_operator_reconnects_to_the_same_request(kling_simulator, kling_connection_env):
    store = FakeStateStore()
    task = operator(wait_for_completion=True, timeout=0.2, prompt="SIMULATE_STUCK")
    with pytest.raises(Exception, match="still queued"):
        task.execute(a_try(store))
    with pytest.raises(Exception, match="still queued"):
        operator(wait_for_completion=True, timeout=0.2, prompt="SIMULATE_STUCK").execute(a_try(store))
    assert kling_simulator.count("POST /requests") == 1


def test_a_retry_after_failure_submits_anew(kling_simulator, kling_connection_env):
    store = FakeStateStore()
    failed = operator(prompt="SIMULATE_FAILURE boom").execute(a_try(store))
    wait_for_status(kling_simulator, failed, "failed")
    second = operator().execute(a_try(store))
    assert second != failed
    assert store.request_id() == second
    assert kling_simulator.count("POST /requests") == 2


def test_reuse_can_be_turned_off(kling_simulator, kling_connection_env):
    store = FakeStateStore()
    operator().execute(a_try(store))
    operator(durable=False).execute(a_try(store))
    assert kling_simulator.count("POST /requests") == 2


def test_the_old_name_of_durable_still_works_and_warns(kling_simulator, kling_connection_env):
    store = FakeStateStore()
    operator().execute(a_try(store))
    with pytest.warns(DeprecationWarning, match="use durable"):
        task = operator(reuse_previous_request=False)
    task.execute(a_try(store))
    assert kling_simulator.count("POST /requests") == 2


def test_without_a_state_store_each_try_submits(kling_simulator, kling_connection_env):
    """Airflow < 3.3 has no task state store: documented as unprotected."""
    operator().execute(a_try())
    operator().execute(a_try())
    assert kling_simulator.count("POST /requests") == 2


def test_sensor_retries_never_submit(kling_simulator, kling_connection_env):
    request_id = submit(kling_simulator)
    for _ in range(3):
        KlingStatusSensor(task_id="wait", request_id=request_id, poke_interval=0.05).poke({})
    assert kling_simulator.count("POST /requests") == 1


# --- Submit faults ---------------------------------------------------------------------


def test_submit_survives_rate_limits_and_capacity_outages(
    kling_simulator, kling_connection_env, retry_sleeps
):
    kling_simulator.script(
        "POST /requests",
        [Fault.rate_limited(retry_after_ms=1500), Fault.capacity_exhausted(), Fault.rate_limited()],
    )
    request_id = operator().execute(a_try())
    assert len(kling_simulator.requests) == 1
    assert kling_simulator.requests[0].request_id == request_id
    assert retry_sleeps[0] >= 1.5  # GMI's retry_after_ms is honoured
    assert kling_simulator.count("POST /requests") == 4


def test_a_backend_error_that_created_nothing_is_sent_once_more(
    kling_simulator, kling_connection_env, retry_sleeps, no_settle
):
    kling_simulator.script("POST /requests", [Fault.backend_error()])
    request_id = operator().execute(a_try())
    # GMI lists no request created since the 500, so the one resend cannot pay twice.
    assert kling_simulator.count("POST /requests") == 2
    assert [r.request_id for r in kling_simulator.requests] == [request_id]


@pytest.mark.parametrize("status", [500, 502, 504])
def test_a_5xx_after_gmi_accepted_adopts_the_request(
    kling_simulator, kling_connection_env, retry_sleeps, no_settle, status
):
    kling_simulator.script("POST /requests", [Fault.error(status, "gateway", after_processing=True)])
    request_id = operator().execute(a_try())
    assert kling_simulator.count("POST /requests") == 1
    assert [r.request_id for r in kling_simulator.requests] == [request_id]


def test_a_lost_answer_adopts_the_request_gmi_created(
    kling_simulator, kling_connection_env, retry_sleeps, no_settle
):
    kling_simulator.script("POST /requests", [Fault.connection_reset(after_processing=True)])
    store = FakeStateStore()
    request_id = operator().execute(a_try(store))
    assert kling_simulator.count("POST /requests") == 1
    assert [r.request_id for r in kling_simulator.requests] == [request_id]
    assert store.request_id() == request_id


def test_a_submit_timeout_adopts_the_request_gmi_created(
    kling_simulator, monkeypatch, retry_sleeps, no_settle
):
    monkeypatch.setenv(
        "AIRFLOW_CONN_KLING_DEFAULT",
        json.dumps(
            {
                "conn_type": "kling",
                "host": kling_simulator.base_url,
                "password": kling_simulator.api_key,
                "extra": {"timeout": 0.5},
            }
        ),
    )
    kling_simulator.script("POST /requests", [Fault.slow(3, after_processing=True)])
    request_id = operator().execute(a_try())
    assert kling_simulator.count("POST /requests") == 1
    assert [r.request_id for r in kling_simulator.requests] == [request_id]


def test_a_refused_connection_is_retried_because_nothing_was_sent(monkeypatch, retry_sleeps):
    monkeypatch.setenv(
        "AIRFLOW_CONN_KLING_DEFAULT",
        json.dumps({"conn_type": "kling", "host": "http://127.0.0.1:9", "password": "k"}),
    )
    with pytest.raises(KlingAPIError, match=r"could not connect|connection failed"):
        operator().execute(a_try())
    assert len(retry_sleeps) == 5  # the default retry_limit


def test_a_submit_answer_without_an_id_is_reconciled_not_resent(
    kling_simulator, kling_connection_env, retry_sleeps, no_settle
):
    kling_simulator.script(
        "POST /requests", [Fault(status=200, body={"status": "queued"}, after_processing=True)]
    )
    request_id = operator().execute(a_try())
    assert kling_simulator.count("POST /requests") == 1
    assert [r.request_id for r in kling_simulator.requests] == [request_id]


def test_a_terminal_submit_answer_is_honoured(kling_simulator, kling_connection_env):
    kling_simulator.configure(instant_models=["kling-3.0-turbo-i2v"])
    result = operator(wait_for_completion=True).execute(a_try())
    assert result["status"] == "success"
    assert kling_simulator.count("GET /requests/{id}") == 0


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


# --- Kill ------------------------------------------------------------------------------------


def test_on_kill_says_the_request_keeps_billing(kling_simulator, kling_connection_env, capsys):
    task = operator()
    request_id = task.execute(a_try())
    task.on_kill()
    assert f"Kling request {request_id} keeps running at GMI and is billed" in "".join(capsys.readouterr())
    assert kling_simulator.count("DELETE /requests/{id}") == 0


def test_cancel_on_kill_cancels_the_request(kling_simulator, kling_connection_env):
    task = operator(cancel_on_kill=True)
    request_id = task.execute(a_try())
    task.on_kill()
    assert kling_simulator.record(request_id)["status"] == "cancelled"


def test_a_cancel_gmi_refuses_is_a_warning_in_the_log_and_the_request_runs_on(
    kling_simulator, kling_connection_env, retry_sleeps, caplog, capsys
):
    task = operator(cancel_on_kill=True)
    request_id = task.execute(a_try())
    kling_simulator.script("DELETE /requests/{id}", [Fault.error(405, "method not allowed")])
    task.on_kill()  # a task being killed must not fail on its cleanup
    log = caplog.text + "".join(capsys.readouterr())
    assert f"Could not cancel Kling request {request_id} (GMI documents no cancel call)" in log
    assert "method not allowed" in log
    assert kling_simulator.count("DELETE /requests/{id}") == 1
    assert kling_simulator.record(request_id)["status"] != "cancelled"


async def test_trigger_on_kill_cancels_when_asked(kling_simulator, kling_connection_env):
    request_id = submit(kling_simulator)
    await KlingStatusTrigger(request_id=request_id, end_time=time.time() + 60, cancel_on_kill=True).on_kill()
    assert kling_simulator.record(request_id)["status"] == "cancelled"


async def test_trigger_on_kill_only_warns_by_default(kling_simulator, kling_connection_env):
    request_id = submit(kling_simulator)
    await KlingStatusTrigger(request_id=request_id, end_time=time.time() + 60).on_kill()
    assert kling_simulator.record(request_id)["status"] != "cancelled"


def _rerun_in_triggerer(
    monkeypatch: pytest.MonkeyPatch, request_id: str, answer: Any
) -> tuple[KlingStatusTrigger, list[dict[str, Any]]]:
    """The trigger as a triggerer runs it: with its task instance, whose state it can ask for."""
    from types import SimpleNamespace

    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    asked: list[dict[str, Any]] = []

    def get_task_states(**query: Any) -> dict[str, Any]:
        asked.append(query)
        if isinstance(answer, Exception):
            raise answer
        return {"run_1": {"render_3": answer}}

    monkeypatch.setattr(RuntimeTaskInstance, "get_task_states", staticmethod(get_task_states))
    trigger = KlingStatusTrigger(request_id=request_id, end_time=time.time() + 60, cancel_on_kill=True)
    trigger.task_instance = SimpleNamespace(dag_id="d", task_id="render", run_id="run_1", map_index=3)
    return trigger, asked


async def test_a_reassigned_trigger_never_cancels_the_request(
    kling_simulator, kling_connection_env, monkeypatch, caplog, capsys
):
    # Airflow 3.3.2 calls on_kill on the old triggerer when a lapsed heartbeat hands its
    # triggers to another one (apache/airflow#73454); the task instance is still deferred.
    request_id = submit(kling_simulator)
    trigger, asked = _rerun_in_triggerer(monkeypatch, request_id, "deferred")
    await trigger.on_kill()
    assert kling_simulator.count("DELETE /requests/{id}") == 0
    assert kling_simulator.record(request_id)["status"] != "cancelled"
    assert asked == [{"dag_id": "d", "task_ids": ["render"], "run_ids": ["run_1"], "map_index": 3}]
    assert "another triggerer waits for it" in caplog.text + "".join(capsys.readouterr())


@pytest.mark.parametrize("state", ["failed", "success", None, "up_for_retry"])
async def test_a_user_kill_cancels_once_the_task_left_the_deferred_state(
    kling_simulator, kling_connection_env, monkeypatch, state
):
    request_id = submit(kling_simulator)
    await _rerun_in_triggerer(monkeypatch, request_id, state)[0].on_kill()
    assert kling_simulator.record(request_id)["status"] == "cancelled"


async def test_an_unknown_task_state_cancels_nothing(kling_simulator, kling_connection_env, monkeypatch):
    request_id = submit(kling_simulator)
    await _rerun_in_triggerer(monkeypatch, request_id, RuntimeError("supervisor gone"))[0].on_kill()
    assert kling_simulator.count("DELETE /requests/{id}") == 0


def test_failure_text_reaches_the_exception(kling_simulator, kling_connection_env):
    with pytest.raises(KlingRequestFailedError, match="content policy"):
        operator(prompt="SIMULATE_FAILURE content policy", wait_for_completion=True).execute(a_try())

"""
A video is paid for once. Every submit ends accepted, surely refused, or unknown; an unknown
one is reconciled with GMI's records before anything is sent again (the rules of that are in
test_reconciliation.py), and a retried or cleared task reuses its request instead of
submitting anew. Driven through the real operator against the simulator (and a raw socket
server for answers the simulator cannot give).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from airflow_provider_kling.api import KlingAPIError, KlingValidationError
from airflow_provider_kling.api.fingerprint import echo_fingerprint, fingerprint
from airflow_provider_kling.exceptions import (
    AirflowFailException,
    KlingSubmitOutcomeUnknown,
    KlingSubmitRejected,
)
from airflow_provider_kling.hooks.kling import KlingHook
from airflow_provider_kling.sensors.kling import KlingStatusSensor
from airflow_provider_kling.tasks.submit_once import STATE_KEY, StoredSubmit
from airflow_provider_kling.testing import Fault
from tests.helpers import FakeStateStore, operator, submit, wait_for_status
from tests.helpers import task_context as a_try
from tests.unit.hostile import answer, raw_server

PAYLOAD = {"first_frame": "https://example.com/frame.png", "resolution": "720p", "duration": "5"}
MODEL = "kling-3.0-turbo-i2v"


def created(sim: Any) -> list[str]:
    return [r.request_id for r in sim.requests]


# --- unknown outcomes: adopt, resend only when GMI shows nothing, else stop -------------------

UNREADABLE_2XX = [
    pytest.param(Fault(status=200, text="", after_processing=True), id="empty"),
    pytest.param(Fault(status=200, text="<html><body>OK</body></html>", after_processing=True), id="html"),
    pytest.param(Fault(status=201, text="[" * 5000 + "]" * 5000, after_processing=True), id="too-deep"),
    pytest.param(Fault(status=200, body=["not", "an", "object"], after_processing=True), id="not-an-object"),
    pytest.param(
        Fault(status=200, body={"request_id": "x" * 300, "status": "queued"}, after_processing=True),
        id="bad-id",
    ),
]


@pytest.mark.parametrize("fault", UNREADABLE_2XX)
def test_an_unreadable_2xx_adopts_the_request_instead_of_paying_again(
    kling_simulator, kling_connection_env, retry_sleeps, fault
):
    kling_simulator.script("POST /requests", [fault])
    store = FakeStateStore()
    request_id = operator().execute(a_try(store))
    assert created(kling_simulator) == [request_id]
    assert kling_simulator.count("POST /requests") == 1
    assert store.request_id() == request_id


def test_a_503_naming_a_request_it_created_adopts_that_request(
    kling_simulator, kling_connection_env, retry_sleeps
):
    kling_simulator.script("POST /requests", [Fault.capacity_exhausted(created=True)])
    request_id = operator().execute(a_try())
    assert created(kling_simulator) == [request_id]
    assert kling_simulator.count("POST /requests") == 1
    assert kling_simulator.count("GET /requests/{id}") == 1  # looked up, not resent


def test_a_503_naming_an_unknown_request_is_resent_after_gmi_shows_nothing(
    kling_simulator, kling_connection_env, retry_sleeps
):
    kling_simulator.script("POST /requests", [Fault.capacity_exhausted()])
    request_id = operator().execute(a_try())
    assert created(kling_simulator) == [request_id]
    assert kling_simulator.count("POST /requests") == 2
    assert kling_simulator.count("GET /requests") >= 1  # GMI's list was read before the resend


def test_another_tasks_request_in_the_window_is_never_adopted(
    kling_simulator, kling_connection_env, retry_sleeps
):
    other = submit(kling_simulator, prompt="another task's video")
    kling_simulator.script("POST /requests", [Fault.connection_reset(after_processing=True)])
    mine = operator(prompt="this task's video").execute(a_try())
    assert mine != other
    assert kling_simulator.count("POST /requests") == 2  # the other task's, and this one's once


def test_a_lost_answer_that_created_nothing_is_resent_once_even_with_others_listed(
    kling_simulator, kling_connection_env, retry_sleeps
):
    other = submit(kling_simulator, prompt="another task's video")
    kling_simulator.script("POST /requests", [Fault.connection_reset()])
    mine = operator(prompt="this task's video").execute(a_try())
    assert created(kling_simulator) == [other, mine]


def test_without_a_payload_echo_an_unknown_outcome_stops_and_names_the_candidates(
    kling_simulator, kling_connection_env, retry_sleeps
):
    kling_simulator.configure(payload_echo="empty")
    kling_simulator.script("POST /requests", [Fault.connection_reset(after_processing=True)])
    with pytest.raises(KlingSubmitOutcomeUnknown) as info:
        operator().execute(a_try())
    (candidate,) = created(kling_simulator)
    assert info.value.candidates == (candidate,)
    assert candidate in str(info.value)
    assert isinstance(info.value, AirflowFailException)  # no task retry pays again
    assert kling_simulator.count("POST /requests") == 1


def test_a_failed_listing_stops_instead_of_resending(kling_simulator, kling_connection_env, retry_sleeps):
    kling_simulator.script("POST /requests", [Fault.connection_reset()])
    kling_simulator.script("GET /requests", [Fault.error(401, "invalid api key")])
    with pytest.raises(KlingSubmitOutcomeUnknown, match="Listing GMI's requests to check failed"):
        operator().execute(a_try())
    assert kling_simulator.count("POST /requests") == 1


def test_every_lost_answer_with_nothing_listed_ends_after_three_sends(
    kling_simulator, kling_connection_env, retry_sleeps
):
    kling_simulator.script("POST /requests", [Fault.connection_reset()] * 3)
    with pytest.raises(Exception, match="sent 3 times"):
        operator().execute(a_try())
    assert created(kling_simulator) == []


@pytest.mark.parametrize(
    "body",
    [b"\xff\xfe\xfa not utf-8", b"<!doctype html><title>Bad gateway</title>"],
    ids=["undecodable", "html"],
)
def test_the_hook_calls_an_unreadable_2xx_unknown_never_refused(kling_conn, retry_sleeps, body):
    with raw_server(answer("200 OK", body, {"Content-Type": "application/json"})) as (url, seen):
        kling_conn(host=url)
        with pytest.raises(KlingSubmitOutcomeUnknown):
            KlingHook().submit(MODEL, PAYLOAD)
    assert len(seen) == 1


# --- permanent refusals fail at once; bad URLs never reach GMI ---------------------------------


@pytest.mark.parametrize("status", [400, 401, 402, 403, 404])
def test_a_permanent_refusal_fails_the_task_without_retries(
    kling_simulator, kling_connection_env, retry_sleeps, status
):
    kling_simulator.script("POST /requests", [Fault.error(status, "refused")])
    with pytest.raises(KlingSubmitRejected, match=f"HTTP {status}") as info:
        operator().execute(a_try())
    assert isinstance(info.value, AirflowFailException)
    assert kling_simulator.count("POST /requests") == 1
    assert retry_sleeps == []


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/my image.png",
        "https:///frame.png",
        "https://exa mple.com/a.png",
        "http://[::1/a.png",
    ],
)
def test_a_first_frame_url_that_is_not_a_url_is_refused_before_the_submit(
    kling_simulator, kling_connection_env, url
):
    with pytest.raises(KlingValidationError, match="Invalid first_frame"):
        operator(first_frame=url)
    assert kling_simulator.count("POST /requests") == 0


# --- reuse compares what was submitted --------------------------------------------------------


def test_a_cleared_task_with_a_changed_prompt_never_gets_the_earlier_video(
    kling_simulator, kling_connection_env
):
    store = FakeStateStore()
    first = operator(prompt="a slow pan", wait_for_completion=True).execute(a_try(store))
    second = operator(prompt="a fast zoom", wait_for_completion=True).execute(a_try(store))
    assert second["request_id"] != first["request_id"]
    assert kling_simulator.count("POST /requests") == 2


def test_a_cleared_task_with_the_same_inputs_reuses_its_video_by_default(
    kling_simulator, kling_connection_env
):
    store = FakeStateStore()
    first = operator(wait_for_completion=True).execute(a_try(store))
    assert StoredSubmit.parse(store.data[STATE_KEY]).completed
    again = operator(wait_for_completion=True).execute(a_try(store))
    assert again["request_id"] == first["request_id"]
    assert kling_simulator.count("POST /requests") == 1


def test_reuse_succeeded_false_pays_for_a_new_take_after_success_only(kling_simulator, kling_connection_env):
    store = FakeStateStore()
    first = operator(wait_for_completion=True, reuse_succeeded=False).execute(a_try(store))
    again = operator(wait_for_completion=True, reuse_succeeded=False).execute(a_try(store))
    assert again["request_id"] != first["request_id"]
    # A retry after a try that did not succeed still reuses, whatever reuse_succeeded says.
    store.data[STATE_KEY] = {**store.data[STATE_KEY], "completed": False}
    retried = operator(wait_for_completion=True, reuse_succeeded=False).execute(a_try(store))
    assert retried["request_id"] == again["request_id"]
    assert kling_simulator.count("POST /requests") == 2


def test_an_old_bare_id_entry_is_reused_only_when_the_echo_matches(kling_simulator, kling_connection_env):
    store = FakeStateStore()
    earlier = submit(kling_simulator, prompt="the old prompt")
    store.data[STATE_KEY] = earlier
    fresh = operator(prompt="a new prompt").execute(a_try(store))
    assert fresh != earlier
    store.data[STATE_KEY] = fresh
    assert operator(prompt="a new prompt").execute(a_try(store)) == fresh
    assert kling_simulator.count("POST /requests") == 2


# --- a worker that died mid-submit -----------------------------------------------------------


def test_a_retry_after_a_worker_died_mid_submit_adopts_what_it_created(kling_simulator, kling_connection_env):
    store = FakeStateStore()
    sent = {**PAYLOAD, "prompt": "steam rises"}
    store.data[STATE_KEY] = StoredSubmit(None, fingerprint(MODEL, sent), time.time() - 5).to_dict()
    # What the dead worker's submit created, with exactly the payload this task sends.
    import requests

    resp = requests.post(
        f"{kling_simulator.api_url}/requests",
        json={"model": MODEL, "payload": sent},
        headers={"Authorization": f"Bearer {kling_simulator.api_key}"},
        timeout=10,
    )
    orphan = resp.json()["request_id"]
    assert operator(prompt="steam rises").execute(a_try(store)) == orphan
    assert kling_simulator.count("POST /requests") == 1
    assert store.request_id() == orphan


def test_a_retry_after_a_worker_died_before_gmi_got_the_submit_submits(kling_simulator, kling_connection_env):
    store = FakeStateStore()
    sent = {**PAYLOAD, "prompt": "steam rises"}
    store.data[STATE_KEY] = StoredSubmit(None, fingerprint(MODEL, sent), time.time() - 5).to_dict()
    request_id = operator(prompt="steam rises").execute(a_try(store))
    assert created(kling_simulator) == [request_id]


# --- the fingerprint --------------------------------------------------------------------------


def test_the_fingerprint_ignores_key_order_and_sees_every_value():
    base = fingerprint(MODEL, PAYLOAD)
    assert fingerprint(MODEL, dict(reversed(list(PAYLOAD.items())))) == base
    assert fingerprint(MODEL, {**PAYLOAD, "duration": 5}) != base
    assert fingerprint("kling-3.0-turbo-t2v", PAYLOAD) != base
    big = "A" * 100_000
    assert fingerprint(MODEL, {**PAYLOAD, "first_frame": big}) != fingerprint(
        MODEL, {**PAYLOAD, "first_frame": big[:-1] + "B"}
    )


def test_the_echo_of_a_simulator_record_has_the_submitted_fingerprint(kling_simulator, kling_connection_env):
    request_id = operator(prompt="steam rises").execute(a_try())
    record = json.loads(json.dumps(kling_simulator.record(request_id)))
    sent = {**PAYLOAD, "prompt": "steam rises"}
    assert echo_fingerprint(MODEL, record) == fingerprint(MODEL, sent)
    assert echo_fingerprint(MODEL, {**record, "payload": {}}) is None
    wait_for_status(kling_simulator, request_id, "success")


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

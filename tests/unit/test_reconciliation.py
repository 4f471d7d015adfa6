"""
Reconciling a submit without an answer: adopt only a request GMI shows is this task's, send
again only when GMI shows none, else stop and name the candidates. Driven through the real
operators against the simulator, counting the requests it created.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_kling.api.fingerprint import compare_echo
from airflow_provider_kling.api.ownership import ClockReading, Window, judge
from airflow_provider_kling.api.records import KlingRequest
from airflow_provider_kling.exceptions import KlingSubmitOutcomeUnknown
from airflow_provider_kling.operators.submit import KlingSubmitOperator
from airflow_provider_kling.testing import Fault
from tests.helpers import IMAGE_URL as URL
from tests.helpers import operator, submit
from tests.helpers import task_context as a_try
from tests.unit.hostile import raw_server

MODEL = "kling-3.0-turbo-i2v"
PROMPT = "steam rises from a cup"
#: What ``operator(prompt=PROMPT)`` sends.
SENT = {"first_frame": URL, "resolution": "720p", "duration": "5", "prompt": PROMPT}
CAPACITY = "Upstream capacity temporarily exhausted; please retry later"
HTML = "<html><body><h1>503 Service Temporarily Unavailable</h1><hr><center>nginx</center></body></html>"


def created(sim: Any) -> list[str]:
    return [r.request_id for r in sim.requests]


@contextlib.contextmanager
def earlier(sim: Any, seconds: float) -> Iterator[None]:
    """Requests submitted inside the block are stamped ``seconds`` in the past."""
    real = sim.state.clock
    sim.state.clock = lambda: time.time() - seconds
    try:
        yield
    finally:
        sim.state.clock = real


# --- list entries that say less than a record ---------------------------------------------


@pytest.mark.parametrize("shape", ["no_created_at", "minimal", "empty_echo"])
def test_a_list_entry_that_leaves_it_open_is_looked_up_and_adopted(
    kling_simulator, kling_connection_env, retry_sleeps, no_settle, shape
):
    kling_simulator.script("POST /requests", [Fault.connection_reset(after_processing=True)])
    kling_simulator.script("GET /requests", [Fault.normalised(shape)])
    request_id = operator(prompt=PROMPT).execute(a_try())
    assert created(kling_simulator) == [request_id]
    assert kling_simulator.count("POST /requests") == 1
    assert kling_simulator.count("GET /requests/{id}") == 1  # GMI's own record of it decided


def test_a_request_gmi_never_dates_is_named_not_resent(
    kling_simulator, kling_connection_env, retry_sleeps, no_settle
):
    kling_simulator.script("POST /requests", [Fault.connection_reset(after_processing=True)])
    kling_simulator.script("GET /requests", [Fault.normalised("no_created_at")] * 2)
    kling_simulator.script("GET /requests/{id}", [Fault.normalised("no_created_at")] * 2)
    with pytest.raises(KlingSubmitOutcomeUnknown, match="GMI shows no creation time") as info:
        operator(prompt=PROMPT).execute(a_try())
    assert info.value.candidates == tuple(created(kling_simulator))
    assert len(info.value.candidates) == 1
    assert kling_simulator.count("POST /requests") == 1


def test_an_old_request_gmi_never_dates_keeps_a_lost_submit_from_being_resent(
    kling_simulator, kling_connection_env, retry_sleeps, no_settle
):
    # Nothing of this task's arrived, but without created_at GMI cannot show that the
    # identical request it lists is not this submit's: stop and name it.
    with earlier(kling_simulator, 3600):
        old = submit(kling_simulator, payload=SENT)
    kling_simulator.script("POST /requests", [Fault.connection_reset()])
    kling_simulator.script("GET /requests", [Fault.normalised("minimal")] * 2)
    kling_simulator.script("GET /requests/{id}", [Fault.normalised("minimal")] * 2)
    with pytest.raises(KlingSubmitOutcomeUnknown) as info:
        operator(prompt=PROMPT).execute(a_try())
    assert info.value.candidates == (old,)
    assert created(kling_simulator) == [old]


def test_an_echo_gmi_normalised_is_this_tasks_inputs(
    kling_simulator, kling_connection_env, retry_sleeps, no_settle
):
    # No resolution sent: GMI's echo fills in its default, says 5 for "5" and reorders keys.
    payload = {"first_frame": URL, "prompt": PROMPT, "duration": "5"}
    kling_simulator.script("POST /requests", [Fault.connection_reset(after_processing=True)])
    kling_simulator.script("GET /requests", [Fault.normalised("normalised_echo")] * 2)
    task = KlingSubmitOperator(task_id="submit", model=MODEL, payload=payload, deferrable=False)
    request_id = task.execute(a_try())
    assert created(kling_simulator) == [request_id]
    assert kling_simulator.count("POST /requests") == 1
    assert kling_simulator.count("GET /requests/{id}") == 0  # the listing itself showed it


def test_an_empty_echo_everywhere_stops_and_names_the_request(
    kling_simulator, kling_connection_env, retry_sleeps, no_settle
):
    kling_simulator.configure(payload_echo="empty")
    kling_simulator.script("POST /requests", [Fault.non_json(503, HTML, after_processing=True)])
    with pytest.raises(KlingSubmitOutcomeUnknown, match="payload echo cannot be compared") as info:
        operator(prompt=PROMPT).execute(a_try())
    assert info.value.candidates == tuple(created(kling_simulator))
    assert kling_simulator.count("POST /requests") == 1


# --- answers from a proxy -----------------------------------------------------------------


@pytest.mark.parametrize("status", [502, 503, 504])
def test_a_proxys_html_error_after_gmi_created_the_request_adopts_it(
    kling_simulator, kling_connection_env, retry_sleeps, no_settle, status
):
    kling_simulator.script("POST /requests", [Fault.non_json(status, HTML, after_processing=True)])
    request_id = operator(prompt=PROMPT).execute(a_try())
    assert created(kling_simulator) == [request_id]
    assert kling_simulator.count("POST /requests") == 1


def test_a_proxys_html_503_before_gmi_is_resent_once_gmi_shows_nothing(
    kling_simulator, kling_connection_env, retry_sleeps, no_settle
):
    kling_simulator.script("POST /requests", [Fault.non_json(503, HTML)])
    request_id = operator(prompt=PROMPT).execute(a_try())
    assert created(kling_simulator) == [request_id]
    assert kling_simulator.count("POST /requests") == 2
    assert kling_simulator.count("GET /requests") == 2  # listed twice before the resend


# --- requests that are not ours -----------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "prompt"),
    [(3600, "someone else's video"), (3600, PROMPT), (0, "someone else's video")],
    ids=["an-hour-old-other-prompt", "an-hour-old-same-inputs", "fresh-other-prompt"],
)
def test_a_503_naming_a_request_that_is_not_ours_is_never_adopted(
    kling_simulator, kling_connection_env, retry_sleeps, no_settle, age, prompt
):
    with earlier(kling_simulator, age):
        named = submit(kling_simulator, payload={**SENT, "prompt": prompt})
    kling_simulator.script(
        "POST /requests", [Fault(status=503, body={"error": CAPACITY, "request_id": named})]
    )
    mine = operator(prompt=PROMPT).execute(a_try())
    assert mine != named
    assert created(kling_simulator) == [named, mine]
    assert kling_simulator.count("POST /requests") == 3  # the other one's, and this task's twice


@pytest.mark.parametrize("ours_created", [False, True], ids=["ours-never-created", "ours-created"])
def test_an_identical_request_made_30_s_before_the_submit_is_never_adopted(
    kling_simulator, kling_connection_env, retry_sleeps, no_settle, ours_created
):
    with earlier(kling_simulator, 30):
        theirs = submit(kling_simulator, payload=SENT)
    kling_simulator.script("POST /requests", [Fault.connection_reset(after_processing=ours_created)])
    mine = operator(prompt=PROMPT).execute(a_try())
    assert mine != theirs
    assert created(kling_simulator) == [theirs, mine]  # this task's paid once either way


def test_an_identical_request_made_while_the_submit_was_in_flight_is_named_not_adopted(
    kling_simulator, kling_connection_env, retry_sleeps, no_settle
):
    # GMI creates this task's request, then the answer hangs for a second and is lost; meanwhile
    # someone else in the organisation submits the very same inputs.
    kling_simulator.script(
        "POST /requests", [Fault(status=None, delay=1.0, reset=True, after_processing=True)]
    )
    other = threading.Timer(0.3, submit, (kling_simulator,), {"payload": SENT})
    other.start()
    with pytest.raises(KlingSubmitOutcomeUnknown, match="several requests show this task's inputs") as info:
        operator(prompt=PROMPT).execute(a_try())
    other.join()
    assert sorted(info.value.candidates) == sorted(created(kling_simulator))
    assert len(info.value.candidates) == 2
    assert kling_simulator.count("POST /requests") == 2  # the other one's, and this task's once


# --- GMI's clock ----------------------------------------------------------------------------


def gmi_behind_or_ahead(skew: float, posts: list[str]) -> Any:
    """A GMI whose clock is ``skew`` seconds off ours, behind a proxy that loses the submit's answer.

    Its list holds this submit's request (created now, by GMI's clock) and someone else's
    identical one made 30 s earlier.
    """

    def script(conn: socket.socket, line: str) -> None:
        now = time.time() + skew
        date = email.utils.formatdate(now, usegmt=True)
        if line.startswith("POST"):
            posts.append(line)
            status, body, kind = "502 Bad Gateway", HTML.encode(), "text/html"
        else:
            records = [
                {
                    "request_id": "theirs",
                    "status": "queued",
                    "model": MODEL,
                    "payload": SENT,
                    "created_at": int(now - 30),
                },
                {
                    "request_id": "mine",
                    "status": "queued",
                    "model": MODEL,
                    "payload": SENT,
                    "created_at": int(now),
                },
            ]
            status, body, kind = (
                "200 OK",
                json.dumps({"requests": records, "total": 2}).encode(),
                "application/json",
            )
        head = f"HTTP/1.1 {status}\r\nDate: {date}\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
        conn.sendall(f"{head}Connection: close\r\n\r\n".encode() + body)

    return script


@pytest.mark.parametrize("skew", [-45.0, 45.0], ids=["gmi-45-s-behind", "gmi-45-s-ahead"])
def test_gmis_own_clock_places_the_request_whatever_the_skew(kling_conn, retry_sleeps, no_settle, skew):
    posts: list[str] = []
    with raw_server(gmi_behind_or_ahead(skew, posts)) as (url, _):
        kling_conn(host=url)
        assert operator(prompt=PROMPT).execute(a_try()) == "mine"
    assert len(posts) == 1


# --- the rules themselves --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("echo", "expected"),
    [
        ({"prompt": PROMPT.upper() + " ", "duration": 5, "first_frame": URL}, "same"),
        ({"prompt": PROMPT, "duration": "5.0", "first_frame": URL, "resolution": "720p"}, "same"),
        ({}, "unknown"),
        ({"prompt": PROMPT, "duration": "5", "first_frame": URL, "seed": 7}, "unknown"),
        ({"prompt": PROMPT, "first_frame": URL}, "same"),  # duration "5" is the default
        ({"prompt": PROMPT, "duration": "5"}, "unknown"),  # the image left out
        ({"prompt": PROMPT, "duration": True, "first_frame": URL}, "unknown"),
        ({"prompt": "another", "duration": "5", "first_frame": URL}, "other"),
        ({"prompt": PROMPT, "duration": 10, "first_frame": URL}, "other"),
    ],
)
def test_an_echo_is_compared_as_gmi_may_normalise_it(echo, expected):
    sent = {"first_frame": URL, "prompt": PROMPT, "duration": "5"}
    assert compare_echo(MODEL, sent, {"model": MODEL, "payload": echo}) == expected


def test_an_echo_with_a_differing_inline_image_is_unknown_not_other():
    sent = {"first_frame": "A" * 10_000, "prompt": PROMPT}
    assert (
        compare_echo(MODEL, sent, {"payload": {**sent, "first_frame": "https://gmi/stored.png"}}) == "unknown"
    )
    assert (
        compare_echo("kling-3.0-turbo-t2v", {"prompt": PROMPT}, {"model": MODEL, "payload": sent}) == "other"
    )


def record(created_at: float | None) -> KlingRequest:
    raw: dict[str, Any] = {"request_id": "r", "status": "queued", "model": MODEL, "payload": SENT}
    if created_at is not None:
        raw["created_at"] = int(created_at)
    return KlingRequest.from_record(raw)


def test_the_window_starts_at_the_first_sends_second_on_gmis_clock():
    first = 1_750_000_000.4
    clock = ClockReading(server=first + 100 + 3, sent=first + 2.9, received=first + 3.1)  # GMI 100 s ahead
    window = Window.since(first, clock)
    assert judge(record(first + 100), MODEL, SENT, window)[0] == "ours"
    assert judge(record(first + 100 - 3), MODEL, SENT, window)[0] == "maybe"  # too close to call
    assert judge(record(first + 100 - 30), MODEL, SENT, window)[0] == "not ours"
    assert judge(record(None), MODEL, SENT, window)[0] == "maybe"
    # No Date header: our clock decides adoption, and time rules nothing out.
    blind = Window.since(first, None)
    assert judge(record(first), MODEL, SENT, blind)[0] == "ours"
    assert judge(record(first - 3600), MODEL, SENT, blind)[0] == "maybe"
    assert judge(record(first - 3600), MODEL, {**SENT, "prompt": "other"}, blind)[0] == "not ours"


def test_a_reshape_fault_rewrites_only_the_normal_answer():
    with pytest.raises(ValueError, match="reshape must be one of"):
        Fault.normalised("sideways")
    with pytest.raises(ValueError, match="status=None"):
        Fault(status=503, reshape="minimal")
    fault = Fault.from_dict({"preset": "normalised", "reshape": "minimal"})
    assert Fault.from_dict(fault.to_dict()) == fault
    listed = {"requests": [{"request_id": "r", "status": "queued", "created_at": 1}], "total": 1}
    assert fault.reshaped(listed) == {"requests": [{"request_id": "r", "status": "queued"}], "total": 1}

"""KlingHook over a real requests.Session, with GMI played by the simulator over loopback.

Answers GMI gives are scripted on the simulator (``Fault``); a body cut off midway, which no
HTTP server sends on purpose, comes from the raw server in ``tests/unit/hostile.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat

import pytest
import requests

from airflow_provider_kling import __version__
from airflow_provider_kling.api import API_PREFIX, KlingAPIError, KlingRequest, KlingValidationError
from airflow_provider_kling.exceptions import (
    AirflowFailException,
    KlingConnectionNotFound,
    KlingSubmitOutcomeUnknown,
    KlingTransportError,
)
from airflow_provider_kling.hooks import kling as kling_hooks
from airflow_provider_kling.hooks.kling import KlingHook
from airflow_provider_kling.testing import Fault
from tests.helpers import (
    LOOKUP_SAYS_NOT_FOUND,
    MODEL,
    TEST_API_KEY,
    submit,
    unreachable_until,
    wait_for_status,
)
from tests.unit.hostile import raw_server, respond

VIDEO_URL = "https://media.test/out/sample_0.mp4"
QUEUED = {"request_id": "req-1", "model": MODEL, "status": "queued", "created_at": 1750442925}
PAYLOAD = {
    "first_frame": "https://example.com/a.jpg",
    "prompt": "a dragon",
    "resolution": "720p",
    "duration": "5",
}
#: The simulator's route key for reading one request.
REQUEST = "GET /requests/{id}"


def ok(body):
    """A scripted 200 with this JSON body."""
    return Fault(status=200, body=body)


def err(status, body=None):
    """A scripted error answer, with GMI's ``{"error": ...}`` body unless another is given."""
    return Fault(status=status, body=body or {"error": f"failure {status}"})


@pytest.fixture
def sim(kling_simulator, kling_conn, retry_sleeps):
    """The simulator, as the ``kling_default`` connection of organization org-7."""
    kling_conn(
        host=kling_simulator.base_url, password=kling_simulator.api_key, extra={"organization_id": "org-7"}
    )
    return kling_simulator


@pytest.fixture
def hook(sim):
    hook = KlingHook(retry_limit=5)
    yield hook
    hook.close()


@pytest.fixture
def quick_connects(monkeypatch):
    """A connect that gets no answer gives up after 0.2 s instead of 10."""
    monkeypatch.setattr(kling_hooks, "CONNECT_TIMEOUT", 0.2)


def to(sim, kling_conn, **extra):
    """Point ``kling_default`` at ``sim``, with these extra fields."""
    kling_conn(host=sim.base_url, password=sim.api_key, extra=extra or None)


# --------------------------------------------------------------------------------------
# Connection and headers
# --------------------------------------------------------------------------------------


def test_the_connection_comes_from_an_environment_variable_outside_a_task(kling_conn):
    kling_conn(host="gmi.test:8443", extra={"organization_id": "org-7", "timeout": 12})
    settings = KlingHook().settings
    assert settings.base_url == "https://gmi.test:8443"
    assert settings.api_key == TEST_API_KEY
    assert settings.organization_id == "org-7"
    assert settings.timeout == 12.0


def test_another_connection_id(kling_conn):
    kling_conn("my_kling", host="https://other.test")
    assert KlingHook("my_kling").settings.base_url == "https://other.test"


@LOOKUP_SAYS_NOT_FOUND
def test_a_missing_connection_names_kling_conn_id_and_how_to_add_it_and_is_not_retried(kling_conn):
    with pytest.raises(KlingConnectionNotFound) as caught:
        KlingHook("no_such_conn").settings  # noqa: B018
    message = str(caught.value)
    assert message.startswith("Invalid kling_conn_id: no connection 'no_such_conn' is defined.")
    assert "airflow connections add no_such_conn --conn-type kling" in message
    assert "AIRFLOW_CONN_NO_SUCH_CONN" in message
    # Airflow fails the task at once instead of retrying a lookup that cannot succeed.
    assert isinstance(caught.value, AirflowFailException)


def test_a_connection_without_a_key_fails_clearly(kling_conn):
    kling_conn(password=None)
    with pytest.raises(KlingValidationError, match="Password field"):
        KlingHook().settings  # noqa: B018


def test_every_call_sends_the_key_organization_and_user_agent(hook, sim):
    hook.list_models()  # answered: the simulator refuses any other key with a 401
    headers = sim.last_headers("GET /models")
    assert headers["authorization"] == "Bearer ***"  # the key itself, redacted by the simulator
    assert headers["x-organization-id"] == "org-7"
    assert headers["user-agent"].startswith(f"airflow-provider-kling/{__version__}")
    assert headers["accept"] == "application/json"


def test_no_organization_header_without_an_organization(kling_simulator, kling_conn):
    to(kling_simulator, kling_conn)
    KlingHook().list_models()
    assert "x-organization-id" not in kling_simulator.last_headers("GET /models")


def test_the_key_is_not_in_the_repr(hook):
    hook.settings  # noqa: B018 - load the connection first
    assert TEST_API_KEY not in repr(hook)
    assert repr(hook) == "KlingHook(kling_conn_id='kling_default')"


def test_one_session_serves_every_call(hook, sim, monkeypatch):
    created = []

    class CountingSession(requests.Session):
        def __init__(self) -> None:
            super().__init__()
            created.append(self)

    request_id = submit(sim)
    monkeypatch.setattr(requests, "Session", CountingSession)
    hook.list_models()
    session = hook.session
    hook.get_request(request_id)
    hook.get_request(request_id)
    assert hook.session is session
    assert created == [session]
    hook.close()
    assert "session" not in hook.__dict__


def test_a_negative_retry_limit_is_refused():
    with pytest.raises(ValueError, match="retry_limit"):
        KlingHook(retry_limit=-1)


# --------------------------------------------------------------------------------------
# Calls
# --------------------------------------------------------------------------------------


def test_submit_posts_model_and_payload_and_returns_the_record(hook, sim):
    req = hook.submit(MODEL, PAYLOAD)
    assert isinstance(req, KlingRequest)
    [sent] = sim.requests
    assert (req.request_id, req.status, req.verdict) == (sent.request_id, "queued", "running")
    assert sim.count() == 1
    assert (sent.model, sent.payload) == (MODEL, PAYLOAD)
    # The body is streamed (api/body.py) as compact JSON, its length announced up front.
    body = json.dumps({"model": MODEL, "payload": PAYLOAD}, separators=(",", ":"))
    assert sent.headers["content-length"] == str(len(body))
    assert sent.headers["content-type"] == "application/json"


def test_a_terminal_submit_answer_is_returned_as_finished(hook, sim):
    done = {**QUEUED, "status": "success", "outcome": {"video_url": VIDEO_URL}}
    sim.script("POST /requests", [Fault(status=200, body=done, after_processing=True, names_request=True)])
    req = hook.submit(MODEL, PAYLOAD)
    assert req.is_terminal
    assert req.media_urls == [VIDEO_URL]


def test_submit_request_returns_the_id(hook, sim):
    assert hook.submit(MODEL, PAYLOAD).request_id == sim.requests[0].request_id


def test_submit_request_is_deprecated_and_still_returns_the_id(hook, sim):
    with pytest.warns(DeprecationWarning, match=r"submit\(model, payload\)\.request_id"):
        assert hook.submit_request(MODEL, PAYLOAD) == sim.requests[0].request_id
    assert sim.count() == 1


def test_an_invalid_model_id_is_refused_before_any_call(hook, sim):
    with pytest.raises(KlingValidationError, match="model"):
        hook.submit("kling 3", PAYLOAD)
    assert sim.count() == 0


def test_get_request(hook, sim):
    request_id = submit(sim)
    wait_for_status(sim, request_id, "success")
    calls = sim.count(REQUEST)
    req = hook.get_request(request_id)
    assert req.verdict == "success"
    [url] = req.media_urls
    assert url.startswith(f"{sim.base_url}/media/")
    assert sim.count(REQUEST) == calls + 1


def test_a_request_id_is_quoted_into_the_path(kling_conn, retry_sleeps):
    # The answer names a well-formed id: "a/b c" is quoted on the way out, never accepted back.
    answer = json.dumps({**QUEUED, "request_id": "a.b-c"}).encode()
    with raw_server(lambda conn, line: respond(conn, "close", "200 OK", answer)) as (base, seen):
        kling_conn(host=base)
        assert KlingHook().get_request("a/b c").request_id == "a.b-c"
    assert seen == [f"GET {API_PREFIX}/requests/a%2Fb%20c HTTP/1.1"]


def test_list_models(hook, sim):
    sim.script("GET /models", [ok({"model_ids": [MODEL, "kling-3.0-turbo-t2v"]})])
    assert hook.list_models() == [MODEL, "kling-3.0-turbo-t2v"]


def test_list_requests(hook, sim):
    first, second = submit(sim), submit(sim)
    requests.post(  # another model's request, which the list must leave out
        f"{sim.api_url}/requests",
        json={"model": "kling-3.0-turbo-t2v", "payload": {"prompt": "a calm sea"}},
        headers={"Authorization": f"Bearer {sim.api_key}"},
        timeout=10,
    ).raise_for_status()
    found = hook.list_requests(MODEL)
    assert sorted(r.request_id for r in found) == sorted([first, second])


@pytest.mark.parametrize(
    ("call", "route"), [("list_models", "GET /models"), ("list_requests", "GET /requests")]
)
def test_list_answers_of_the_wrong_shape_are_api_errors(hook, sim, call, route):
    sim.script(route, [ok({"something": "else"})])
    with pytest.raises(KlingAPIError, match="without a"):
        getattr(hook, call)(*([MODEL] if call == "list_requests" else []))


@pytest.mark.parametrize("body", ["<html>maintenance</html>", "[1, 2]", ""])
def test_a_200_answer_that_is_not_a_json_object_is_an_api_error(hook, sim, body):
    sim.script(REQUEST, [Fault(status=200, text=body)])
    with pytest.raises(KlingAPIError, match="not a JSON object") as info:
        hook.get_request("req-1")
    assert info.value.status_code == 200
    assert sim.count() == 1


def test_a_record_without_status_is_an_api_error(hook, sim):
    sim.script(REQUEST, [ok({"request_id": "req-1"})])
    with pytest.raises(KlingAPIError, match="without a status"):
        hook.get_request("req-1")


def test_test_connection_success_says_where_how_many_and_whether_kling_is_served(hook, sim):
    sim.script(
        "GET /models", [ok({"model_ids": ["a", "kling-3.0-turbo-i2v", "c"]}), ok({"model_ids": ["a"]})]
    )
    assert hook.test_connection() == (
        True,
        f"Connected to GMI Cloud at {sim.base_url}: 3 models served, kling-3.0-turbo-i2v among them. "
        "The models this provider knows: kling-3.0-turbo-i2v matches GMI's detail; "
        "kling-3.0-turbo-t2v NOT served to this key; kling-v3-image-to-video NOT served to this key.",
    )
    assert "kling-3.0-turbo-i2v NOT among them, so its submits would fail" in hook.test_connection()[1]


def test_test_connection_failure_explains_without_the_key(kling_simulator, kling_conn, retry_sleeps):
    kling_conn(host=kling_simulator.base_url)  # TEST_API_KEY, which the simulator refuses
    ok_, message = KlingHook().test_connection()
    assert ok_ is False
    assert "401" in message
    assert "Password field" in message
    assert TEST_API_KEY not in message


def test_test_connection_without_a_key(kling_conn):
    kling_conn(password="")
    ok_, message = KlingHook().test_connection()
    assert ok_ is False
    assert "API key is missing" in message


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_points_to_the_password_field_and_is_not_retried(hook, sim, retry_sleeps, status):
    sim.script(REQUEST, [Fault(status=status, text="")])
    with pytest.raises(KlingAPIError) as info:
        hook.get_request("req-1")
    assert info.value.status_code == status
    assert "Password field" in str(info.value)
    assert sim.api_key not in str(info.value)
    assert sim.count() == 1
    assert retry_sleeps == []


def test_a_404_is_not_retried(hook, sim):
    sim.script("POST /requests", [Fault.error(404, "model Kling does not exist")])
    with pytest.raises(KlingAPIError, match="case-sensitive") as info:
        hook.submit("Kling", PAYLOAD)
    assert info.value.status_code == 404
    assert sim.count() == 1


def test_cancel_is_best_effort(hook, sim):
    request_id = submit(sim)
    sim.script("DELETE /requests/{id}", [Fault.error(405, "method not allowed")])
    assert hook.cancel_request(request_id) is False
    assert hook.cancel_request(request_id) is True
    assert sim.record(request_id)["status"] == "cancelled"


# --------------------------------------------------------------------------------------
# Retries of reads
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(err(500), id="500"),
        pytest.param(err(502), id="502"),
        pytest.param(err(503), id="503"),
        pytest.param(err(504), id="504"),
        pytest.param(err(429), id="429"),
        pytest.param(Fault.connection_reset(), id="reset"),
        pytest.param(Fault.slow(2.0), id="read-timeout"),
    ],
)
def test_reads_are_retried_until_they_succeed(kling_simulator, kling_conn, retry_sleeps, failure):
    to(kling_simulator, kling_conn, timeout=0.5)
    request_id = submit(kling_simulator)
    kling_simulator.script(REQUEST, [failure, failure])
    assert KlingHook(retry_limit=5).get_request(request_id).request_id == request_id
    assert kling_simulator.count(REQUEST) == 3
    assert len(retry_sleeps) == 2
    assert all(0 < s <= 60 for s in retry_sleeps)


@pytest.mark.parametrize("how", ["refused", "timeout"], ids=["refused", "connect-timeout"])
def test_reads_are_retried_until_gmi_can_be_reached(kling_conn, retry_sleeps, quick_connects, how):
    def answers(sim):
        sim.script(REQUEST, [ok(QUEUED)])

    with unreachable_until(how, retry_sleeps, on_start=answers) as url:
        kling_conn(host=url)
        assert KlingHook(retry_limit=5).get_request("req-1").request_id == "req-1"
    assert len(retry_sleeps) == 2
    assert all(0 < s <= 60 for s in retry_sleeps)


def test_reads_give_up_after_the_retry_limit(kling_simulator, kling_conn, retry_sleeps):
    to(kling_simulator, kling_conn)
    kling_simulator.script(REQUEST, [Fault(status=502, text="Bad Gateway")] * 3)
    with pytest.raises(KlingAPIError, match="HTTP 502") as info:
        KlingHook(retry_limit=2).get_request("req-1")
    assert info.value.status_code == 502
    assert kling_simulator.count() == 3
    assert len(retry_sleeps) == 2


def test_no_retries_with_retry_limit_zero(kling_simulator, kling_conn, retry_sleeps):
    to(kling_simulator, kling_conn)
    kling_simulator.script(REQUEST, [Fault.error(503, "busy")])
    with pytest.raises(KlingAPIError):
        KlingHook(retry_limit=0).get_request("req-1")
    assert kling_simulator.count() == 1
    assert retry_sleeps == []


def test_a_rate_limit_waits_at_least_as_long_as_gmi_asks(hook, sim, retry_sleeps):
    limited = {"error": "Rate limit exceeded. Retry in 7500 ms.", "rate_limit": {"retry_after_ms": 7500}}
    sim.script(REQUEST, [err(429, limited), ok(QUEUED)])
    hook.get_request("req-1")
    assert sim.count() == 2
    assert len(retry_sleeps) == 1
    assert retry_sleeps[0] >= 7.5


def test_a_retry_after_header_is_honoured(hook, sim, retry_sleeps):
    sim.script(REQUEST, [Fault(status=503, text="busy", headers={"Retry-After": "12"}), ok(QUEUED)])
    hook.get_request("req-1")
    assert retry_sleeps[0] >= 12


def test_a_rate_limit_longer_than_retry_max_wait_fails_at_once(kling_simulator, kling_conn, retry_sleeps):
    to(kling_simulator, kling_conn)
    hook = KlingHook(retry_max_wait=60)
    limited = {"error": "Rate limit exceeded.", "rate_limit": {"retry_after_ms": 3_600_000}}
    kling_simulator.script(REQUEST, [err(429, limited), ok(QUEUED)])
    with pytest.raises(KlingAPIError, match="rate limited") as info:
        hook.get_request("req-1")
    assert info.value.status_code == 429
    assert info.value.retry_after == 3600
    assert "3600.0 s" in str(info.value)
    assert kling_simulator.count() == 1
    assert retry_sleeps == []


def test_backoff_grows_and_stays_under_retry_max_wait(kling_simulator, kling_conn, retry_sleeps):
    to(kling_simulator, kling_conn)
    hook = KlingHook(retry_limit=6, retry_max_wait=5)
    kling_simulator.script(REQUEST, [err(500)] * 6 + [ok(QUEUED)])
    hook.get_request("req-1")
    assert len(retry_sleeps) == 6
    assert retry_sleeps[0] >= 1
    assert all(s <= 5 for s in retry_sleeps)
    assert retry_sleeps[-1] > retry_sleeps[0]


# --------------------------------------------------------------------------------------
# Retries of submits: never pay twice
# --------------------------------------------------------------------------------------


def test_a_submit_gmi_surely_refused_is_sent_again(hook, sim):
    sim.script("POST /requests", [err(429), err(429)])
    assert hook.submit(MODEL, PAYLOAD).request_id == sim.requests[0].request_id
    assert sim.count("POST /requests") == sim.count() == 3


def test_a_submit_that_could_not_connect_is_sent_again(kling_conn, retry_sleeps, quick_connects):
    reached = []
    with unreachable_until("timeout", retry_sleeps, on_start=reached.append) as url:
        kling_conn(host=url, password="sim-test-key")
        record = KlingHook(retry_limit=5).submit(MODEL, PAYLOAD)
        assert [r.request_id for r in reached[0].requests] == [record.request_id]
    assert len(retry_sleeps) == 2


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_submit_that_may_have_been_accepted_is_not_sent_again(hook, sim, retry_sleeps, status):
    sim.script("POST /requests", [err(status)])
    with pytest.raises(KlingSubmitOutcomeUnknown) as info:
        hook.submit(MODEL, PAYLOAD)
    # GMI has answered 500 after accepting, and a gateway's 5xx may hide an accepted request.
    assert info.value.status_code == status
    assert sim.count("POST /requests") == 1
    assert retry_sleeps == []


@pytest.mark.parametrize(
    "fault", [Fault.slow(2.0), Fault.connection_reset()], ids=["read-timeout", "connection-reset"]
)
def test_a_submit_without_an_answer_is_not_sent_again(kling_simulator, kling_conn, retry_sleeps, fault):
    to(kling_simulator, kling_conn, timeout=0.5)
    kling_simulator.script("POST /requests", [fault])
    with pytest.raises(KlingSubmitOutcomeUnknown) as info:
        KlingHook(retry_limit=5).submit(MODEL, PAYLOAD)
    message = str(info.value)
    assert "submit to kling-3.0-turbo-i2v" in message
    assert "not sent again" in message
    assert kling_simulator.api_key not in message
    assert kling_simulator.count("POST /requests") == 1
    assert retry_sleeps == []


def test_a_submit_gives_up_after_the_retry_limit_on_429(kling_simulator, kling_conn, retry_sleeps):
    to(kling_simulator, kling_conn)
    kling_simulator.script("POST /requests", [Fault.error(429, "slow down")] * 4)
    with pytest.raises(KlingAPIError, match="HTTP 429"):
        KlingHook(retry_limit=3).submit(MODEL, PAYLOAD)
    assert kling_simulator.count() == 4


def test_a_refused_connection_is_retried_for_a_submit(kling_conn, retry_sleeps):
    """A real refused TCP connection on loopback: it proves the submit never left."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again below, so connecting is refused
    kling_conn(host=f"http://127.0.0.1:{port}")
    hook = KlingHook(retry_limit=2)
    posts = []
    real_request = hook.session.request

    def counting_request(method, url, **kwargs):
        posts.append((method, url))
        return real_request(method, url, **kwargs)

    hook.session.request = counting_request
    with pytest.raises(KlingTransportError) as info:
        hook.submit(MODEL, PAYLOAD)
    assert not isinstance(info.value, KlingSubmitOutcomeUnknown)
    assert info.value.sent is False
    assert len(posts) == 3
    assert {m for m, _ in posts} == {"POST"}
    assert len(retry_sleeps) == 2
    hook.close()


# --------------------------------------------------------------------------------------
# Downloads
# --------------------------------------------------------------------------------------

# --------------------------------------------------------------------------------------
# Downloads
# --------------------------------------------------------------------------------------


@pytest.fixture
def video(hook, sim):
    """The URL of a finished request's video at the simulator, and its bytes."""
    request_id = submit(sim)
    wait_for_status(sim, request_id, "success")
    [url] = hook.get_request(request_id).media_urls
    return url, requests.get(url, timeout=10).content


@pytest.fixture
def breaks_midway(kling_conn, sim):
    """The URL of a video whose answer stops after 1,000 of its 20,000 bytes, the connection dropped."""

    def script(conn: socket.socket, line: str) -> None:
        head = "HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: 20000\r\n\r\n"
        conn.sendall(head.encode() + b"\x00\x00\x00\x18ftypmp42" + bytes(988))
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")

    with raw_server(script) as (base, _):
        kling_conn(host=sim.base_url, password=sim.api_key, extra={"allowed_media_hosts": [base[7:]]})
        yield f"{base}/video.mp4"


def test_download_to_a_local_path(hook, video, tmp_path):
    url, data = video
    target = tmp_path / "out" / "video.mp4"
    result = hook.download(url, target, chunk_size=1000)
    assert target.read_bytes() == data
    assert result.uri == str(target)
    assert result.size == len(data)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert os.listdir(target.parent) == ["video.mp4"]  # no temporary file left behind


def test_download_does_not_send_the_api_key_to_the_media_host(hook, sim, video, tmp_path):
    hook.download(video[0], str(tmp_path / "video.mp4"))
    headers = sim.last_headers("GET /media")
    assert "authorization" not in headers
    assert "x-organization-id" not in headers
    assert sim.api_key not in json.dumps(headers)
    assert headers["user-agent"].startswith("airflow-provider-kling/")


def test_a_downloaded_file_gets_ordinary_permissions(hook, video, tmp_path):
    target = tmp_path / "video.mp4"
    hook.download(video[0], target)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


def test_a_download_that_breaks_midway_leaves_no_file(breaks_midway, tmp_path):
    target = tmp_path / "video.mp4"
    with pytest.raises(requests.exceptions.RequestException):
        KlingHook().download(breaks_midway, target, chunk_size=100)
    assert os.listdir(tmp_path) == []


def test_a_download_that_breaks_midway_keeps_an_older_file_intact(breaks_midway, tmp_path):
    target = tmp_path / "video.mp4"
    target.write_bytes(b"the previous video")
    with pytest.raises(requests.exceptions.RequestException):
        KlingHook().download(breaks_midway, target, chunk_size=100)
    assert target.read_bytes() == b"the previous video"
    assert os.listdir(tmp_path) == ["video.mp4"]


def test_a_failed_download_answer_is_an_api_error_and_leaves_no_file(hook, sim, video, tmp_path):
    sim.script("GET /media", [Fault(status=404, text="Not Found")])
    with pytest.raises(KlingAPIError, match="HTTP 404") as info:
        hook.download(video[0], tmp_path / "video.mp4")
    assert info.value.status_code == 404
    assert os.listdir(tmp_path) == []


def test_download_to_a_file_object_storage_path(hook, video, tmp_path):
    from airflow.sdk import ObjectStoragePath

    url, data = video
    destination = ObjectStoragePath(f"file://{tmp_path}/video.mp4")
    result = hook.download(url, destination)
    assert (tmp_path / "video.mp4").read_bytes() == data
    assert result.size == len(data)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert os.listdir(tmp_path) == ["video.mp4"]


@pytest.fixture
def memory_storage(monkeypatch):
    """A ``memory://`` ObjectStoragePath root, removed after the test."""
    from airflow.sdk import ObjectStoragePath
    from airflow.sdk.io import store
    from fsspec.implementations.memory import MemoryFileSystem

    fs = MemoryFileSystem()
    monkeypatch.setitem(
        store._STORE_CACHE, "memory", store.ObjectStore(protocol="memory", conn_id=None, fs=fs)
    )
    root = ObjectStoragePath(f"memory://kling-tests/{os.getpid()}-{id(fs)}")
    root.mkdir(parents=True, exist_ok=True)
    yield root
    fs.rm(root.path, recursive=True)


def test_download_to_a_memory_object_storage_path(hook, video, memory_storage):
    url, data = video
    destination = memory_storage / "video.mp4"
    result = hook.download(url, destination, chunk_size=4096)
    assert destination.read_bytes() == data
    assert result.uri == str(destination)
    assert result.size == len(data)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert [p.name for p in memory_storage.iterdir()] == ["video.mp4"]


def test_an_object_storage_download_that_breaks_midway_leaves_nothing(breaks_midway, memory_storage):
    with pytest.raises(requests.exceptions.RequestException):
        KlingHook().download(breaks_midway, memory_storage / "video.mp4", chunk_size=100)
    assert list(memory_storage.iterdir()) == []


def test_a_null_list_of_requests_reads_as_none(hook, sim):
    """GMI's own SDK accepts ``"requests": null`` for an account without requests."""
    sim.script("GET /requests", [ok({"requests": None, "total": 0})])
    assert hook.list_requests("kling-3.0-turbo-i2v") == []

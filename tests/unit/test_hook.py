"""KlingHook over a real requests.Session, with the HTTP answered by requests-mock."""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import stat

import airflow
import pytest
import requests

from airflow_provider_kling import __version__
from airflow_provider_kling.api import KlingAPIError, KlingRequest, KlingValidationError
from airflow_provider_kling.exceptions import (
    AirflowFailException,
    KlingConnectionNotFound,
    KlingSubmitOutcomeUnknown,
    KlingTransportError,
)
from airflow_provider_kling.hooks.kling import KlingHook
from airflow_provider_kling.testing.catalog import model_detail
from tests.conftest import TEST_API_KEY, TEST_BASE_URL

API = f"{TEST_BASE_URL}/api/v1/ie/requestqueue/apikey"
MODEL = "kling-3.0-turbo-i2v"
VIDEO_URL = "https://media.test/out/sample_0.mp4"
QUEUED = {"request_id": "req-1", "model": MODEL, "status": "queued", "created_at": 1750442925}
PAYLOAD = {
    "first_frame": "https://example.com/a.jpg",
    "prompt": "a dragon",
    "resolution": "720p",
    "duration": "5",
}


@pytest.fixture(autouse=True)
def media_test_is_public(monkeypatch):
    """requests_mock serves media.test, which resolves nowhere: give it a public address."""
    from airflow_provider_kling.transport import fetch

    real = fetch.resolve_host
    monkeypatch.setattr(
        fetch,
        "resolve_host",
        lambda host, port: ["93.184.215.14"] if host == "media.test" else real(host, port),
    )


@pytest.fixture
def hook(kling_conn, retry_sleeps):
    kling_conn(extra={"organization_id": "org-7"})
    hook = KlingHook(retry_limit=5)
    yield hook
    hook.close()


def ok(body):
    return {"status_code": 200, "json": body}


def err(status, body=None):
    return {"status_code": status, "json": body or {"error": f"failure {status}"}}


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


# Airflow 3.1 asks the task supervisor for a connection its environment lacks, and outside a task
# there is none (an ImportError); in a task, and on 3.2+ anywhere, the lookup says "not found".
LOOKUP_SAYS_NOT_FOUND = pytest.mark.skipif(
    airflow.__version__.startswith("3.1."), reason="Airflow 3.1 has no lookup outside a task"
)


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


def test_every_call_sends_the_key_organization_and_user_agent(hook, requests_mock):
    requests_mock.get(f"{API}/models", json={"model_ids": [MODEL]})
    hook.list_models()
    headers = requests_mock.last_request.headers
    assert headers["Authorization"] == f"Bearer {TEST_API_KEY}"
    assert headers["X-Organization-ID"] == "org-7"
    assert headers["User-Agent"].startswith(f"airflow-provider-kling/{__version__}")
    assert headers["Accept"] == "application/json"


def test_no_organization_header_without_an_organization(kling_conn, requests_mock):
    kling_conn()
    requests_mock.get(f"{API}/models", json={"model_ids": []})
    KlingHook().list_models()
    assert "X-Organization-ID" not in requests_mock.last_request.headers


def test_the_key_is_not_in_the_repr(hook):
    hook.settings  # noqa: B018 - load the connection first
    assert TEST_API_KEY not in repr(hook)
    assert repr(hook) == "KlingHook(kling_conn_id='kling_default')"


def test_one_session_serves_every_call(hook, requests_mock, monkeypatch):
    created = []

    class CountingSession(requests.Session):
        def __init__(self) -> None:
            super().__init__()
            created.append(self)

    monkeypatch.setattr(requests, "Session", CountingSession)
    requests_mock.get(f"{API}/models", json={"model_ids": []})
    requests_mock.get(f"{API}/requests/req-1", json=QUEUED)
    hook.list_models()
    session = hook.session
    hook.get_request("req-1")
    hook.get_request("req-1")
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


def test_submit_posts_model_and_payload_and_returns_the_record(hook, requests_mock):
    requests_mock.post(f"{API}/requests", json=QUEUED)
    req = hook.submit(MODEL, PAYLOAD)
    assert isinstance(req, KlingRequest)
    assert (req.request_id, req.status, req.verdict) == ("req-1", "queued", "running")
    assert requests_mock.call_count == 1
    sent = requests_mock.last_request
    assert sent.method == "POST"
    # The body is streamed (api/body.py): requests-mock hands over the file it was given.
    body = sent.body.read()
    assert json.loads(body) == {"model": MODEL, "payload": PAYLOAD}
    assert sent.headers["Content-Length"] == str(len(body))
    assert sent.headers["Content-Type"] == "application/json"


def test_a_terminal_submit_answer_is_returned_as_finished(hook, requests_mock):
    requests_mock.post(
        f"{API}/requests", json={**QUEUED, "status": "success", "outcome": {"video_url": VIDEO_URL}}
    )
    req = hook.submit(MODEL, PAYLOAD)
    assert req.is_terminal
    assert req.media_urls == [VIDEO_URL]


def test_submit_request_returns_the_id(hook, requests_mock):
    requests_mock.post(f"{API}/requests", json=QUEUED)
    assert hook.submit(MODEL, PAYLOAD).request_id == "req-1"


def test_submit_request_is_deprecated_and_still_returns_the_id(hook, requests_mock):
    requests_mock.post(f"{API}/requests", json=QUEUED)
    with pytest.warns(DeprecationWarning, match=r"submit\(model, payload\)\.request_id"):
        assert hook.submit_request(MODEL, PAYLOAD) == "req-1"
    assert requests_mock.call_count == 1


def test_an_invalid_model_id_is_refused_before_any_call(hook, requests_mock):
    with pytest.raises(KlingValidationError, match="model"):
        hook.submit("kling 3", PAYLOAD)
    assert requests_mock.call_count == 0


def test_get_request(hook, requests_mock):
    record = {**QUEUED, "status": "success", "outcome": {"media_urls": [{"id": "0", "url": VIDEO_URL}]}}
    requests_mock.get(f"{API}/requests/req-1", json=record)
    req = hook.get_request("req-1")
    assert req.verdict == "success"
    assert req.media_urls == [VIDEO_URL]
    assert requests_mock.last_request.method == "GET"


def test_a_request_id_is_quoted_into_the_path(hook, requests_mock):
    # The answer names a well-formed id: "a/b c" is quoted on the way out, never accepted back.
    requests_mock.get(f"{API}/requests/a%2Fb%20c", json={**QUEUED, "request_id": "a.b-c"})
    assert hook.get_request("a/b c").request_id == "a.b-c"


def test_list_models(hook, requests_mock):
    requests_mock.get(f"{API}/models", json={"model_ids": [MODEL, "kling-3.0-turbo-t2v"]})
    assert hook.list_models() == [MODEL, "kling-3.0-turbo-t2v"]


def test_list_requests(hook, requests_mock):
    requests_mock.get(
        f"{API}/requests", json={"requests": [QUEUED, {**QUEUED, "request_id": "req-2"}], "total": 2}
    )
    found = hook.list_requests(MODEL)
    assert [r.request_id for r in found] == ["req-1", "req-2"]
    assert requests_mock.last_request.qs == {"model_id": [MODEL]}


@pytest.mark.parametrize(("call", "path"), [("list_models", "/models"), ("list_requests", "/requests")])
def test_list_answers_of_the_wrong_shape_are_api_errors(hook, requests_mock, call, path):
    requests_mock.get(f"{API}{path}", json={"something": "else"})
    with pytest.raises(KlingAPIError, match="without a"):
        getattr(hook, call)(*([MODEL] if call == "list_requests" else []))


@pytest.mark.parametrize("body", ["<html>maintenance</html>", "[1, 2]", ""])
def test_a_200_answer_that_is_not_a_json_object_is_an_api_error(hook, requests_mock, body):
    requests_mock.get(f"{API}/requests/req-1", text=body)
    with pytest.raises(KlingAPIError, match="not a JSON object") as info:
        hook.get_request("req-1")
    assert info.value.status_code == 200
    assert requests_mock.call_count == 1


def test_a_record_without_status_is_an_api_error(hook, requests_mock):
    requests_mock.get(f"{API}/requests/req-1", json={"request_id": "req-1"})
    with pytest.raises(KlingAPIError, match="without a status"):
        hook.get_request("req-1")


def test_test_connection_success_says_where_how_many_and_whether_kling_is_served(hook, requests_mock):
    requests_mock.get(f"{API}/models", json={"model_ids": ["a", "kling-3.0-turbo-i2v", "c"]})
    requests_mock.get(f"{API}/models/kling-3.0-turbo-i2v", json=model_detail("kling-3.0-turbo-i2v"))
    assert hook.test_connection() == (
        True,
        f"Connected to GMI Cloud at {TEST_BASE_URL}: 3 models served, kling-3.0-turbo-i2v among them. "
        "The models this provider knows: kling-3.0-turbo-i2v matches GMI's detail; "
        "kling-3.0-turbo-t2v NOT served to this key; kling-v3-image-to-video NOT served to this key.",
    )
    requests_mock.get(f"{API}/models", json={"model_ids": ["a"]})
    assert "kling-3.0-turbo-i2v NOT among them, so its submits would fail" in hook.test_connection()[1]


def test_test_connection_failure_explains_without_the_key(hook, requests_mock):
    requests_mock.get(f"{API}/models", status_code=401, json={"error": "unauthorized"})
    ok_, message = hook.test_connection()
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
def test_a_refused_key_points_to_the_password_field_and_is_not_retried(
    hook, requests_mock, retry_sleeps, status
):
    requests_mock.get(f"{API}/requests/req-1", status_code=status, text="")
    with pytest.raises(KlingAPIError) as info:
        hook.get_request("req-1")
    assert info.value.status_code == status
    assert "Password field" in str(info.value)
    assert TEST_API_KEY not in str(info.value)
    assert requests_mock.call_count == 1
    assert retry_sleeps == []


def test_a_404_is_not_retried(hook, requests_mock):
    requests_mock.post(f"{API}/requests", status_code=404, json={"error": "model Kling does not exist"})
    with pytest.raises(KlingAPIError, match="case-sensitive") as info:
        hook.submit("Kling", PAYLOAD)
    assert info.value.status_code == 404
    assert requests_mock.call_count == 1


def test_cancel_is_best_effort(hook, requests_mock):
    requests_mock.delete(f"{API}/requests/req-1", status_code=405, json={"error": "method not allowed"})
    assert hook.cancel_request("req-1") is False
    requests_mock.delete(f"{API}/requests/req-2", json={"request_id": "req-2", "status": "cancelled"})
    assert hook.cancel_request("req-2") is True


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
        pytest.param({"exc": requests.exceptions.ConnectionError("Connection reset by peer")}, id="reset"),
        pytest.param({"exc": requests.exceptions.ConnectTimeout}, id="connect-timeout"),
        pytest.param({"exc": requests.exceptions.ReadTimeout}, id="read-timeout"),
    ],
)
def test_reads_are_retried_until_they_succeed(hook, requests_mock, retry_sleeps, failure):
    requests_mock.get(f"{API}/requests/req-1", [failure, failure, ok(QUEUED)])
    assert hook.get_request("req-1").request_id == "req-1"
    assert requests_mock.call_count == 3
    assert len(retry_sleeps) == 2
    assert all(0 < s <= 60 for s in retry_sleeps)


def test_reads_give_up_after_the_retry_limit(kling_conn, requests_mock, retry_sleeps):
    kling_conn()
    hook = KlingHook(retry_limit=2)
    requests_mock.get(f"{API}/requests/req-1", status_code=502, text="Bad Gateway")
    with pytest.raises(KlingAPIError, match="HTTP 502") as info:
        hook.get_request("req-1")
    assert info.value.status_code == 502
    assert requests_mock.call_count == 3
    assert len(retry_sleeps) == 2


def test_no_retries_with_retry_limit_zero(kling_conn, requests_mock, retry_sleeps):
    kling_conn()
    requests_mock.get(f"{API}/requests/req-1", status_code=503, json={"error": "busy"})
    with pytest.raises(KlingAPIError):
        KlingHook(retry_limit=0).get_request("req-1")
    assert requests_mock.call_count == 1
    assert retry_sleeps == []


def test_a_rate_limit_waits_at_least_as_long_as_gmi_asks(hook, requests_mock, retry_sleeps):
    limited = {"error": "Rate limit exceeded. Retry in 7500 ms.", "rate_limit": {"retry_after_ms": 7500}}
    requests_mock.get(f"{API}/requests/req-1", [err(429, limited), ok(QUEUED)])
    hook.get_request("req-1")
    assert requests_mock.call_count == 2
    assert len(retry_sleeps) == 1
    assert retry_sleeps[0] >= 7.5


def test_a_retry_after_header_is_honoured(hook, requests_mock, retry_sleeps):
    requests_mock.get(
        f"{API}/requests/req-1",
        [{"status_code": 503, "text": "busy", "headers": {"Retry-After": "12"}}, ok(QUEUED)],
    )
    hook.get_request("req-1")
    assert retry_sleeps[0] >= 12


def test_a_rate_limit_longer_than_retry_max_wait_fails_at_once(kling_conn, requests_mock, retry_sleeps):
    kling_conn()
    hook = KlingHook(retry_max_wait=60)
    limited = {"error": "Rate limit exceeded.", "rate_limit": {"retry_after_ms": 3_600_000}}
    requests_mock.get(f"{API}/requests/req-1", [err(429, limited), ok(QUEUED)])
    with pytest.raises(KlingAPIError, match="rate limited") as info:
        hook.get_request("req-1")
    assert info.value.status_code == 429
    assert info.value.retry_after == 3600
    assert "3600.0 s" in str(info.value)
    assert requests_mock.call_count == 1
    assert retry_sleeps == []


def test_backoff_grows_and_stays_under_retry_max_wait(kling_conn, requests_mock, retry_sleeps):
    kling_conn()
    hook = KlingHook(retry_limit=6, retry_max_wait=5)
    requests_mock.get(f"{API}/requests/req-1", [err(500)] * 6 + [ok(QUEUED)])
    hook.get_request("req-1")
    assert len(retry_sleeps) == 6
    assert retry_sleeps[0] >= 1
    assert all(s <= 5 for s in retry_sleeps)
    assert retry_sleeps[-1] > retry_sleeps[0]


# --------------------------------------------------------------------------------------
# Retries of submits: never pay twice
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(err(429), id="429"),
        pytest.param({"exc": requests.exceptions.ConnectTimeout}, id="connect-timeout"),
    ],
)
def test_a_submit_gmi_surely_refused_is_sent_again(hook, requests_mock, failure):
    requests_mock.post(f"{API}/requests", [failure, failure, ok(QUEUED)])
    assert hook.submit(MODEL, PAYLOAD).request_id == "req-1"
    assert requests_mock.call_count == 3
    assert all(r.method == "POST" for r in requests_mock.request_history)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_submit_that_may_have_been_accepted_is_not_sent_again(hook, requests_mock, retry_sleeps, status):
    requests_mock.post(f"{API}/requests", [err(status), ok(QUEUED)])
    requests_mock.get(f"{API}/requests", json={"requests": [], "total": 0})
    with pytest.raises(KlingSubmitOutcomeUnknown) as info:
        hook.submit(MODEL, PAYLOAD)
    # GMI has answered 500 after accepting, and a gateway's 5xx may hide an accepted request.
    assert info.value.status_code == status
    assert [r.method for r in requests_mock.request_history].count("POST") == 1
    assert retry_sleeps == []


@pytest.mark.parametrize(
    "exc",
    [
        requests.exceptions.ReadTimeout,
        requests.exceptions.ConnectionError("Connection aborted: reset by peer"),
    ],
    ids=["read-timeout", "connection-reset"],
)
def test_a_submit_without_an_answer_is_not_sent_again(hook, requests_mock, retry_sleeps, exc):
    posts = requests_mock.post(f"{API}/requests", [{"exc": exc}, ok(QUEUED)])
    requests_mock.get(f"{API}/requests", json={"requests": [], "total": 0})
    with pytest.raises(KlingSubmitOutcomeUnknown) as info:
        hook.submit(MODEL, PAYLOAD)
    message = str(info.value)
    assert "submit to kling-3.0-turbo-i2v" in message
    assert "not sent again" in message
    assert TEST_API_KEY not in message
    assert posts.call_count == 1
    assert retry_sleeps == []


def test_a_submit_gives_up_after_the_retry_limit_on_429(kling_conn, requests_mock, retry_sleeps):
    kling_conn()
    requests_mock.post(f"{API}/requests", status_code=429, json={"error": "slow down"})
    with pytest.raises(KlingAPIError, match="HTTP 429"):
        KlingHook(retry_limit=3).submit(MODEL, PAYLOAD)
    assert requests_mock.call_count == 4


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

VIDEO = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 64


class BreaksMidway(io.RawIOBase):
    """A response body that delivers some bytes, then the connection drops."""

    def __init__(self, first: bytes) -> None:
        self.first = first
        self.sent = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.sent:
            raise ConnectionResetError(104, "Connection reset by peer")
        self.sent = True
        buffer[: len(self.first)] = self.first
        return len(self.first)


def test_download_to_a_local_path(hook, requests_mock, tmp_path):
    requests_mock.get(VIDEO_URL, content=VIDEO, headers={"Content-Type": "video/mp4"})
    target = tmp_path / "out" / "video.mp4"
    result = hook.download(VIDEO_URL, target, chunk_size=1000)
    assert target.read_bytes() == VIDEO
    assert result.uri == str(target)
    assert result.size == len(VIDEO)
    assert result.sha256 == hashlib.sha256(VIDEO).hexdigest()
    assert os.listdir(target.parent) == ["video.mp4"]  # no temporary file left behind


def test_download_does_not_send_the_api_key_to_the_media_host(hook, requests_mock, tmp_path):
    requests_mock.get(VIDEO_URL, content=VIDEO)
    hook.download(VIDEO_URL, str(tmp_path / "video.mp4"))
    headers = requests_mock.last_request.headers
    assert "Authorization" not in headers
    assert "X-Organization-ID" not in headers
    assert TEST_API_KEY not in json.dumps(dict(headers))
    assert headers["User-Agent"].startswith("airflow-provider-kling/")


def test_a_downloaded_file_gets_ordinary_permissions(hook, requests_mock, tmp_path):
    requests_mock.get(VIDEO_URL, content=VIDEO)
    target = tmp_path / "video.mp4"
    hook.download(VIDEO_URL, target)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


def test_a_download_that_breaks_midway_leaves_no_file(hook, requests_mock, tmp_path):
    requests_mock.get(VIDEO_URL, body=BreaksMidway(VIDEO[:1000]))
    target = tmp_path / "video.mp4"
    with pytest.raises(requests.exceptions.RequestException):
        hook.download(VIDEO_URL, target, chunk_size=100)
    assert os.listdir(tmp_path) == []


def test_a_download_that_breaks_midway_keeps_an_older_file_intact(hook, requests_mock, tmp_path):
    requests_mock.get(VIDEO_URL, body=BreaksMidway(VIDEO[:1000]))
    target = tmp_path / "video.mp4"
    target.write_bytes(b"the previous video")
    with pytest.raises(requests.exceptions.RequestException):
        hook.download(VIDEO_URL, target, chunk_size=100)
    assert target.read_bytes() == b"the previous video"
    assert os.listdir(tmp_path) == ["video.mp4"]


def test_a_failed_download_answer_is_an_api_error_and_leaves_no_file(hook, requests_mock, tmp_path):
    requests_mock.get(VIDEO_URL, status_code=404, text="Not Found")
    with pytest.raises(KlingAPIError, match="HTTP 404") as info:
        hook.download(VIDEO_URL, tmp_path / "video.mp4")
    assert info.value.status_code == 404
    assert os.listdir(tmp_path) == []


def test_download_to_a_file_object_storage_path(hook, requests_mock, tmp_path):
    from airflow.sdk import ObjectStoragePath

    requests_mock.get(VIDEO_URL, content=VIDEO)
    destination = ObjectStoragePath(f"file://{tmp_path}/video.mp4")
    result = hook.download(VIDEO_URL, destination)
    assert (tmp_path / "video.mp4").read_bytes() == VIDEO
    assert result.size == len(VIDEO)
    assert result.sha256 == hashlib.sha256(VIDEO).hexdigest()
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


def test_download_to_a_memory_object_storage_path(hook, requests_mock, memory_storage):
    requests_mock.get(VIDEO_URL, content=VIDEO)
    destination = memory_storage / "video.mp4"
    result = hook.download(VIDEO_URL, destination, chunk_size=4096)
    assert destination.read_bytes() == VIDEO
    assert result.uri == str(destination)
    assert result.size == len(VIDEO)
    assert result.sha256 == hashlib.sha256(VIDEO).hexdigest()
    assert [p.name for p in memory_storage.iterdir()] == ["video.mp4"]


def test_an_object_storage_download_that_breaks_midway_leaves_nothing(hook, requests_mock, memory_storage):
    requests_mock.get(VIDEO_URL, body=BreaksMidway(VIDEO[:1000]))
    with pytest.raises(requests.exceptions.RequestException):
        hook.download(VIDEO_URL, memory_storage / "video.mp4", chunk_size=100)
    assert list(memory_storage.iterdir()) == []


def test_a_null_list_of_requests_reads_as_none(hook, requests_mock):
    """GMI's own SDK accepts ``"requests": null`` for an account without requests."""
    requests_mock.get(f"{API}/requests", json={"requests": None, "total": 0})
    assert hook.list_requests("kling-3.0-turbo-i2v") == []

"""What an answer cannot make the provider do: fetch where it points, hang, crash, or leak the key."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import airflow
import pytest

from airflow_provider_kling.api import KlingAPIError, KlingValidationError
from airflow_provider_kling.exceptions import (
    KlingDownloadError,
    KlingSubmitOutcomeUnknown,
    KlingTransportError,
)
from airflow_provider_kling.hooks.kling import KlingAsyncHook, KlingHook
from airflow_provider_kling.operators.download import KlingDownloadVideoOperator
from airflow_provider_kling.testing import Fault
from airflow_provider_kling.transport import bounds
from airflow_provider_kling.triggers.kling import KlingStatusTrigger
from tests.helpers import RUN_ID, FakeTI, connect, first_event
from tests.unit.hostile import answer, raw_server, trickle

KEY = 'gmi-SECRET"key-8f3a1c'

# Airflow 3.1's own connection lookup refuses an extra that is not a JSON object ("Encountered
# non-JSON in `extra` field") before any hook sees it; from 3.2 the hook's message is the one shown.
AIRFLOW_REFUSES_BAD_EXTRA = pytest.mark.skipif(
    airflow.__version__.startswith("3.1."), reason="Airflow 3.1 refuses a non-JSON extra itself"
)


def download(tmp_path: Path, urls: list[str]) -> dict[str, Any]:
    task = KlingDownloadVideoOperator(task_id="download", download_to=str(tmp_path), media_urls=urls)
    return task.execute({"ti": FakeTI(), "run_id": RUN_ID})


def files(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()]


@pytest.fixture
def video_url(kling_simulator: Any, kling_connection_env: Any) -> str:
    hook = KlingHook()
    record = hook.submit("kling-3.0-turbo-i2v", {"first_frame": "https://e.x/a.png", "prompt": "steam"})
    for _ in range(100):
        current = hook.get_request(record.request_id)
        if current.media_urls:
            return current.media_urls[0]
        time.sleep(0.05)
    raise AssertionError("the simulator did not finish the request")


# 1. The fetch policy


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "only https"),
        ("https://169.254.169.254/latest/meta-data/", "169.254.169.254, which is not a public address"),
        ("https://127.0.0.1:1/v.mp4", "not a public address"),
        ("https://10.1.2.3/v.mp4", "not a public address"),
        ("https://[::ffff:127.0.0.1]/v.mp4", "not a public address"),
        ("https://224.0.0.1/v.mp4", "not a public address"),
        ("https://localhost/v.mp4", "not a public address"),
    ],
)
def test_the_download_operator_refuses_urls_off_the_public_internet(video_url, tmp_path, url, reason):
    with pytest.raises(KlingDownloadError, match="Refused to download") as info:
        download(tmp_path, [url])
    assert reason in str(info.value)
    assert "allowed_media_hosts" in str(info.value)
    assert files(tmp_path) == []


def test_the_api_origin_is_fetched_and_other_loopback_origins_only_when_listed(
    video_url, kling_simulator, monkeypatch, tmp_path
):
    other_origin = video_url.replace("127.0.0.1", "localhost")
    assert other_origin != video_url
    with pytest.raises(KlingDownloadError, match="only https"):
        download(tmp_path, [other_origin])
    assert files(tmp_path) == []
    port = video_url.split(":")[2].split("/")[0]
    connect(
        monkeypatch,
        kling_simulator.base_url,
        kling_simulator.api_key,
        allowed_media_hosts=f"localhost:{port}",
    )
    result = download(tmp_path, [other_origin])
    assert Path(result["uris"][0]).read_bytes()[4:8] == b"ftyp"


def test_every_redirect_hop_is_checked(video_url, kling_simulator, monkeypatch, tmp_path):
    with raw_server(answer("302 Found", headers={"Location": "https://169.254.169.254/x"})) as (base, seen):
        port = base.rsplit(":", 1)[1]
        connect(
            monkeypatch,
            kling_simulator.base_url,
            kling_simulator.api_key,
            allowed_media_hosts=[f"127.0.0.1:{port}"],
        )
        with pytest.raises(KlingDownloadError, match=r"169\.254\.169\.254.*not a public address"):
            download(tmp_path, [f"{base}/v.mp4"])
    assert len(seen) == 1
    assert files(tmp_path) == []


def test_a_redirect_back_to_the_api_origin_is_followed(video_url, kling_simulator, monkeypatch, tmp_path):
    with raw_server(answer("302 Found", headers={"Location": video_url})) as (base, _):
        connect(monkeypatch, kling_simulator.base_url, kling_simulator.api_key, allowed_media_hosts=base[7:])
        result = download(tmp_path, [f"{base}/v.mp4"])
    assert result["files"][0]["size"] > 0


def test_a_redirect_loop_stops(monkeypatch, tmp_path, kling_simulator):
    with raw_server(answer("302 Found", headers={"Location": "/again"})) as (base, seen):
        connect(monkeypatch, kling_simulator.base_url, kling_simulator.api_key, allowed_media_hosts=base[7:])
        with pytest.raises(KlingDownloadError, match="more than 5 redirects"):
            download(tmp_path, [f"{base}/v.mp4"])
    assert len(seen) == 6
    assert files(tmp_path) == []


# 2. No redirects on API calls


def test_the_sync_hook_neither_follows_nor_retries_a_redirect(monkeypatch, retry_sleeps):
    with raw_server(answer("307 Temporary Redirect", headers={"Location": "https://evil.example/steal"})) as (
        base,
        seen,
    ):
        connect(monkeypatch, base)
        with pytest.raises(KlingAPIError, match=r"HTTP 307 .* redirect to evil\.example") as info:
            KlingHook().submit("kling-3.0-turbo-i2v", {"first_frame": "https://e.x/a.png", "prompt": "p"})
        with pytest.raises(KlingAPIError, match="HTTP 307"):
            KlingHook().get_request("req-1")
    assert info.value.status_code == 307
    assert not info.value.transient
    assert [line.split()[0] for line in seen] == ["POST", "GET"]


async def test_the_async_hook_and_the_trigger_treat_a_redirect_as_an_error(monkeypatch, retry_sleeps):
    with raw_server(answer("302 Found", headers={"Location": "https://evil.example/"})) as (base, seen):
        connect(monkeypatch, base)
        async with KlingAsyncHook() as hook:
            with pytest.raises(KlingAPIError, match=r"HTTP 302 .* evil\.example"):
                await hook.get_request("req-1")
        event = await first_event(KlingStatusTrigger("req-1", end_time=time.time() + 30, poll_interval=0.05))
    assert event["status"] == "error"
    assert "HTTP 302" in event["message"]
    assert len(seen) == 2


# 3. Bounds on every call


def test_a_trickling_answer_cannot_hold_a_sync_poll_past_the_timeout(monkeypatch):
    with raw_server(trickle()) as (base, _):
        connect(monkeypatch, base, timeout=1)
        started = time.monotonic()
        with pytest.raises(KlingTransportError, match="no complete answer within 1 s"):
            KlingHook(retry_limit=0).get_request("req-1")
    assert time.monotonic() - started < 3


def test_a_trickling_submit_answer_is_an_unknown_outcome_not_a_resend(monkeypatch):
    with raw_server(trickle()) as (base, seen):
        connect(monkeypatch, base, timeout=1)
        with pytest.raises(KlingSubmitOutcomeUnknown):
            KlingHook(retry_limit=3).submit(
                "kling-3.0-turbo-i2v", {"first_frame": "https://e.x/a.png", "prompt": "p"}
            )
    assert len(seen) == 1


async def test_a_trickling_answer_cannot_hold_an_async_poll_past_the_timeout(monkeypatch):
    with raw_server(trickle()) as (base, _):
        connect(monkeypatch, base, timeout=1)
        started = time.monotonic()
        async with KlingAsyncHook(retry_limit=0) as hook:
            with pytest.raises(KlingTransportError, match="no complete answer within 1 s"):
                await hook.get_request("req-1")
    assert time.monotonic() - started < 3


def test_a_trickling_download_is_cut_and_leaves_nothing(video_url, kling_simulator, monkeypatch, tmp_path):
    with raw_server(trickle(content_type="video/mp4")) as (base, _):
        connect(
            monkeypatch,
            kling_simulator.base_url,
            kling_simulator.api_key,
            timeout=1,
            allowed_media_hosts=base[7:],
        )
        started = time.monotonic()
        with pytest.raises(KlingTransportError, match="within"):
            download(tmp_path, [f"{base}/v.mp4"])
    # Headers came, so the size (1000 bytes) sets the deadline: 1 s plus a few ms at MIN_DOWNLOAD_RATE.
    assert time.monotonic() - started < 3
    assert files(tmp_path) == []


@pytest.mark.parametrize(
    "lengths", [[bounds.MAX_ANSWER_BYTES + 1], [2, bounds.MAX_ANSWER_BYTES + 1]], ids=["huge", "conflicting"]
)
def test_an_answer_announcing_too_many_bytes_is_not_read(monkeypatch, retry_sleeps, lengths):
    def script(conn: Any, line: str) -> None:
        head = "".join(f"Content-Length: {n}\r\n" for n in lengths)
        conn.sendall(f"HTTP/1.1 200 OK\r\n{head}\r\n{{}}".encode())

    with raw_server(script) as (base, seen):
        connect(monkeypatch, base)
        with pytest.raises(KlingTransportError):
            KlingHook(retry_limit=0).get_request("req-1")
    assert len(seen) == 1


def test_an_oversize_answer_is_one_failed_poll_and_never_a_paid_resend(
    kling_simulator, kling_connection_env, monkeypatch, retry_sleeps
):
    monkeypatch.setattr(bounds, "MAX_ANSWER_BYTES", 10_000)
    kling_simulator.script("GET /requests/{id}", [Fault(status=200, text="x" * 20_000)])
    with pytest.raises(KlingTransportError, match="larger than 10,000 bytes"):
        KlingHook(retry_limit=0).get_request("req-1")
    kling_simulator.script("POST /requests", [Fault(status=200, text="x" * 20_000)] * 3)
    with pytest.raises(KlingSubmitOutcomeUnknown):
        KlingHook(retry_limit=3).submit(
            "kling-3.0-turbo-i2v", {"first_frame": "https://e.x/a.png", "prompt": "p"}
        )
    assert kling_simulator.count("POST /requests") == 1


@pytest.mark.parametrize("text", ["[" * 100_000, "[" * 65 + "]" * 65, '{"a":' * 70 + "1" + "}" * 70])
async def test_json_too_deep_is_an_unreadable_answer_in_every_hook(
    kling_simulator, kling_connection_env, retry_sleeps, text
):
    kling_simulator.script("GET /requests/{id}", [Fault(status=200, text=text)] * 2)
    with pytest.raises(KlingAPIError, match="nested more than 64 levels") as info:
        KlingHook(retry_limit=0).get_request("req-1")
    assert info.value.status_code is None
    assert info.value.transient
    async with KlingAsyncHook(retry_limit=0) as hook:
        with pytest.raises(KlingAPIError, match="nested more than 64 levels"):
            await hook.get_request("req-1")


async def test_the_trigger_turns_hostile_answers_into_one_error_event(
    kling_simulator, kling_connection_env, retry_sleeps
):
    kling_simulator.script("GET /requests/{id}", [Fault(status=200, text="[" * 100_000)] * 20)
    trigger = KlingStatusTrigger("req-1", end_time=time.time() + 30, poll_interval=0.01, max_poll_failures=2)
    event = await first_event(trigger)
    assert event["status"] == "error"
    assert "nested more than 64 levels" in event["message"]


# 4. Request ids in answers


def test_a_huge_request_id_in_an_answer_is_refused_without_quoting_it(kling_simulator, kling_connection_env):
    huge = "x" * 1_000_000
    kling_simulator.script(
        "GET /requests/{id}", [Fault(status=200, body={"request_id": huge, "status": "queued"})]
    )
    with pytest.raises(KlingAPIError, match="unusable request_id") as info:
        KlingHook(retry_limit=0).get_request("req-1")
    assert len(str(info.value)) < 500


def test_a_request_id_with_a_line_break_is_refused(kling_simulator, kling_connection_env):
    body = {"request_id": "abc\nINFO forged log line", "status": "queued"}
    kling_simulator.script("POST /requests", [Fault(status=200, body=body)])
    with pytest.raises(KlingAPIError, match="unusable request_id"):
        KlingHook().submit("kling-3.0-turbo-i2v", {"first_frame": "https://e.x/a.png", "prompt": "p"})


# 5. Redaction


@pytest.mark.parametrize("stored", [KEY, f"  {KEY}\n"])
async def test_a_server_echoing_the_key_never_gets_it_into_errors_or_events(
    kling_simulator, monkeypatch, stored, retry_sleeps
):
    connect(monkeypatch, kling_simulator.base_url, stored)
    echo = {"error": f"invalid key {stored!s} (or {KEY})", "detail": KEY}
    kling_simulator.script("GET /requests/{id}", [Fault(status=401, body=echo)] * 3)
    with pytest.raises(KlingAPIError) as info:
        KlingHook().get_request("req-1")
    async with KlingAsyncHook() as hook:
        with pytest.raises(KlingAPIError) as async_info:
            await hook.get_request("req-1")
    event = await first_event(KlingStatusTrigger("req-1", end_time=time.time() + 30, poll_interval=0.01))
    for text in (str(info.value), str(async_info.value), json.dumps(event)):
        assert KEY not in text
        assert json.dumps(KEY)[1:-1] not in text
        assert "***" in text


def test_a_failed_record_echoing_the_key_is_redacted(kling_simulator, kling_connection_env):
    key = kling_simulator.api_key
    body = {"request_id": "req-1", "status": "failed", "error": f"quota for {key} exhausted"}
    kling_simulator.script("GET /requests/{id}", [Fault(status=200, body=body)])
    record = KlingHook().get_request("req-1")
    assert record.error == "quota for *** exhausted"
    assert key not in json.dumps(record.raw)


# 6. Connection checks


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"password": "gmi-key\r\nX-Evil: 1"},
            "Invalid connection 'kling_default' password: the API key contains a control",
        ),
        (
            {"extra": json.dumps({"organization_id": "org\n1"})},
            "extra 'organization_id': it contains a control",
        ),
        ({"host": "https://user:pw@console.gmicloud.ai"}, "host: it holds credentials"),
        pytest.param(
            {"extra": "{not json"},
            "Invalid connection 'kling_default' extra: it is not valid JSON",
            marks=AIRFLOW_REFUSES_BAD_EXTRA,
        ),
        pytest.param({"extra": "[1]"}, "extra: JSON list is not an object", marks=AIRFLOW_REFUSES_BAD_EXTRA),
        (
            {"extra": json.dumps({"allowed_media_hosts": "https://a.example/x"})},
            "'https://a.example/x' is not a host",
        ),
    ],
)
def test_unsafe_connections_are_refused_up_front(monkeypatch, fields, message):
    connection = {
        "conn_type": "kling",
        "host": "https://console.gmicloud.ai",
        "password": "gmi-key",
        **fields,
    }
    monkeypatch.setenv("AIRFLOW_CONN_KLING_DEFAULT", json.dumps(connection))
    with pytest.raises(KlingValidationError, match="Allowed: ") as info:
        KlingHook().settings  # noqa: B018
    assert message in str(info.value)
    assert "X-Evil" not in str(info.value)
    assert "pw@" not in str(info.value)


async def test_a_stripped_key_is_masked_in_both_hooks(monkeypatch):
    import airflow.sdk.log

    masked: list[str] = []
    monkeypatch.setattr(airflow.sdk.log, "mask_secret", lambda secret, name=None: masked.append(secret))

    async def amask(secret: str, name: str | None = None) -> None:
        masked.append(secret)

    # Airflow 3.1 has no async masker; the async hook then uses the sync one.
    monkeypatch.setattr(airflow.sdk.log, "amask_secret", amask, raising=False)
    connect(
        monkeypatch,
        "https://console.gmicloud.ai",
        f" {KEY}\n",
        allowed_media_hosts="a.example, b.example:9000",
    )

    def forms() -> set[str]:
        # Airflow masks the extra's values itself (a dict); the hooks hand over lists of forms.
        return {
            form
            for item in masked
            if isinstance(item, list | str)
            for form in ([item] if isinstance(item, str) else item)
        }

    settings = KlingHook().settings
    # The stripped key, and the forms a log line could quote it in (lower-cased, base64).
    assert {KEY, KEY.lower(), base64.b64encode(KEY.encode()).decode()} <= forms()
    masked.clear()
    async with KlingAsyncHook() as hook:
        assert hook.settings.api_key == KEY
    assert {KEY, KEY.lower(), base64.b64encode(KEY.encode()).decode()} <= forms()
    assert settings.api_key == KEY
    assert settings.allowed_media_hosts == ("a.example", "b.example:9000")
    assert KEY not in repr(settings)


async def test_a_triggerer_hands_each_key_to_the_log_masker_once(monkeypatch, kling_simulator):
    import airflow.sdk.log

    handed: list[list[str]] = []

    async def amask(secret: Any, name: str | None = None) -> None:
        if isinstance(secret, list):  # Airflow itself hands over the extra (a dict) each time
            handed.append(secret)

    monkeypatch.setattr(airflow.sdk.log, "amask_secret", amask, raising=False)
    connect(monkeypatch, kling_simulator.base_url, "first-key-0123456789")
    # A triggerer's waits each enter a hook: one message to the supervisor, not one per wait.
    for _ in range(5):
        async with KlingAsyncHook():
            pass
    assert len(handed) == 1
    assert "first-key-0123456789".upper() in handed[0]
    # A rotated key is new to the masker: it is handed over too.
    connect(monkeypatch, kling_simulator.base_url, "second-key-0123456789")
    async with KlingAsyncHook(), KlingAsyncHook():
        pass
    assert len(handed) == 2
    assert "second-key-0123456789".upper() in handed[1]

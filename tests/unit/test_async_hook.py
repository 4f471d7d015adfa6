"""KlingAsyncHook over a real httpx.AsyncClient, with the HTTP answered by respx."""

from __future__ import annotations

import httpx
import pytest

from airflow_provider_kling import __version__
from airflow_provider_kling.api import KlingAPIError, KlingValidationError
from airflow_provider_kling.exceptions import KlingConnectionNotFound, KlingTransportError
from airflow_provider_kling.hooks.kling import KlingAsyncHook, KlingHook
from tests.helpers import LOOKUP_SAYS_NOT_FOUND, TEST_API_KEY, TEST_BASE_URL

API = f"{TEST_BASE_URL}/api/v1/ie/requestqueue/apikey"
QUEUED = {"request_id": "req-1", "model": "kling-3.0-turbo-i2v", "status": "queued"}
DONE = {**QUEUED, "status": "success", "outcome": {"media_urls": ["https://media.test/v.mp4"]}}


@pytest.fixture
def clients(httpx_clients):
    return httpx_clients


@pytest.fixture
def conn(kling_conn, retry_sleeps):
    return kling_conn(extra={"organization_id": "org-7", "timeout": 20})


async def test_the_connection_is_fetched_asynchronously_from_the_environment(conn, monkeypatch):
    calls = []
    original = KlingAsyncHook.aget_connection

    async def spy(cls, conn_id):
        calls.append(conn_id)
        return await original.__func__(cls, conn_id)

    monkeypatch.setattr(KlingAsyncHook, "aget_connection", classmethod(spy))
    async with KlingAsyncHook() as hook:
        assert calls == ["kling_default"]
        assert hook.settings.base_url == TEST_BASE_URL
        assert hook.settings.api_key == TEST_API_KEY
        assert hook.settings.organization_id == "org-7"
        assert hook.settings.timeout == 20.0


@LOOKUP_SAYS_NOT_FOUND
async def test_a_missing_connection_names_kling_conn_id(kling_conn, clients):
    with pytest.raises(KlingConnectionNotFound, match="Invalid kling_conn_id: no connection 'nope'"):
        async with KlingAsyncHook("nope"):
            pass


async def test_a_connection_without_a_key_fails_clearly(kling_conn, clients):
    kling_conn(password=None)
    with pytest.raises(KlingValidationError, match="Password field"):
        async with KlingAsyncHook():
            pass
    assert clients == []


async def test_polls_send_the_headers_and_parse_the_record(conn, respx_mock):
    route = respx_mock.get(f"{API}/requests/req-1").respond(json=DONE)
    async with KlingAsyncHook() as hook:
        req = await hook.get_request("req-1")
    assert req.verdict == "success"
    assert req.media_urls == ["https://media.test/v.mp4"]
    headers = route.calls.last.request.headers
    assert headers["Authorization"] == f"Bearer {TEST_API_KEY}"
    assert headers["X-Organization-ID"] == "org-7"
    assert headers["User-Agent"].startswith(f"airflow-provider-kling/{__version__}")


async def test_one_client_serves_every_poll_and_is_closed_on_exit(conn, respx_mock, clients):
    route = respx_mock.get(f"{API}/requests/req-1")
    route.side_effect = [httpx.Response(200, json=QUEUED)] * 3 + [httpx.Response(200, json=DONE)]
    async with KlingAsyncHook() as hook:
        statuses = [(await hook.get_request("req-1")).status for _ in range(4)]
        assert len(clients) == 1
        client = clients[0]
        assert not client.is_closed
    assert statuses == ["queued", "queued", "queued", "success"]
    assert route.call_count == 4
    assert client.is_closed
    assert hook._shared is None


async def test_the_client_is_closed_when_the_block_raises(conn, respx_mock, clients):
    respx_mock.get(f"{API}/requests/req-1").respond(404, json={"error": "request not found"})
    with pytest.raises(KlingAPIError):
        async with KlingAsyncHook() as hook:
            await hook.get_request("req-1")
    assert len(clients) == 1
    assert clients[0].is_closed


async def test_use_outside_async_with_raises_a_clear_error(conn, respx_mock):
    route = respx_mock.get(f"{API}/requests/req-1").respond(json=QUEUED)
    hook = KlingAsyncHook()
    with pytest.raises(RuntimeError, match="outside 'async with'"):
        await hook.get_request("req-1")
    async with hook:
        await hook.get_request("req-1")
    with pytest.raises(RuntimeError, match="outside 'async with'"):
        await hook.get_request("req-1")
    assert route.call_count == 1


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(httpx.Response(500, json={"error": "internal"}), id="500"),
        pytest.param(httpx.Response(502, text="Bad Gateway"), id="502"),
        pytest.param(httpx.Response(503, json={"error": "capacity"}), id="503"),
        pytest.param(httpx.Response(504, text=""), id="504"),
        pytest.param(httpx.Response(429, json={"error": "Rate limit"}), id="429"),
        pytest.param(httpx.ConnectError("connection refused"), id="connect-error"),
        pytest.param(httpx.ConnectTimeout("connect timeout"), id="connect-timeout"),
        pytest.param(httpx.ReadTimeout("read timeout"), id="read-timeout"),
        pytest.param(httpx.RemoteProtocolError("server disconnected"), id="disconnected"),
    ],
)
async def test_polls_are_retried_until_they_succeed(conn, respx_mock, retry_sleeps, failure):
    route = respx_mock.get(f"{API}/requests/req-1")
    route.side_effect = [failure, failure, httpx.Response(200, json=QUEUED)]
    async with KlingAsyncHook() as hook:
        req = await hook.get_request("req-1")
    assert req.status == "queued"
    assert route.call_count == 3
    assert len(retry_sleeps) == 2


async def test_a_rate_limit_waits_at_least_as_long_as_gmi_asks(conn, respx_mock, retry_sleeps):
    limited = {"error": "Rate limit exceeded. Retry in 4000 ms.", "rate_limit": {"retry_after_ms": 4000}}
    route = respx_mock.get(f"{API}/requests/req-1")
    route.side_effect = [httpx.Response(429, json=limited), httpx.Response(200, json=QUEUED)]
    async with KlingAsyncHook() as hook:
        await hook.get_request("req-1")
    assert route.call_count == 2
    assert retry_sleeps[0] >= 4


async def test_a_rate_limit_longer_than_retry_max_wait_fails_at_once(conn, respx_mock, retry_sleeps):
    limited = {"error": "Rate limit exceeded.", "rate_limit": {"retry_after_ms": 600_000}}
    route = respx_mock.get(f"{API}/requests/req-1").respond(429, json=limited)
    async with KlingAsyncHook(retry_max_wait=30) as hook:
        with pytest.raises(KlingAPIError, match="rate limited") as info:
            await hook.get_request("req-1")
    assert info.value.status_code == 429
    assert route.call_count == 1
    assert retry_sleeps == []


async def test_polls_give_up_after_the_retry_limit(conn, respx_mock, retry_sleeps):
    route = respx_mock.get(f"{API}/requests/req-1").mock(side_effect=httpx.ConnectError("refused"))
    async with KlingAsyncHook(retry_limit=2) as hook:
        with pytest.raises(KlingTransportError, match=r"could not connect to https://gmi\.test") as info:
            await hook.get_request("req-1")
    assert info.value.sent is False
    assert route.call_count == 3
    assert len(retry_sleeps) == 2


async def test_a_404_is_permanent(conn, respx_mock, retry_sleeps):
    route = respx_mock.get(f"{API}/requests/req-1").respond(404, json={"error": "request not found"})
    async with KlingAsyncHook() as hook:
        with pytest.raises(KlingAPIError, match="request not found") as info:
            await hook.get_request("req-1")
    assert info.value.status_code == 404
    assert route.call_count == 1
    assert retry_sleeps == []


async def test_a_refused_key_is_permanent_and_the_message_has_no_key(conn, respx_mock, retry_sleeps):
    route = respx_mock.get(f"{API}/requests/req-1").respond(401, text="")
    async with KlingAsyncHook() as hook:
        with pytest.raises(KlingAPIError, match="Password field") as info:
            await hook.get_request("req-1")
    assert TEST_API_KEY not in str(info.value)
    assert route.call_count == 1


async def test_a_200_answer_that_is_not_json_is_an_api_error(conn, respx_mock):
    respx_mock.get(f"{API}/requests/req-1").respond(200, text="<html>maintenance</html>")
    async with KlingAsyncHook() as hook:
        with pytest.raises(KlingAPIError, match="not a JSON object"):
            await hook.get_request("req-1")


async def test_cancel_is_best_effort(conn, respx_mock, retry_sleeps):
    respx_mock.delete(f"{API}/requests/req-1").respond(405, json={"error": "method not allowed"})
    respx_mock.delete(f"{API}/requests/req-2").respond(
        200, json={"request_id": "req-2", "status": "cancelled"}
    )
    async with KlingAsyncHook() as hook:
        assert await hook.cancel_request("req-1") is False
        assert await hook.cancel_request("req-2") is True


def test_the_async_hook_has_no_key_in_its_repr_and_shares_the_connection_type():
    hook = KlingAsyncHook("my_kling")
    assert repr(hook) == "KlingAsyncHook(kling_conn_id='my_kling')"
    assert KlingAsyncHook.conn_type == KlingHook.conn_type == "kling"
    assert KlingAsyncHook.default_conn_name == "kling_default"

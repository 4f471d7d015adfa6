"""KlingAsyncHook over a real httpx.AsyncClient, with GMI played by the simulator over loopback."""

from __future__ import annotations

import re

import pytest

from airflow_provider_kling import __version__
from airflow_provider_kling.api import KlingAPIError, KlingValidationError
from airflow_provider_kling.exceptions import KlingConnectionNotFound, KlingTransportError
from airflow_provider_kling.hooks import kling as kling_hooks
from airflow_provider_kling.hooks.kling import KlingAsyncHook, KlingHook
from airflow_provider_kling.testing import Fault
from tests.helpers import LOOKUP_SAYS_NOT_FOUND, TEST_API_KEY, TEST_BASE_URL, submit, unreachable_until

REQUEST = "GET /requests/{id}"
QUEUED = {"request_id": "req-1", "model": "kling-3.0-turbo-i2v", "status": "queued"}
DONE = {**QUEUED, "status": "success", "outcome": {"media_urls": ["https://media.test/v.mp4"]}}


@pytest.fixture
def clients(httpx_clients):
    return httpx_clients


@pytest.fixture
def conn(kling_conn, retry_sleeps):
    return kling_conn(extra={"organization_id": "org-7", "timeout": 20})


@pytest.fixture
def sim(kling_simulator, kling_conn, retry_sleeps):
    """The simulator, as the ``kling_default`` connection of organization org-7."""
    kling_conn(
        host=kling_simulator.base_url,
        password=kling_simulator.api_key,
        extra={"organization_id": "org-7", "timeout": 0.5},
    )
    return kling_simulator


def ok(body):
    """A scripted 200 with this JSON body."""
    return Fault(status=200, body=body)


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


async def test_polls_send_the_headers_and_parse_the_record(sim):
    sim.script(REQUEST, [ok(DONE)])
    async with KlingAsyncHook() as hook:
        req = await hook.get_request("req-1")
    assert req.verdict == "success"
    assert req.media_urls == ["https://media.test/v.mp4"]
    headers = sim.last_headers(REQUEST)
    assert headers["authorization"] == "Bearer ***"  # the key: the simulator answers 401 to any other
    assert headers["x-organization-id"] == "org-7"
    assert headers["user-agent"].startswith(f"airflow-provider-kling/{__version__}")


async def test_one_client_serves_every_poll_and_is_closed_on_exit(sim, clients):
    sim.script(REQUEST, [ok(QUEUED)] * 3 + [ok(DONE)])
    async with KlingAsyncHook() as hook:
        statuses = [(await hook.get_request("req-1")).status for _ in range(4)]
        assert len(clients) == 1
        client = clients[0]
        assert not client.is_closed
    assert statuses == ["queued", "queued", "queued", "success"]
    assert sim.count(REQUEST) == 4
    assert client.is_closed
    assert hook._shared is None


async def test_the_client_is_closed_when_the_block_raises(sim, clients):
    with pytest.raises(KlingAPIError):
        async with KlingAsyncHook() as hook:
            await hook.get_request("req-1")  # no such request: a 404
    assert sim.count(REQUEST) == 1
    assert len(clients) == 1
    assert clients[0].is_closed


async def test_use_outside_async_with_raises_a_clear_error(sim):
    request_id = submit(sim)
    hook = KlingAsyncHook()
    with pytest.raises(RuntimeError, match="outside 'async with'"):
        await hook.get_request(request_id)
    async with hook:
        await hook.get_request(request_id)
    with pytest.raises(RuntimeError, match="outside 'async with'"):
        await hook.get_request(request_id)
    assert sim.count(REQUEST) == 1


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(Fault.error(500, "internal"), id="500"),
        pytest.param(Fault(status=502, text="Bad Gateway"), id="502"),
        pytest.param(Fault.error(503, "capacity"), id="503"),
        pytest.param(Fault(status=504, text=""), id="504"),
        pytest.param(Fault.error(429, "Rate limit"), id="429"),
        pytest.param(Fault.slow(2.0), id="read-timeout"),
        pytest.param(Fault.connection_reset(), id="disconnected"),
    ],
)
async def test_polls_are_retried_until_they_succeed(sim, retry_sleeps, failure):
    sim.script(REQUEST, [failure, failure, ok(QUEUED)])
    async with KlingAsyncHook() as hook:
        req = await hook.get_request("req-1")
    assert req.status == "queued"
    assert sim.count(REQUEST) == 3
    assert len(retry_sleeps) == 2


@pytest.mark.parametrize("how", ["refused", "timeout"], ids=["connect-error", "connect-timeout"])
async def test_polls_are_retried_until_gmi_can_be_reached(kling_conn, retry_sleeps, monkeypatch, how):
    monkeypatch.setattr(kling_hooks, "CONNECT_TIMEOUT", 0.2)

    def answers(sim):
        sim.script(REQUEST, [ok(QUEUED)])

    with unreachable_until(how, retry_sleeps, on_start=answers) as url:
        kling_conn(host=url)
        async with KlingAsyncHook() as hook:
            req = await hook.get_request("req-1")
    assert req.status == "queued"
    assert len(retry_sleeps) == 2


async def test_a_rate_limit_waits_at_least_as_long_as_gmi_asks(sim, retry_sleeps):
    limited = {"error": "Rate limit exceeded. Retry in 4000 ms.", "rate_limit": {"retry_after_ms": 4000}}
    sim.script(REQUEST, [Fault(status=429, body=limited), ok(QUEUED)])
    async with KlingAsyncHook() as hook:
        await hook.get_request("req-1")
    assert sim.count(REQUEST) == 2
    assert retry_sleeps[0] >= 4


async def test_a_rate_limit_longer_than_retry_max_wait_fails_at_once(sim, retry_sleeps):
    limited = {"error": "Rate limit exceeded.", "rate_limit": {"retry_after_ms": 600_000}}
    sim.script(REQUEST, [Fault(status=429, body=limited)])
    async with KlingAsyncHook(retry_max_wait=30) as hook:
        with pytest.raises(KlingAPIError, match="rate limited") as info:
            await hook.get_request("req-1")
    assert info.value.status_code == 429
    assert sim.count(REQUEST) == 1
    assert retry_sleeps == []


async def test_polls_give_up_after_the_retry_limit(kling_conn, retry_sleeps):
    with unreachable_until("refused", retry_sleeps, tries=99) as url:
        kling_conn(host=url)
        async with KlingAsyncHook(retry_limit=2) as hook:
            with pytest.raises(KlingTransportError, match=f"could not connect to {re.escape(url)}") as info:
                await hook.get_request("req-1")
    assert info.value.sent is False
    assert len(retry_sleeps) == 2  # three tries


async def test_a_404_is_permanent(sim, retry_sleeps):
    async with KlingAsyncHook() as hook:
        with pytest.raises(KlingAPIError, match="not found") as info:
            await hook.get_request("req-1")  # the simulator has no such request
    assert info.value.status_code == 404
    assert sim.count(REQUEST) == 1
    assert retry_sleeps == []


async def test_a_refused_key_is_permanent_and_the_message_has_no_key(
    kling_simulator, kling_conn, retry_sleeps
):
    kling_conn(host=kling_simulator.base_url)  # TEST_API_KEY, which the simulator refuses
    async with KlingAsyncHook() as hook:
        with pytest.raises(KlingAPIError, match="Password field") as info:
            await hook.get_request("req-1")
    assert TEST_API_KEY not in str(info.value)
    assert kling_simulator.count(REQUEST) == 1


async def test_a_200_answer_that_is_not_json_is_an_api_error(sim):
    sim.script(REQUEST, [Fault(status=200, text="<html>maintenance</html>")])
    async with KlingAsyncHook() as hook:
        with pytest.raises(KlingAPIError, match="not a JSON object"):
            await hook.get_request("req-1")


async def test_cancel_is_best_effort(sim, retry_sleeps):
    request_id = submit(sim)
    sim.script("DELETE /requests/{id}", [Fault.error(405, "method not allowed")])
    async with KlingAsyncHook() as hook:
        assert await hook.cancel_request(request_id) is False
        assert await hook.cancel_request(request_id) is True
    assert sim.record(request_id)["status"] == "cancelled"


def test_the_async_hook_has_no_key_in_its_repr_and_shares_the_connection_type():
    hook = KlingAsyncHook("my_kling")
    assert repr(hook) == "KlingAsyncHook(kling_conn_id='my_kling')"
    assert KlingAsyncHook.conn_type == KlingHook.conn_type == "kling"
    assert KlingAsyncHook.default_conn_name == "kling_default"

"""Triggers in one event loop share HTTP clients: one per connection, a few connections, closed when idle."""

from __future__ import annotations

import asyncio
import json
import math
import time

import httpx
import pytest

from airflow_provider_kling.hooks.kling import KlingAsyncHook
from airflow_provider_kling.testing import Fault
from airflow_provider_kling.transport import clients as clients_module
from airflow_provider_kling.transport.clients import CONNECTIONS_PER_SHARD, shared_clients
from airflow_provider_kling.triggers.kling import KlingStatusTrigger
from tests.helpers import submit


@pytest.fixture
def created(httpx_clients):
    return httpx_clients


async def test_many_triggers_in_one_loop_share_one_client(kling_simulator, kling_connection_env, created):
    kling_simulator.configure(queued_seconds=0, processing_seconds=0.3)
    ids = [submit(kling_simulator) for _ in range(30)]
    triggers = [KlingStatusTrigger(request_id=i, end_time=time.time() + 30, poll_interval=0.05) for i in ids]

    async def wait(trigger: KlingStatusTrigger) -> str:
        (status,) = [event.payload["status"] async for event in trigger.run()]
        return status

    assert await asyncio.gather(*(wait(t) for t in triggers)) == ["success"] * 30
    # 30 polls at once need at most 30/4 clients of 4 connections each, not a client per trigger.
    assert 1 <= len(created) <= math.ceil(30 / CONNECTIONS_PER_SHARD)
    assert all(client.is_closed for client in created)
    assert shared_clients.open_clients() == 0


async def test_concurrent_polls_beyond_one_client_open_another(
    kling_simulator, kling_connection_env, created
):
    # Each poll is held 0.2 s by the server, so more polls at once than one client has connections.
    request_id = submit(kling_simulator)
    kling_simulator.script("GET /requests/{id}", [Fault(status=None, delay=0.2)] * 12)
    async with KlingAsyncHook() as hook:
        records = await asyncio.gather(*(hook.get_request(request_id) for _ in range(12)))
        assert len(created) == 12 // CONNECTIONS_PER_SHARD
    assert {r.request_id for r in records} == {request_id}


async def test_hooks_for_different_connections_do_not_share(
    kling_simulator, kling_connection_env, monkeypatch
):
    other = {"conn_type": "kling", "host": kling_simulator.base_url, "password": kling_simulator.api_key}
    other["extra"] = json.dumps({"organization_id": "org-2"})
    monkeypatch.setenv("AIRFLOW_CONN_KLING_OTHER", json.dumps(other))
    request_id = submit(kling_simulator)
    async with KlingAsyncHook() as first, KlingAsyncHook("kling_other") as second:
        await first.get_request(request_id)
        await second.get_request(request_id)
        assert shared_clients.open_clients() == 2
    assert kling_simulator.last_headers("GET /requests/{id}")["x-organization-id"] == "org-2"


async def test_a_client_is_shared_while_in_use_and_rebuilt_after(
    kling_simulator, kling_connection_env, created
):
    request_id = submit(kling_simulator)
    async with KlingAsyncHook() as one:
        async with KlingAsyncHook() as two:
            await one.get_request(request_id)
            await two.get_request(request_id)
        assert len(created) == 1
        assert not created[0].is_closed  # the first hook still uses it
    assert created[0].is_closed
    async with KlingAsyncHook() as three:
        await three.get_request(request_id)
    assert len(created) == 2


def test_each_event_loop_gets_its_own_client(kling_simulator, kling_connection_env, created):
    request_id = submit(kling_simulator)

    async def poll() -> None:
        async with KlingAsyncHook() as hook:
            await hook.get_request(request_id)

    asyncio.run(poll())
    asyncio.run(poll())
    assert len(created) == 2


async def test_the_tls_context_is_built_once_and_off_the_event_loop(kling_connection_env, monkeypatch):
    clients_module._ssl_context.cache_clear()
    threads = []
    real = httpx.create_ssl_context

    def spy(*args, **kwargs):
        import threading

        threads.append(threading.current_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(httpx, "create_ssl_context", spy)
    for _ in range(3):
        async with KlingAsyncHook():
            pass
    import threading

    assert len(threads) == 1
    assert threads[0] is not threading.main_thread()


async def test_hooks_of_one_connection_share_its_settings_and_their_key_forms(
    kling_simulator, kling_connection_env
):
    from airflow_provider_kling.api import redaction

    request_id = submit(kling_simulator)
    redaction._key_forms.cache_clear()
    async with KlingAsyncHook() as one, KlingAsyncHook() as two:
        # One object for a triggerer's thousands of waits on one connection, not one per wait.
        assert one.settings is two.settings
        for _ in range(20):
            await one.get_request(request_id)
            await two.get_request(request_id)
    # Each poll redacts its answer with every form of the key: computed once, not per poll.
    assert redaction._key_forms.cache_info().misses == 1


async def test_a_connection_whose_key_changed_is_never_served_the_old_key(
    kling_simulator, kling_connection_env, monkeypatch
):
    from airflow_provider_kling.exceptions import KlingAPIError

    request_id = submit(kling_simulator)
    async with KlingAsyncHook() as old:
        await old.get_request(request_id)
        # The key is rotated while a wait still uses the old one: a new wait sends the new key.
        rotated = {**kling_connection_env, "password": "rotated-key-0123456789"}
        monkeypatch.setenv("AIRFLOW_CONN_KLING_DEFAULT", json.dumps(rotated))
        async with KlingAsyncHook() as new:
            assert new.settings.api_key == "rotated-key-0123456789"
            assert old.settings.api_key == kling_simulator.api_key
            with pytest.raises(KlingAPIError, match="401"):
                await new.get_request(request_id)
            assert shared_clients.open_clients() == 2
        assert (await old.get_request(request_id)).request_id == request_id

"""Fixtures shared by every test (the helpers they build on are in ``tests/helpers.py``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.helpers import RUN_ID, TEST_API_KEY, TEST_BASE_URL, FakeTI, make_jpeg_header, make_png


@pytest.fixture(scope="session")
def png_bytes() -> bytes:
    """A valid 320x320 PNG: large enough for GMI's published 300 px minimum; a few hundred bytes."""
    return make_png(320, 320)


@pytest.fixture(scope="session")
def jpeg_bytes() -> bytes:
    """A 320x320 JPEG header: sniffable and sized, not decodable."""
    return make_jpeg_header(320, 320)


@pytest.fixture
def context() -> dict[str, Any]:
    """What a task's ``execute`` is given: a task instance recording XComs, a run id, asset events."""
    from airflow.sdk.execution_time.context import OutletEventAccessors

    return {"ti": FakeTI(), "run_id": RUN_ID, "outlet_events": OutletEventAccessors()}


@pytest.fixture
def kling_conn(monkeypatch: pytest.MonkeyPatch) -> Callable[..., dict[str, Any]]:
    """
    Set ``AIRFLOW_CONN_KLING_DEFAULT`` (restored after the test) to a JSON ``kling`` connection.

    Call it with the fields to use; by default ``host`` is ``TEST_BASE_URL`` and ``password``
    ``TEST_API_KEY`` (see ``tests/helpers.py``). ``extra`` is a dict. Returns the connection dict.
    ``conn_id`` picks another connection id (``AIRFLOW_CONN_<ID>``).
    """

    def configure(conn_id: str = "kling_default", **fields: Any) -> dict[str, Any]:
        connection = {"conn_type": "kling", "host": TEST_BASE_URL, "password": TEST_API_KEY, **fields}
        connection = {k: v for k, v in connection.items() if v is not None}
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))
        return connection

    return configure


class _Done:
    """An awaitable that finishes at once, so one sleep function serves sync and async retries."""

    def __await__(self) -> Any:
        return iter(())


class Sleeps(list[float]):
    """The retry sleeps asked for, in order; :meth:`then` acts between two tries."""

    def __init__(self) -> None:
        super().__init__()
        self.actions: dict[int, Callable[[], Any]] = {}

    def then(self, count: int, action: Callable[[], Any]) -> None:
        """Run ``action`` when the ``count``-th sleep is asked for, before the next try."""
        self.actions[count] = action

    def __call__(self, seconds: float) -> _Done:
        self.append(float(seconds))
        action = self.actions.pop(len(self), None)
        if action is not None:
            action()
        return _Done()


@pytest.fixture
def retry_sleeps(monkeypatch: pytest.MonkeyPatch) -> Sleeps:
    """
    Make the hooks' retry sleeps instant, and record how long each one was asked to be.

    The backoff and the server's ``Retry-After`` hints are still computed exactly as in
    production; only the sleeping is skipped. Returns the list of requested sleeps.
    """
    from airflow_provider_kling.transport import retries

    sleeps = Sleeps()
    original = retries.retry_policy

    def policy(**kwargs: Any) -> dict[str, Any]:
        return {**original(**kwargs), "sleep": sleeps}

    monkeypatch.setattr(retries, "retry_policy", policy)
    return sleeps


@pytest.fixture
def no_settle(monkeypatch: pytest.MonkeyPatch) -> None:
    """No pause before GMI's requests are listed again after a lost submit answer."""
    from airflow_provider_kling.tasks import submit_once

    monkeypatch.setattr(submit_once, "SETTLE_SECONDS", 0.0)


@pytest.fixture
def httpx_clients(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every ``httpx.AsyncClient`` created during the test, in order."""
    import httpx

    created: list[httpx.AsyncClient] = []

    class CountingClient(httpx.AsyncClient):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            created.append(self)

    monkeypatch.setattr(httpx, "AsyncClient", CountingClient)
    return created

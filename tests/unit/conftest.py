"""Fixtures of the unit tests: no settle pause, a finished request, an empty metadata database."""

from __future__ import annotations

import time
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _no_settle(no_settle: None) -> None:
    """Unit tests never pause before listing GMI's requests again (see ``no_settle``)."""


@pytest.fixture
def finished(kling_simulator: Any, kling_connection_env: Any) -> dict[str, Any]:
    """A request that succeeded at the simulator, as the sensor returns it."""
    from airflow_provider_kling.api.events import event_from_record, result_of
    from airflow_provider_kling.hooks.kling import KlingHook

    hook = KlingHook()
    record = hook.submit("kling-3.0-turbo-i2v", {"first_frame": "https://e.x/a.png", "prompt": "steam"})
    for _ in range(100):
        current = hook.get_request(record.request_id)
        if current.verdict == "success":
            return dict(result_of(event_from_record(current)))
        time.sleep(0.05)
    raise AssertionError("the simulator did not finish the request")


@pytest.fixture(scope="session")
def _empty_metadata_db(tmp_path_factory: pytest.TempPathFactory):
    """Airflow's whole schema in a SQLite file, created once (it takes seconds)."""
    from sqlalchemy import create_engine

    from devtools.seed import create_metadata_tables

    path = tmp_path_factory.mktemp("metadata") / "airflow.db"
    engine = create_engine(f"sqlite:///{path}")
    create_metadata_tables(engine)
    engine.dispose()
    return path


@pytest.fixture
def metadata_engine(_empty_metadata_db, tmp_path):
    """A fresh, empty copy of Airflow's metadata database for one test."""
    import shutil

    from sqlalchemy import create_engine

    path = tmp_path / "airflow.db"
    shutil.copyfile(_empty_metadata_db, path)
    engine = create_engine(f"sqlite:///{path}")
    yield engine
    engine.dispose()

"""Airflow's own task runner retries a Kling task: the retry reuses the first try's request."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from airflow import __version__ as airflow_version
from packaging.version import Version

from airflow_provider_kling.testing import Fault

DAGS = Path(__file__).parent / "dags"
HAS_TASK_STATE_STORE = Version(airflow_version) >= Version("3.3.0")


@pytest.mark.kling_simulator(queued_seconds=1, processing_seconds=3)
def test_a_retried_task_waits_for_the_same_request(airflow_cli, kling_simulator):
    # The first try's first poll is refused: the hook does not retry a 403, so the try fails.
    kling_simulator.script("GET /requests/{id}", [Fault.error(403, "temporarily forbidden")])
    code, log = airflow_cli("dags", "test", "kling_retry_reuse", AIRFLOW__CORE__DAGS_FOLDER=str(DAGS))
    assert "temporarily forbidden" in log, log[-4000:]  # the first try did fail
    assert code == 0, log[-4000:]
    if HAS_TASK_STATE_STORE:
        assert "Reusing Kling request" in log, log[-4000:]
        assert kling_simulator.count("POST /requests") == 1
    else:  # documented: before Airflow 3.3 every try submits
        assert kling_simulator.count("POST /requests") == 2


@pytest.mark.kling_simulator(queued_seconds=1, processing_seconds=1)
def test_a_resumed_task_keeps_the_price_it_was_capped_at(airflow_env, airflow_cli, kling_simulator):
    code, log = airflow_cli("dags", "test", "kling_deferred_price", AIRFLOW__CORE__DAGS_FOLDER=str(DAGS))
    assert code == 0, log[-4000:]
    with sqlite3.connect(Path(airflow_env["AIRFLOW_HOME"]) / "airflow.db") as db:
        [(extra,)] = db.execute(
            "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE a.uri = ?",
            ("kling://videos/priced",),
        ).fetchall()
        values = dict(
            db.execute("SELECT key, value FROM xcom WHERE dag_id = 'kling_deferred_price'").fetchall()
        )
    assert json.loads(extra)["estimated_cost_usd"] == pytest.approx(0.56)
    assert json.loads(values["return_value"])["estimated_cost_usd"] == pytest.approx(0.56)
    assert json.loads(values["kling_request"])["estimated_cost_usd"] == pytest.approx(0.56)

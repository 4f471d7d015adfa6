"""What a user sees first, from the real `airflow` CLI: the connection check, and a missing connection."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.compat import AIRFLOW_V_3_2_PLUS
from tests.integration.conftest import error_lines

DAGS = Path(__file__).parent / "dags"
TESTING_ON = {"AIRFLOW__CORE__TEST_CONNECTION": "Enabled"}


def test_connections_test_reports_the_models_the_key_may_call(airflow_cli, kling_simulator):
    code, log = airflow_cli("connections", "test", "kling_default", "--verbose", **TESTING_ON)
    assert code == 0, log[-3000:]
    assert "Connection success!" in log
    assert re.search(
        rf"Connected to GMI Cloud at {re.escape(kling_simulator.base_url)}: \d+ models served, "
        r"kling-3.0-turbo-i2v among them\. The models this provider knows: kling-3.0-turbo-i2v matches "
        r"GMI's detail; kling-3.0-turbo-t2v matches GMI's detail; kling-v3-image-to-video matches "
        r"GMI's detail\.",
        log,
    ), log[-3000:]
    assert kling_simulator.count("POST /requests") == 0  # free: nothing was submitted


def test_connections_test_catches_a_wrong_key_for_free(airflow_cli, kling_simulator):
    wrong = {"conn_type": "kling", "host": kling_simulator.base_url, "password": "not-the-key"}
    code, log = airflow_cli(
        "connections", "test", "kling_default", AIRFLOW_CONN_KLING_DEFAULT=json.dumps(wrong), **TESTING_ON
    )
    # Airflow 3.1's CLI exits 0 whatever the test found; it still says so.
    assert code == (1 if AIRFLOW_V_3_2_PLUS else 0)
    assert "Connection failed!" in log
    assert "HTTP 401" in log, log[-3000:]
    assert "Password field" in log
    assert kling_simulator.count("POST /requests") == 0


@pytest.mark.skipif(not AIRFLOW_V_3_2_PLUS, reason="Airflow 3.1's `dags test` does not print the task's log")
def test_a_missing_connection_is_the_first_error_and_names_the_fix(airflow_cli):
    code, log = airflow_cli("dags", "test", "kling_missing_connection", AIRFLOW__CORE__DAGS_FOLDER=str(DAGS))
    assert code != 0
    errors = error_lines(log)
    assert errors, log[-3000:]
    assert "Invalid kling_conn_id: no connection 'kling_prod' is defined" in errors[0], log[-5000:]
    assert "airflow connections add kling_prod --conn-type kling" in errors[0]
    # Airflow's own "The conn_id `kling_prod` isn't defined" is not shown at all, not even chained.
    assert "isn't defined" not in log

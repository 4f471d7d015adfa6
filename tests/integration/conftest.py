"""A migrated Airflow home, and the `airflow` CLI run in it, for tests that run real Airflow processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW = Path(sys.executable).parent / "airflow"


@pytest.fixture(scope="session")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("airflow_home")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "example_dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    }
    subprocess.run([str(AIRFLOW), "db", "migrate"], env=env, check=True, capture_output=True, timeout=600)
    return env


@pytest.fixture
def airflow_cli(airflow_env: dict[str, str], kling_simulator: Any) -> Callable[..., tuple[int, str]]:
    """
    Run ``airflow <args>`` in the shared home with ``kling_default`` pointing at this test's
    simulator; keyword arguments add environment variables. Returns the exit code and output.
    """
    connection = {"conn_type": "kling", "host": kling_simulator.base_url, "password": kling_simulator.api_key}
    base = {**airflow_env, "AIRFLOW_CONN_KLING_DEFAULT": json.dumps(connection)}

    def run(*args: str, **env: str) -> tuple[int, str]:
        proc = subprocess.run(
            [str(AIRFLOW), *args], env={**base, **env}, capture_output=True, text=True, timeout=600
        )
        return proc.returncode, proc.stdout + proc.stderr

    return run


def error_lines(log: str) -> list[str]:
    """The lines Airflow's structured log wrote at error level or above."""
    return [line for line in log.splitlines() if "[error" in line or "[critical" in line]

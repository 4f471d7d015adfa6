"""The troubleshooting page names every exception the provider raises."""

from __future__ import annotations

import inspect
import os
import subprocess

import airflow_provider_kling.exceptions as exceptions_module
from tests.docs.blocks import ROOT
from tests.docs.conftest import BIN

PAGE = ROOT / "docs" / "troubleshooting.rst"


def test_every_exception_class_has_a_section():
    page = PAGE.read_text()
    classes = {
        name
        for name, value in vars(exceptions_module).items()
        if inspect.isclass(value)
        and issubclass(value, BaseException)
        and value.__module__.startswith("airflow_provider_kling")
    }
    assert "KlingConnectionNotFound" in classes  # the scan found this module's own classes
    missing = sorted(name for name in classes if f"``{name}``" not in page)
    assert missing == []


def test_the_upstream_test_connection_bug_and_its_workaround_are_named():
    page = PAGE.read_text()
    assert "apache/airflow#73298" in page
    assert "airflow connections test kling_default" in page


def test_the_command_line_test_of_a_stored_connection_works(airflow_home, kling_simulator):
    # The workaround the page gives for the 3.3.2 UI: a connection stored without a port.
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
    }
    env.pop("AIRFLOW_CONN_KLING_DEFAULT", None)
    add = ["airflow", "connections", "add", "kling_default", "--conn-type", "kling"]
    add += ["--conn-host", kling_simulator.base_url, "--conn-password", kling_simulator.api_key]
    subprocess.run(add, env=env, check=True, capture_output=True, timeout=300)
    proc = subprocess.run(
        ["airflow", "connections", "test", "kling_default"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Connection success!" in proc.stdout, proc.stdout


def test_a_parse_time_error_is_found_with_list_import_errors(airflow_home, tmp_path):
    # What the page says `airflow dags test` answers, and where the real error is instead.
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "my_videos.py").write_text(
        "import pendulum\n"
        "from airflow.sdk import DAG\n"
        "from airflow_provider_kling.operators.kling import KlingI2VOperator\n"
        "with DAG(dag_id='my_videos', schedule=None, start_date=pendulum.datetime(2026, 1, 1)):\n"
        "    KlingI2VOperator(task_id='submit', first_frame='https://example.com/a.png', resolution='4k')\n"
    )
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }

    def airflow(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["airflow", *args], env=env, capture_output=True, text=True, timeout=300)

    test = airflow("dags", "test", "my_videos")
    assert test.returncode != 0
    assert "Dag 'my_videos' could not be found; either it does not exist or it failed to parse" in (
        test.stdout + test.stderr
    )
    listed = airflow("dags", "list-import-errors")
    assert listed.returncode == 1, listed.stdout + listed.stderr  # any import error: exit status 1
    assert "Invalid resolution: '4k' is not supported. Allowed: '720p' or '1080p'." in listed.stdout

"""The deployment helper is an ordinary module, but one nothing loads unless asked to."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from airflow_provider_kling.testing import deployment


def test_no_entry_point_or_dag_import_loads_the_deployment_helper() -> None:
    # What the provider manager, the pytest plugin and a DAG file import, in a fresh interpreter.
    code = (
        "import sys, json\n"
        "import airflow_provider_kling, airflow_provider_kling.get_provider_info\n"
        "import airflow_provider_kling.testing, airflow_provider_kling.testing.pytest_plugin\n"
        "import airflow_provider_kling.operators.kling, airflow_provider_kling.sensors.kling\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('airflow_provider_kling'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "airflow_provider_kling.testing.deployment" not in json.loads(result.stdout.splitlines()[-1])


def test_cli_runs_as_a_module() -> None:
    command = [sys.executable, "-m", "airflow_provider_kling.testing.deployment", "--help"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "up" in result.stdout
    assert "--dags-folder" in result.stdout


def test_up_refuses_a_missing_dags_folder(tmp_path: Path) -> None:
    code = deployment.main(["up", "--home", str(tmp_path / "home"), "--dags-folder", str(tmp_path / "none")])
    assert code == 2
    assert not (tmp_path / "home").exists()


def test_down_without_a_stack_is_a_no_op(tmp_path: Path, capsys) -> None:
    assert deployment.main(["down", "--home", str(tmp_path)]) == 0
    assert "No stack recorded" in capsys.readouterr().out

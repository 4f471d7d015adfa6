"""A migrated Airflow home the docs' commands run in, copied fresh for each block."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def migrated_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("docs_airflow_home")
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    subprocess.run(
        [str(BIN / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True, timeout=600
    )
    return home


@pytest.fixture
def airflow_home(migrated_home: Path, tmp_path: Path) -> Path:
    """A home of this test's own: the commands of one block cannot see another's connections."""
    home = tmp_path / "airflow_home"
    shutil.copytree(migrated_home, home)
    # airflow.cfg names its database (and logs) by absolute path: point them at the copy.
    config = home / "airflow.cfg"
    config.write_text(config.read_text().replace(str(migrated_home), str(home)))
    return home


def run_bash(script: str, cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    """A block's commands as a shell runs them: stop at the first failure, end its background jobs."""
    return subprocess.run(
        ["bash", "-c", "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" + script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )

"""The wheel carries what users run: the provider, the simulator and its pytest plugin, nothing else.

This repository's own tools (``devtools/``: the deployment launcher, the database seeder), its
tests, benchmarks and docs stay in the checkout. The wheel is built as a user builds it and its
simulator and plugin are then run from the unpacked wheel alone, away from this checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UV = ROOT / ".venv-tools" / "bin" / "uv"
LAUNCHER = ("deployment", "topology", "processes", "seed", "history")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    uv = str(UV) if UV.exists() else shutil.which("uv")
    assert uv, "uv is installed by `make venv` into .venv-tools"
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [uv, "build", "--wheel", "--quiet", "--out-dir", str(out), str(ROOT)], check=True, timeout=300
    )
    (built,) = out.glob("airflow_provider_kling-*.whl")
    return built


def test_the_wheel_holds_the_provider_simulator_and_plugin_but_no_repository_tools(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"airflow_provider_kling"}
    testing = {name.removeprefix("airflow_provider_kling/testing/") for name in names if "/testing/" in name}
    assert {"simulator.py", "pytest_plugin.py", "cli.py", "readiness.py", "data/sample.mp4"} <= testing
    assert not {f"{module}.py" for module in LAUNCHER} & testing
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    plugins = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "kling = airflow_provider_kling.testing.pytest_plugin" in plugins


def test_the_simulator_and_plugin_run_from_the_wheel_alone(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    user_test = tmp_path / "project" / "test_my_dag.py"
    user_test.parent.mkdir()
    user_test.write_text(
        textwrap.dedent(
            f"""
            import importlib.util

            import requests

            import airflow_provider_kling


            def test_submit(kling_simulator):
                assert airflow_provider_kling.__file__.startswith({str(site)!r})
                assert importlib.util.find_spec("devtools") is None  # the checkout is out of reach
                answer = requests.post(
                    kling_simulator.api_url + "/requests",
                    json={{"model": "kling-3.0-turbo-i2v",
                           "payload": {{"first_frame": "https://example.com/a.png", "prompt": "sea"}}}},
                    headers={{"Authorization": f"Bearer {{kling_simulator.api_key}}"}},
                    timeout=10,
                )
                assert answer.status_code == 200, answer.text
                assert kling_simulator.count("POST /requests") == 1
            """
        )
    )
    # This checkout's editable install puts it on sys.path; a user's machine has only the wheel.
    # Python runs sitecustomize after the .pth files, so it can take the checkout off the path.
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(
        f"import sys\nsys.path[:] = [p for p in sys.path if p != {str(ROOT)!r}]\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{shim}"}
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(user_test)]
    result = subprocess.run(argv, cwd=user_test.parent, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "1 passed" in result.stdout
    help_text = subprocess.run(
        [sys.executable, "-m", "airflow_provider_kling.testing.simulator", "--help"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert help_text.returncode == 0, help_text.stderr
    assert "--port" in help_text.stdout

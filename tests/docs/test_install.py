"""The install commands of the README and the docs, run as written in a fresh virtual environment."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from tests.docs.blocks import ROOT, code_blocks
from tests.docs.conftest import run_bash

UV = ROOT / ".venv-tools" / "bin" / "uv"
LOCK = ROOT / "requirements" / "airflow-3.3.txt"


def test_install_commands_work_in_a_fresh_environment(tmp_path):
    blocks = code_blocks("install")
    scripts = list(dict.fromkeys(block.commands() for block in blocks))  # each distinct block once
    assert scripts, "no install block found"
    # A checkout as a user has it: the tracked and new files, none of this machine's build output.
    checkout = tmp_path / "airflow-provider-kling"
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (checkout / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, checkout / name)
    venv = tmp_path / "venv"
    uv = str(UV) if UV.exists() else shutil.which("uv")
    assert uv, "uv is installed by `make venv` into .venv-tools"
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    subprocess.run([uv, "venv", "--quiet", "--seed", "--python", python, str(venv)], check=True)
    # Airflow itself from the lock (uv's cache makes this quick); the commands install the provider.
    env = {**os.environ, "VIRTUAL_ENV": str(venv)}
    subprocess.run([uv, "pip", "install", "--quiet", "-r", str(LOCK)], env=env, check=True, timeout=900)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"
    env["AIRFLOW_HOME"] = str(tmp_path / "airflow_home")
    for script in scripts:
        proc = run_bash(script, checkout, env, timeout=900)
        assert proc.returncode == 0, f"{script}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    # The provider came from the install, not from this checkout's editable .venv.
    check = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import airflow_provider_kling as p; print(p.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert str(venv) in check.stdout
    listed = subprocess.run(
        [str(venv / "bin" / "airflow"), "providers", "list"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "airflow-provider-kling" in listed.stdout

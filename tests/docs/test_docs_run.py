"""Every console and Python block of the README and the docs runs as written (see ``blocks.py``)."""

from __future__ import annotations

import ast
import contextlib
import os
import re
import socket
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from tests.docs.blocks import CODE_LANGUAGES, KINDS, ROOT, Block, all_blocks, code_blocks
from tests.docs.conftest import BIN, run_bash

# Blocks in these languages show text, not code to run.
SHOWN_LANGUAGES = frozenset({"text", "json", "ini", "yaml", "toml", "http", "none"})
# The port the docs use for a simulator; each block gets a free one instead, so runs in parallel
# (and anything else on this machine) cannot collide.
DOCS_PORT = "8765"
COMMAND_KINDS = frozenset({"install", "simulator", "pytest-setup"})


def _free_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


def test_every_block_is_classified():
    problems = []
    for block in all_blocks():
        where = f"{block.id} ({block.language or 'no language'})"
        # Code in another language (a Dockerfile) cannot run here: it must say so with a skip.
        if block.language not in CODE_LANGUAGES | SHOWN_LANGUAGES and block.kind != "skip":
            problems.append(f"{where}: unknown language; mark it or use one of {sorted(CODE_LANGUAGES)}")
        elif block.kind not in KINDS:
            problems.append(f"{where}: unknown docs-test kind {block.kind!r}")
        elif block.kind == "skip" and not block.reason:
            problems.append(f"{where}: a skipped block must say why it cannot run offline")
        elif block.kind in {"install", "simulator", "pytest-setup"} and block.language not in {
            "console",
            "bash",
            "sh",
        }:
            problems.append(f"{where}: {block.kind} is for command blocks")
        elif block.kind == "pytest" and block.language != "python":
            problems.append(f"{where}: pytest is for Python blocks")
        if block.language == "python":
            try:
                ast.parse(block.text)
            except SyntaxError as err:
                problems.append(f"{where}: not valid Python: {err}")
    assert problems == []


def test_the_collector_finds_the_blocks_it_must_run():
    # A parser that silently found nothing would pass every other test.
    kinds = defaultdict(int)
    for block in code_blocks():
        kinds[block.kind] += 1
    assert kinds["run"] >= 20
    assert kinds["pytest"] >= 2
    assert kinds["install"] >= 1


# --- Python ------------------------------------------------------------------------------------


def _pages_with_python() -> list[Path]:
    return sorted({b.path for b in code_blocks("run") if b.language == "python"})


@pytest.mark.parametrize("page", _pages_with_python(), ids=lambda p: str(p.relative_to(ROOT)))
def test_python_blocks_of_a_page_run_in_order(page, kling_connection_env, monkeypatch, tmp_path):
    """A page's Python blocks share one namespace, as a reader's session would."""
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for block in code_blocks("run"):
        if block.path != page or block.language != "python":
            continue
        try:
            exec(compile(block.text, block.id, "exec"), namespace)
        except Exception as err:
            pytest.fail(f"{block.id} failed: {type(err).__name__}: {err}")


# --- commands ----------------------------------------------------------------------------------


def _command_blocks() -> list[Block]:
    return [b for b in code_blocks() if b.kind in {"run", "simulator"} and b.language != "python"]


@pytest.mark.parametrize("block", _command_blocks(), ids=lambda b: b.id)
def test_command_block_runs(block, airflow_home, tmp_path):
    port = _free_port()
    script = block.commands().replace(DOCS_PORT, port)
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "GMI_API_KEY": "docs-test-key",
    }
    env.pop("AIRFLOW_CONN_KLING_DEFAULT", None)
    with contextlib.ExitStack() as stack:
        if block.kind == "simulator":
            from airflow_provider_kling.testing import KlingSimulator

            stack.enter_context(KlingSimulator(port=int(port)))
        proc = run_bash(script, ROOT, env, timeout=600)
    assert proc.returncode == 0, f"{block.id}:\n{script}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"


# --- pytest blocks, in the documented project layout -------------------------------------------

QUICK_START_DAG = 'dag_id="kling_quick_start"'


def test_pytest_blocks_pass_in_the_documented_layout(airflow_home, tmp_path):
    project = tmp_path / "my_project"
    (project / "dags").mkdir(parents=True)
    (project / "tests").mkdir()
    (dag,) = [b for b in code_blocks("run") if b.language == "python" and QUICK_START_DAG in b.text]
    (project / "dags" / "kling_quick_start.py").write_text(dag.text)
    for block in code_blocks("pytest"):
        name = re.sub(r"\W", "_", block.id.removesuffix(".rst")).lower()
        (project / "tests" / f"test_{name}.py").write_text(block.text)
    env = {**os.environ, "AIRFLOW_HOME": str(airflow_home), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("AIRFLOW__CORE__DAGS_FOLDER", None)
    env.pop("AIRFLOW_CONN_KLING_DEFAULT", None)
    setup = "".join(b.commands() for b in code_blocks("pytest-setup"))
    # The setup's exports must reach pytest, so both run in one shell.
    script = f"set -euo pipefail\n{setup}{sys.executable} -m pytest -q -p no:cacheprovider tests\n"
    proc = subprocess.run(
        ["bash", "-c", script], cwd=project, env=env, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, f"{script}\n{proc.stdout[-5000:]}\n{proc.stderr[-3000:]}"
    passed = re.search(r"(\d+) passed", proc.stdout)
    assert passed, proc.stdout[-3000:]
    assert int(passed.group(1)) == sum(b.text.count("\ndef test_") for b in code_blocks("pytest"))

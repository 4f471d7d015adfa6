"""The test suite's own layout: each folder has its make target, and helpers live in one place."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"


def recipes() -> dict[str, tuple[list[str], list[str]]]:
    """Each Makefile target: its prerequisites and its recipe lines."""
    targets: dict[str, tuple[list[str], list[str]]] = {}
    current: list[str] | None = None
    for line in (ROOT / "Makefile").read_text().splitlines():
        if line.startswith("\t") and current is not None:
            current.append(line.strip())
        elif match := re.match(r"^([\w.-]+):(?!=)\s*(.*)$", line):
            current = []
            targets[match[1]] = (match[2].split(), current)
        else:
            current = None
    return targets


def folders_run_by(target: str) -> set[str]:
    """The tests/ folders a target's pytest runs."""
    return {
        folder
        for line in recipes()[target][1]
        if "pytest" in line
        for folder in re.findall(r"\btests/(\w+)", line)
    }


def test_every_test_folder_has_a_make_target_that_runs_only_it_and_make_test_runs_them_all():
    folders = {p.parent.name for p in TESTS.glob("*/test_*.py")}
    assert folders == {"unit", "integration", "simulator", "docs", "e2e"}
    target_of = {"unit": "unit", "integration": "integration", "simulator": "simulator-test"}
    target_of |= {"docs": "docs-test", "e2e": "e2e"}
    for folder, target in target_of.items():
        assert folders_run_by(target) == {folder}, target
    assert set(target_of.values()) <= set(recipes()["test"][0])


def test_the_floor_runs_the_unit_integration_and_simulator_tests_on_the_oldest_airflow():
    assert folders_run_by("floor") == {"unit", "integration", "simulator"}
    assert all(line.startswith("$(FLOOR_VENV)/bin/python") for line in recipes()["floor"][1])


def test_no_test_module_imports_from_another_test_module():
    # Shared helpers and fakes live in tests/helpers.py (fixtures in conftest.py), where a
    # newcomer looks for them; a test module that others import from hides them.
    offenders = []
    for path in TESTS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and re.search(r"(^|\.)test_\w+$", node.module or ""):
                offenders.append(f"{path.relative_to(ROOT)}: from {node.module}")
    assert offenders == []

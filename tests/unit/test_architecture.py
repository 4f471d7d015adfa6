"""The rules of docs/architecture.rst that a machine can check, so the shape cannot drift back."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import airflow_provider_kling

PACKAGE = Path(airflow_provider_kling.__file__).parent
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)
MAX_LINES = 400


def name_of(path: Path) -> str:
    return ".".join(
        ("airflow_provider_kling", *path.relative_to(PACKAGE).with_suffix("").parts)
    ).removesuffix(".__init__")


def provider_imports(path: Path) -> set[str]:
    """Every provider module this file imports, at any depth (lazy imports count too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("airflow_provider_kling")
        ):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("airflow_provider_kling"))
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_is_longer_than_the_limit(path):
    assert len(path.read_text().splitlines()) <= MAX_LINES


def test_the_api_layer_imports_nothing_above_it():
    for path in (PACKAGE / "api").glob("*.py"):
        above = {m for m in provider_imports(path) if not m.startswith("airflow_provider_kling.api")}
        assert above == set(), path


def test_transport_and_hooks_know_nothing_of_tasks():
    task_side = ("operators", "sensors", "triggers", "tasks", "links", "plugins")
    for folder in ("transport", "hooks"):
        for path in (PACKAGE / folder).glob("*.py"):
            for module in provider_imports(path):
                assert [*module.split("."), ""][1] not in task_side, (path, module)


def test_operators_and_sensors_never_import_each_other():
    for path in (PACKAGE / "sensors").glob("*.py"):
        assert not any(m.startswith("airflow_provider_kling.operators") for m in provider_imports(path)), path
    for path in (PACKAGE / "operators").glob("*.py"):
        assert not any(m.startswith("airflow_provider_kling.sensors") for m in provider_imports(path)), path


def test_exceptions_are_defined_in_the_exceptions_modules_only():
    """The simulator's own internal errors aside, every exception class lives in one of two places."""
    allowed = {PACKAGE / "exceptions.py", PACKAGE / "api" / "errors.py"}
    for path in MODULES:
        if path in allowed or "testing" in path.relative_to(PACKAGE).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
                assert not any(b.endswith(("Error", "Exception")) for b in bases), (path, node.name)


def test_one_definition_of_a_transient_error():
    """The retry policy and the polling step both ask KlingError.transient; no list of statuses elsewhere."""
    for path in MODULES:
        if path == PACKAGE / "api" / "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assign):
                targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
                assert not any("TRANSIENT" in t for t in targets), (path, targets)


def test_the_package_imports_nothing_from_the_repository_around_it():
    """Nothing in devtools/, tests/, bench/ or example_dags/ is in the wheel: a user's import would fail."""
    repository_only = {"devtools", "tests", "bench", "example_dags"}
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            assert not {name.split(".")[0] for name in names} & repository_only, (path, names)

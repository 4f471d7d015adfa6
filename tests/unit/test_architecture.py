"""The rules of docs/architecture.rst that a machine can check, so the shape cannot drift back."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path
from typing import get_args

import pytest

import airflow_provider_kling
from airflow_provider_kling.api import GMI_STATUSES
from airflow_provider_kling.api.events import EVENT_STATUSES, EventStatus

PACKAGE = Path(airflow_provider_kling.__file__).parent
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)
MAX_LINES = 400
PAGE = Path(__file__).parents[2] / "docs" / "architecture.rst"
#: Base names two modules may share, and why (docs/architecture.rst says the same).
SHARED_NAMES = {
    "kling": "the class of each kind (hook, operator, sensor, trigger, link, plugin), as providers name it",
    "budget": "one concept at two layers: the price arithmetic in api/, the operator in operators/",
    "review": "one concept at two layers: the review loop's rules in api/, its operators in operators/",
    "app": "the ASGI app of each server: the simulator's and the view's",
}


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


def relative(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


def layers_on_the_page() -> list[list[str]]:
    """The first column of the layer table, bottom first: each layer's paths (``api/``, ``exceptions.py``)."""
    text = PAGE.read_text()
    table = text[text.index("The layers\n") :]
    table = table[table.index(".. list-table::") : table.index("\n\n", table.index("* - Layer"))]
    rows = re.findall(r"^   \* - (.+)$", table, flags=re.MULTILINE)
    assert rows[0] == "Layer", rows
    return [re.findall(r"``([^`]+)``", row) for row in rows[1:]]


def layer_of(module_path: str, layers: list[list[str]]) -> int:
    found = [
        i
        for i, paths in enumerate(layers)
        for path in paths
        if module_path == path or (path.endswith("/") and module_path.startswith(path))
    ]
    assert len(found) == 1, f"{module_path} is in {len(found)} layers of docs/architecture.rst"
    return found[0]


def imported_paths(path: Path) -> set[str]:
    """The package's modules this file imports, as paths, at any depth (``TYPE_CHECKING`` too)."""
    found: set[str] = set()

    def as_path(dotted: str) -> str | None:
        parts = dotted.split(".")[1:]
        for candidate in ("/".join(parts) + ".py", "/".join([*parts, "__init__.py"])):
            if (PACKAGE / candidate).exists():
                return candidate
        return None

    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] == "airflow_provider_kling":
                # ``from package import module`` names the module, not only the package.
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.split(".")[0] == "airflow_provider_kling"]
        found.update(p for p in map(as_path, names) if p is not None)
    return found


def test_every_module_is_on_the_architecture_page():
    text = PAGE.read_text()
    missing = []
    for path in MODULES:
        name = relative(path)
        dotted = name_of(path)
        if f"``{name}``" not in text and dotted not in text:
            missing.append(name)
    assert missing == [], f"Name these on docs/architecture.rst, in their layer's row: {missing}"


def test_every_module_imports_only_from_its_layer_or_below():
    layers = layers_on_the_page()
    upward = []
    for path in MODULES:
        mine = layer_of(relative(path), layers)
        for target in sorted(imported_paths(path)):
            if layer_of(target, layers) > mine:
                upward.append(f"{relative(path)} imports {target}")
    assert upward == [], "Move the import, or the layer on docs/architecture.rst:\n" + "\n".join(upward)


def test_the_layer_check_sees_lazy_and_type_only_imports():
    """What the layer rule would miss if it looked at module-level imports only."""
    layers = layers_on_the_page()
    mixin = imported_paths(PACKAGE / "tasks" / "mixin.py")
    assert "hooks/kling.py" in mixin  # under TYPE_CHECKING only
    assert layer_of("hooks/kling.py", layers) < layer_of("tasks/mixin.py", layers)
    assert "plugins/app.py" in imported_paths(PACKAGE / "plugins" / "kling.py")  # inside a function
    assert [layer_of(p, layers) for p in ("api/records.py", "exceptions.py", "transport/urls.py")] == sorted(
        layer_of(p, layers) for p in ("api/records.py", "exceptions.py", "transport/urls.py")
    )


def test_no_two_modules_share_a_base_name_without_a_reason():
    by_name: dict[str, list[str]] = defaultdict(list)
    for path in MODULES:
        if path.name != "__init__.py":
            by_name[path.stem].append(relative(path))
    shared = {name: paths for name, paths in by_name.items() if len(paths) > 1}
    assert set(shared) == set(SHARED_NAMES), shared
    text = PAGE.read_text()
    assert all(f"``{name}.py``" in text for name in SHARED_NAMES)


@pytest.mark.parametrize("path", MODULES, ids=relative)
def test_every_module_says_first_what_it_owns(path):
    docstring = ast.get_docstring(ast.parse(path.read_text()))
    assert docstring, relative(path)
    assert docstring.splitlines()[0].strip(), relative(path)


def test_one_set_of_gmi_statuses():
    """GMI's statuses are spelled out in api/records.py only; every other set is made from it."""
    assert set(get_args(EventStatus)) == EVENT_STATUSES
    for path in MODULES:
        if relative(path) == "api/records.py":
            continue
        tree = ast.parse(path.read_text())
        typed = {id(n.slice) for n in ast.walk(tree) if isinstance(n, ast.Subscript)}  # Literal[...]
        for node in ast.walk(tree):
            if isinstance(node, ast.Set | ast.Tuple | ast.List) and id(node) not in typed:
                words = [
                    e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)
                ]
                statuses = [w for w in words if w in GMI_STATUSES]
                assert not (len(statuses) >= 2 and len(statuses) == len(node.elts)), (
                    f"{relative(path)}:{node.lineno} lists GMI statuses {statuses}; import them from api/"
                )

"""The simulator's catalog reads what a model takes from ``api/``; ``testing/`` defines none of it again."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import runpy
from pathlib import Path
from typing import Any

import pytest

import airflow_provider_kling.api as api
from airflow_provider_kling.api import MODEL_SPECS, prepare_payload
from airflow_provider_kling.testing import catalog
from airflow_provider_kling.testing.catalog import MODEL_IDS, model_detail, validate_payload

TESTING = Path(catalog.__file__).parent


def _api_constants() -> dict[str, Any]:
    """Every public constant of every ``api`` module: model ids, limits, prices, the prefix, statuses..."""
    constants: dict[str, Any] = {}
    for info in pkgutil.iter_modules(api.__path__):
        module = importlib.import_module(f"{api.__name__}.{info.name}")
        for name, value in vars(module).items():
            if name.isupper() and not name.startswith("_") and not isinstance(value, bool | type(None)):
                constants.setdefault(name, value)
    return constants


def _module_assignments(path: Path) -> list[tuple[str, ast.expr]]:
    assignments = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        assignments += [(t.id, value) for t in targets if isinstance(t, ast.Name)]
    return assignments


def _copies(path: Path, namespace: dict[str, Any], constants: dict[str, Any]) -> list[str]:
    """The names a module (its source, its loaded namespace) assigns that define again what ``api`` does."""
    found = []
    for name, node in _module_assignments(path):
        value = namespace[name]
        for api_name, api_value in constants.items():
            same = type(value) is type(api_value) and value == api_value
            # The api's own object (imported, or derived and equal) is reuse; an equal literal is a copy.
            if name == api_name or (same and (value is not api_value or isinstance(node, ast.Constant))):
                found.append(f"{path.name}: {name} = api's {api_name}")
    return found


def test_the_simulator_defines_nothing_that_api_defines() -> None:
    constants = _api_constants()
    assert {"API_PREFIX", "I2V_MODEL", "RESOLUTIONS", "MAX_PROMPT_CHARS", "PRICES_PER_SECOND"} <= set(
        constants
    )
    copies = []
    for path in sorted(TESTING.glob("*.py")):
        module = importlib.import_module(f"airflow_provider_kling.testing.{path.stem}")
        copies += _copies(path, vars(module), constants)
    assert copies == []


def test_the_check_catches_a_copy(tmp_path: Path) -> None:
    """The test above can fail: a module that writes out the prefix or a model's limits again is found."""
    copy = tmp_path / "_copy_probe.py"
    copy.write_text(
        "from airflow_provider_kling.api import I2V_MODEL\n"
        'API_PREFIX = "/api/v1/ie/requestqueue/apikey"\n'
        'RESOLUTIONS = ("720p", "1080p")\n'
        "LIMIT = 2500\n"
        "MODEL = I2V_MODEL\n"
    )
    found = _copies(copy, runpy.run_path(str(copy)), _api_constants())
    assert found == [
        "_copy_probe.py: API_PREFIX = api's API_PREFIX",
        "_copy_probe.py: RESOLUTIONS = api's RESOLUTIONS",
        "_copy_probe.py: LIMIT = api's MAX_PROMPT_CHARS",
    ]


@pytest.mark.parametrize("model", list(MODEL_SPECS))
def test_every_model_the_provider_knows_is_served_with_its_fields(model: str) -> None:
    spec = MODEL_SPECS[model]
    assert model in MODEL_IDS
    detail = model_detail(model)
    assert detail is not None
    parameters = {p["name"]: p for p in detail["parameters"]}
    assert list(parameters) == list(spec.fields)
    assert {name for name, p in parameters.items() if p["required"]} == spec.required
    for name, default in spec.defaults.items():
        assert parameters[name]["default"] == default


def test_what_the_provider_sends_the_simulator_accepts_and_only_that() -> None:
    """Every resolution and duration the provider allows, in the form it sends, passes GMI's checks;
    the values it would correct first (an int duration, an upper-case resolution) get GMI's 500."""
    for resolution in api.RESOLUTIONS:
        for duration in range(api.MIN_DURATION, api.MAX_DURATION + 1):
            sent = prepare_payload(
                api.I2V_MODEL,
                {"first_frame": "https://example.com/a.png", "resolution": resolution, "duration": duration},
            )
            assert validate_payload(sent.model, sent.payload) is None
    backend_error = (500, "Backend error (400). Please try again.")
    frame = {"first_frame": "https://example.com/a.png"}
    assert validate_payload(api.I2V_MODEL, {**frame, "duration": 5}) == backend_error
    assert validate_payload(api.I2V_MODEL, {**frame, "resolution": "720P"}) == backend_error
    assert validate_payload(api.I2V_MODEL, {**frame, "duration": str(api.MAX_DURATION + 1)}) == backend_error
    too_long = "x" * (api.MAX_PROMPT_CHARS + 1)
    assert validate_payload(api.I2V_MODEL, {**frame, "prompt": too_long}) == (
        400,
        f"prompt must be a string of at most {api.MAX_PROMPT_CHARS} characters",
    )


def test_a_models_price_is_the_providers() -> None:
    for model, rates in api.PRICES_PER_SECOND.items():
        detail = model_detail(model)
        assert detail is not None
        assert detail["price_info"]["price"] == min(rates.values())

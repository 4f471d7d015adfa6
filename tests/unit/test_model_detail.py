"""A model's spec against GMI's detail record of it: every shape read, every difference named."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from airflow_provider_kling.api import I2V_MODEL, MODEL_SPECS, T2V_MODEL, V3_I2V_MODEL
from airflow_provider_kling.api.model_detail import (
    Difference,
    ModelCheck,
    check_detail,
    differences,
    known_models_report,
)
from airflow_provider_kling.testing.catalog import model_detail


def detail(model: str = I2V_MODEL) -> dict[str, Any]:
    found = model_detail(model)
    assert found is not None
    return copy.deepcopy(found)


def parameter(record: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in record["parameters"] if p["name"] == name)


def lines(record: dict[str, Any], model: str = I2V_MODEL) -> list[str]:
    return [str(d) for d in differences(MODEL_SPECS[model], record)]


@pytest.mark.parametrize("model", list(MODEL_SPECS))
def test_every_spec_matches_the_detail_the_simulator_serves_for_it(model):
    assert check_detail(model, detail(model)) == ModelCheck(model)


def test_each_kind_of_difference_is_named_with_ours_and_gmis():
    record = detail()
    parameter(record, "resolution")["options"] = ["720p"]
    parameter(record, "duration").update(min_value=2, max_value=20)
    parameter(record, "prompt")["required"] = True
    record["parameters"] = [p for p in record["parameters"] if p["name"] != "first_frame"]
    record["parameters"].append({"name": "image", "type": "image", "required": True})
    record["parameters"].append({"name": "seed", "type": "integer"})
    assert lines(record) == [
        "first_frame parameter: ours takes it (required), GMI's does not list it",
        "prompt required: ours optional, GMI's required",
        "resolution options: ours [720p, 1080p], GMI's [720p]",
        "duration minimum: ours 3, GMI's 2",
        "duration maximum: ours 15, GMI's 20",
        "image parameter: ours does not take it, GMI's lists it (required)",
        "seed parameter: ours does not take it, GMI's lists it",
    ]


def test_options_are_compared_as_sets_and_a_run_of_numbers_is_shown_as_a_range():
    record = detail()
    parameter(record, "resolution")["options"] = ["1080p", "720p"]  # another order is the same set
    parameter(record, "duration")["options"] = [str(n) for n in range(3, 21)]
    assert lines(record) == ["duration options: ours [3..15], GMI's [3..20]"]


def test_sound_and_aspect_ratio_options_are_compared_too():
    v3 = detail(V3_I2V_MODEL)
    parameter(v3, "sound")["options"] = ["on", "off", "auto"]
    t2v = detail(T2V_MODEL)
    parameter(t2v, "aspect_ratio")["options"] = ["16:9", "9:16"]
    assert lines(v3, V3_I2V_MODEL) == ["sound options: ours [on, off], GMI's [on, off, auto]"]
    assert lines(t2v, T2V_MODEL) == ["aspect_ratio options: ours [16:9, 9:16, 1:1], GMI's [16:9, 9:16]"]


def _same_in_odd_shapes() -> list[tuple[str, dict[str, Any]]]:
    """Records that state exactly what the spec says, in every shape GMI's may take."""
    shapes: list[tuple[str, dict[str, Any]]] = []

    def shape(name: str, change: Any) -> None:
        record = detail()
        change(record)
        shapes.append((name, record))

    shape("options as text", lambda r: parameter(r, "resolution").update(options="720p, 1080p"))
    shape(
        "options as a JSON list in text",
        lambda r: parameter(r, "resolution").update(options='["720p","1080p"]'),
    )
    shape("options as pipes", lambda r: parameter(r, "resolution").update(options="720p|1080p"))
    shape(
        "options as value objects",
        lambda r: parameter(r, "resolution").update(options=[{"value": "720p"}, {"value": "1080p"}]),
    )
    shape("durations as numbers", lambda r: parameter(r, "duration").update(options=list(range(3, 16))))
    shape(
        "durations as floats",
        lambda r: parameter(r, "duration").update(options=[float(n) for n in range(3, 16)]),
    )
    shape("min and max as text", lambda r: parameter(r, "duration").update(min_value="3", max_value="15.0"))
    shape("required as text", lambda r: parameter(r, "first_frame").update(required="true"))
    shape("required as 0 or 1", lambda r: [p.update(required=int(p["required"])) for p in r["parameters"]])
    shape(
        "every optional key left out",
        lambda r: r.update(parameters=[{"name": p["name"]} for p in r["parameters"]]),
    )
    shape(
        "empty options and null bounds",
        lambda r: parameter(r, "duration").update(options=[], min_value=None, max_value=""),
    )
    shape(
        "parameters keyed by name", lambda r: r.update(parameters={p.pop("name"): p for p in r["parameters"]})
    )
    shape("no parameters key", lambda r: r.pop("parameters"))
    shape("parameters null", lambda r: r.update(parameters=None))
    shape(
        "entries that are not parameters",
        lambda r: r["parameters"].extend([None, "x", {"name": " "}, {"type": "string"}]),
    )
    shape("only the parameters", lambda r: [r.pop(k) for k in list(r) if k != "parameters"])
    return shapes  # fmt: skip


@pytest.mark.parametrize(
    ("shape", "record"), _same_in_odd_shapes(), ids=[s for s, _ in _same_in_odd_shapes()]
)
def test_a_record_in_any_shape_that_states_what_the_spec_says_differs_in_nothing(shape, record):
    assert lines(record) == []


def test_odd_shapes_that_do_differ_are_read_as_the_numbers_and_options_they_state():
    record = detail()
    parameter(record, "resolution")["options"] = "720p,1080p,4k"
    parameter(record, "duration").update(options=None, max_value="20")
    parameter(record, "first_frame")["required"] = "no"
    assert lines(record) == [
        "first_frame required: ours required, GMI's optional",
        "resolution options: ours [720p, 1080p], GMI's [720p, 1080p, 4k]",
        "duration maximum: ours 15, GMI's 20",
    ]


def test_a_length_on_free_text_is_not_read_as_a_range():
    record = detail()
    parameter(record, "prompt").update(min_value=0, max_value=2500)
    parameter(record, "first_frame")["max_value"] = 10_000_000
    assert lines(record) == []


def test_what_a_check_says_in_a_report_a_summary_and_a_warning():
    changed = detail()
    parameter(changed, "duration")["max_value"] = 20
    check = check_detail(I2V_MODEL, changed)
    assert check.differences == (Difference("duration", "maximum", "15", "20"),)
    assert check.report() == (
        "kling-3.0-turbo-i2v: the provider's spec differs from GMI's detail in 1 way:\n"
        "  duration maximum: ours 15, GMI's 20"
    )
    assert check.summary() == "DIFFERS from GMI's detail (duration maximum)"
    assert check.warning().startswith(
        "Model kling-3.0-turbo-i2v on GMI differs from this provider's spec of it in 1 way: "
        "duration maximum: ours 15, GMI's 20. Payloads are still checked against the provider's spec"
    )
    assert "python -m airflow_provider_kling.hooks.model_check" in check.warning()
    missing = ModelCheck(I2V_MODEL, served=False)
    assert "does not exist (404)" in missing.report()
    unread = ModelCheck(I2V_MODEL, error="GMI answered HTTP 503")
    assert unread.report() == "kling-3.0-turbo-i2v: GMI's detail could not be read: GMI answered HTTP 503"
    assert [c.matches for c in (missing, unread, check)] == [False, False, False]
    assert known_models_report(
        {I2V_MODEL: check, T2V_MODEL: None, V3_I2V_MODEL: ModelCheck(V3_I2V_MODEL)}
    ) == (
        "The models this provider knows: kling-3.0-turbo-i2v DIFFERS from GMI's detail (duration maximum); "
        "kling-3.0-turbo-t2v NOT served to this key; kling-v3-image-to-video matches GMI's detail. "
        "`python -m airflow_provider_kling.hooks.model_check` says what differs."
    )

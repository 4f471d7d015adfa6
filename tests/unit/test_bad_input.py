"""
Bad input never costs money: every bad value fails with an error that names the field
and what is allowed, before a single request reaches GMI.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_kling.api import KlingValidationError
from airflow_provider_kling.operators.kling import KlingI2VOperator
from tests.helpers import FakeTI

GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff"
    + b"!\xf9\x04\x00\x00\x00\x00\x00,\x00\x00\x00\x00"
)


def files(tmp: Path) -> dict[str, Path]:
    (tmp / "empty.png").write_bytes(b"")
    (tmp / "notes.png").write_text("not an image at all")
    with (tmp / "huge.png").open("wb") as f:  # sparse: 11 MB on paper, nothing on disk
        f.write(b"\x89PNG\r\n\x1a\n")
        f.truncate(11 * 1024 * 1024)
    (tmp / "folder").mkdir()
    return {p.name: p for p in tmp.iterdir()}


# (field, value) pairs: each is what a template could render, so the checks at execute
# time are exercised; literal values are refused even earlier, at DAG parse time.
OPERATOR_CASES: list[tuple[str, Any]] = [
    ("duration", 2),
    ("duration", 16),
    ("duration", 0),
    ("duration", -5),
    ("duration", "abc"),
    ("duration", "5.5"),
    ("duration", ""),
    ("duration", True),
    ("duration", 5.5),
    ("duration", None),
    ("duration", [5]),
    ("resolution", "4k"),
    ("resolution", "720"),
    ("resolution", 720),
    ("resolution", ""),
    ("resolution", None),
    ("prompt", "x" * 2501),
    ("prompt", 123),
    ("prompt", ["a prompt"]),
    ("model", ""),
    ("model", "kling 3.0"),
    ("model", None),
    ("first_frame", ""),
    ("first_frame", "   "),
    ("first_frame", "file:///tmp/frame.png"),
    ("first_frame", "ftp://example.com/frame.png"),
    ("first_frame", "s3://bucket/frame.png"),
    ("first_frame", "https://"),
    ("first_frame", "/no/such/frame.png"),
    ("first_frame", "@empty.png"),
    ("first_frame", "@notes.png"),
    ("first_frame", "@huge.png"),
    ("first_frame", "@folder"),
    ("first_frame", "/9j/4AAQSkZJRg@@@not-base64@@@"),
    ("first_frame", "iVBORw0KGgo" + "!" * 300),
    ("first_frame", base64.b64encode(b"plain text, not a picture " * 20).decode()),
    ("first_frame", "data:image/gif;base64," + base64.b64encode(GIF).decode()),
    ("first_frame", "data:image/png,not-base64"),
    ("first_frame", "data:text/plain;base64,aGVsbG8="),
    ("first_frame", b""),
    ("first_frame", GIF),
    ("first_frame", 12345),
]


@pytest.mark.parametrize(
    ("field", "value"), OPERATOR_CASES, ids=[f"{f}-{i}" for i, (f, _) in enumerate(OPERATOR_CASES)]
)
def test_bad_operator_input_is_refused_before_any_post(
    kling_simulator, kling_connection_env, tmp_path, field, value
):
    paths = files(tmp_path)
    if isinstance(value, str) and value.startswith("@"):
        value = str(paths[value[1:]])
    task = KlingI2VOperator(task_id="submit", first_frame="https://example.com/frame.png", deferrable=False)
    if field == "first_frame":
        task.first_frame = value
        task.hide_inline_images()  # as rendering a template would leave it
    else:
        setattr(task, field, value)
    ti = FakeTI()
    with pytest.raises(KlingValidationError) as err:
        task.execute({"ti": ti})
    assert str(err.value).startswith(f"Invalid {field}"), err.value
    assert "Allowed:" in str(err.value)
    assert kling_simulator.count("POST /requests") == 0
    assert ti.pushed == {}


CONNECTION_CASES: list[tuple[dict[str, Any], str]] = [
    ({"password": None}, "password"),
    ({"password": "   "}, "password"),
    ({"host": "http://gmi.example.com"}, "host"),
    ({"host": "http://10.0.0.5:8080"}, "host"),
    ({"host": "ftp://gmi.example.com"}, "host"),
    ({"extra": {"timeout": "soon"}}, "extra 'timeout'"),
    ({"extra": {"timeout": -1}}, "extra 'timeout'"),
    ({"extra": {"timeout": 100000}}, "extra 'timeout'"),
    ({"extra": {"organization_id": 42}}, "extra 'organization_id'"),
]


@pytest.mark.parametrize(("fields", "field"), CONNECTION_CASES)
def test_bad_connection_is_refused_before_any_post(kling_simulator, monkeypatch, fields, field):
    conn = {
        "conn_type": "kling",
        "host": kling_simulator.base_url,
        "password": kling_simulator.api_key,
        **fields,
    }
    monkeypatch.setenv(
        "AIRFLOW_CONN_KLING_DEFAULT", json.dumps({k: v for k, v in conn.items() if v is not None})
    )
    task = KlingI2VOperator(task_id="submit", first_frame="https://example.com/frame.png", deferrable=False)
    with pytest.raises(KlingValidationError) as err:
        task.execute({"ti": FakeTI()})
    assert str(err.value).startswith(f"Invalid connection 'kling_default' {field}"), err.value
    assert "Allowed:" in str(err.value)
    assert kling_simulator.count("POST /requests") == 0


def test_there_are_at_least_thirty_cases():
    assert len(OPERATOR_CASES) + len(CONNECTION_CASES) >= 30

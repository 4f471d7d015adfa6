"""The submit's streamed JSON body: what is sent is exactly the payload, whatever its size."""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import pytest

from airflow_provider_kling.api.body import SLICE, JsonBody, json_pieces
from airflow_provider_kling.operators.kling import KlingI2VOperator
from airflow_provider_kling.testing import Fault
from tests.helpers import FakeTI, make_png

LONG_B64 = base64.b64encode(bytes(range(256)) * 1000).decode()  # 341 KB, several slices
PAYLOADS: list[Any] = [
    {},
    [],
    {"model": "kling-3.0-turbo-i2v", "payload": {"first_frame": LONG_B64, "duration": 5}},
    {"prompt": 'a "quoted" \\ prompt\nwith ünïcödé and emoji 🎬', "n": 1.5, "ok": True, "none": None},
    {"nested": [1, [2, {"three": "3"}], (4, 5)], "neg": -7, "big": 10**20},
    {"escaped": '"' * (SLICE + 10)},  # long, but needs escaping: sent through json.dumps
    "x" * (3 * SLICE + 1),
]


@pytest.mark.parametrize("value", PAYLOADS)
def test_pieces_are_the_json_of_the_value(value):
    text = "".join(json_pieces(value))
    assert text.isascii()
    assert json.loads(text) == json.loads(json.dumps(value))


@pytest.mark.parametrize("read_size", [1, 7, 16384, SLICE, SLICE + 1, -1])
def test_the_body_reads_back_whole_in_any_block_size(read_size):
    value = PAYLOADS[2]
    body = JsonBody(value)
    chunks = []
    while chunk := body.read(read_size):
        chunks.append(chunk)
    data = b"".join(chunks)
    assert len(body) == len(data) == body.tell()
    assert json.loads(data) == value
    assert body.read(10) == b""


def test_a_long_base64_string_goes_out_in_slices_of_the_payload():
    pieces = list(json_pieces({"first_frame": LONG_B64}))
    assert max(map(len, pieces)) == SLICE
    assert len(pieces) >= math.ceil(len(LONG_B64) / SLICE)


def test_the_body_rewinds_for_a_second_send():
    body = JsonBody(PAYLOADS[2])
    first = body.read()
    assert body.seek(0) == 0
    assert body.read() == first
    assert body.seek(100) == body.tell() == 100
    assert body.read() == first[100:]
    assert b"".join(JsonBody(PAYLOADS[2])) == first


def test_what_json_cannot_carry_is_refused():
    with pytest.raises(TypeError, match="keys must be strings"):
        JsonBody({1: "a"})
    with pytest.raises(ValueError, match="Out of range float"):
        JsonBody({"x": float("nan")})
    with pytest.raises(ValueError, match="from its start"):
        JsonBody({}).seek(0, 2)


def test_a_ten_megabyte_image_reaches_gmi_intact_even_after_a_rate_limit(
    kling_simulator, kling_connection_env, retry_sleeps, tmp_path
):
    image = make_png(1900, 1750, noise=True)
    path = tmp_path / "large.png"
    path.write_bytes(image)
    assert len(image) > 9_900_000
    kling_simulator.script("POST /requests", [Fault.rate_limited()])
    task = KlingI2VOperator(task_id="submit", first_frame=str(path), deferrable=False)
    request_id = task.execute({"ti": FakeTI()})
    assert kling_simulator.count("POST /requests") == 2
    (submitted,) = kling_simulator.requests
    assert submitted.request_id == request_id
    assert base64.b64decode(submitted.payload["first_frame"]) == image

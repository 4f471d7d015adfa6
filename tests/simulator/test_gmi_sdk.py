"""Every answer shape the simulator gives, read with GMI's own Python SDK (``gmicloud``, test-only).

The SDK's pydantic models for the request queue (``gmicloud._internal._models``) are
``SubmitRequestResponse`` (``POST /requests``), ``GetRequestResponse`` (``GET /requests/{id}``),
``ListUserRequestsResponse`` (``GET /requests``) and ``GetModelResponse`` (``GET /models/{id}``), with
the ``RequestStatus`` enum. The answers are fetched with the SDK's own ``HTTPClient``, which also
checks the status code and the content type. If the simulator drifts from what GMI's client accepts,
these tests fail.

The SDK has no model for:

* the ``GET /models`` answer ``{"model_ids": [...]}``: its ``get_models()`` reads a ``models`` list of
  model details instead, a shape GMI's API reference does not show;
* error bodies: its ``HTTPClient`` reads only the ``error`` key of a non-2xx body (checked below), and
  nothing of the 429's ``rate_limit`` object or the 503's ``request_id``.

Where the SDK is narrower than what GMI has been reported to send, the test says so explicitly, so a
change on either side is noticed:

* ``GetRequestResponse.outcome`` is a dict, so a failure whose ``outcome`` is a plain string
  (``failure_shape="outcome_string"``, reported by other sources) does not validate;
* ``PriceInfo.price`` is an integer, and the simulator serves the model doc's $0.112/s as ``0.112``.
"""

from __future__ import annotations

import logging
from typing import Any

import pydantic
import pytest

from airflow_provider_kling.testing import Fault, KlingSimulator, ManualClock
from airflow_provider_kling.testing.catalog import MODEL_IDS
from airflow_provider_kling.testing.wire import FAILURE_SHAPES, OUTCOME_SHAPES, PAYLOAD_ECHOES

_root = logging.getLogger()
_handlers, _level = list(_root.handlers), _root.level
try:  # gmicloud's __init__ calls logging.basicConfig; leave the root logger as pytest set it up
    from gmicloud._internal._client._http_client import HTTPClient
    from gmicloud._internal._enums import RequestStatus
    from gmicloud._internal._exceptions import APIError, UnauthorizedError
    from gmicloud._internal._models import (
        GetModelResponse,
        GetRequestResponse,
        ListUserRequestsResponse,
        SubmitRequestResponse,
    )
finally:
    _root.handlers[:] = _handlers
    _root.setLevel(_level)

I2V = "kling-3.0-turbo-i2v"
PAYLOAD = {"first_frame": "aGVsbG8gZnJhbWU=", "prompt": "a dragon takes flight"}


class Sdk:
    """GMI's HTTP client pointed at a simulator, with the simulator's key."""

    def __init__(self, sim: KlingSimulator) -> None:
        self.http = HTTPClient(sim.api_url)
        self.headers = {"Authorization": f"Bearer {sim.api_key}"}

    def submit(self, payload: dict[str, Any] | None = None, model: str = I2V) -> dict[str, Any]:
        body = {"model": model, "payload": PAYLOAD if payload is None else payload}
        answer: dict[str, Any] = self.http.post("/requests", self.headers, body)
        return answer

    def get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        answer: dict[str, Any] = self.http.get(path, self.headers, params)
        return answer


def parse_record(answer: dict[str, Any]) -> GetRequestResponse:
    record = GetRequestResponse.model_validate(answer)
    assert record.request_id == answer["request_id"]
    assert record.status == RequestStatus(answer["status"])
    return record


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"submit_status": "dispatched"},
        {"submit_status": "created"},
        {"submit_shape": "minimal"},
        {"sync_models": ["*"]},
        {"sync_models": ["*"], "submit_shape": "minimal"},
        *({"instant_models": ["*"], "outcome_shape": shape} for shape in OUTCOME_SHAPES),
    ],
)
def test_every_submit_answer_is_a_submit_response(config: dict[str, Any]) -> None:
    with KlingSimulator(**config) as sim:
        answer = Sdk(sim).submit()
    parsed = SubmitRequestResponse.model_validate(answer)
    assert parsed.request_id == answer["request_id"]
    assert parsed.status == RequestStatus(answer["status"])
    if "outcome" in answer:  # an instant model's answer is a whole record
        parse_record(answer)


@pytest.mark.parametrize("echo", PAYLOAD_ECHOES)
@pytest.mark.parametrize("shape", OUTCOME_SHAPES)
def test_records_through_the_lifecycle_in_every_outcome_shape(
    manual: tuple[KlingSimulator, ManualClock], shape: str, echo: str
) -> None:
    sim, clock = manual
    sim.configure(outcome_shape=shape, payload_echo=echo)
    sdk = Sdk(sim)
    request_id = sdk.submit()["request_id"]
    for seconds, status in ((0, "queued"), (10, "processing"), (20, "success")):
        clock.advance(seconds)
        answer = sdk.get(f"/requests/{request_id}")
        record = parse_record(answer)
        assert record.status == RequestStatus(status)
        assert record.payload == answer.get("payload", {})
    assert record.outcome == answer["outcome"]


@pytest.mark.parametrize("failure_shape", FAILURE_SHAPES)
def test_failed_records_in_every_failure_shape(failure_shape: str) -> None:
    with KlingSimulator(queued_seconds=0, processing_seconds=0, failure_shape=failure_shape) as sim:
        sdk = Sdk(sim)
        request_id = sdk.submit({**PAYLOAD, "prompt": "SIMULATE_FAILURE: x"})["request_id"]
        answer = sdk.get(f"/requests/{request_id}")
    assert answer["status"] == "failed"
    if failure_shape == "outcome_string":
        # The SDK types outcome as a dict; a string outcome has been reported, so the simulator keeps it.
        with pytest.raises(pydantic.ValidationError, match="outcome"):
            GetRequestResponse.model_validate(answer)
    else:
        parse_record(answer)


def test_cancelled_records_and_the_list_answer(manual: tuple[KlingSimulator, ManualClock]) -> None:
    sim, clock = manual
    sdk = Sdk(sim)
    assert ListUserRequestsResponse.model_validate(sdk.get("/requests")).total == 0
    stuck = sdk.submit({**PAYLOAD, "prompt": "SIMULATE_STUCK"})["request_id"]
    parse_record(sdk.http.delete(f"/requests/{stuck}", sdk.headers))
    sdk.submit({**PAYLOAD, "prompt": "SIMULATE_CANCEL"})
    sdk.submit({**PAYLOAD, "prompt": "SIMULATE_FAILURE"})
    sdk.submit()
    clock.advance(5)
    sdk.submit()  # still queued when listed
    clock.advance(25)
    sdk.submit({"prompt": "a cat"}, model="kling-3.0-turbo-t2v")
    answer = sdk.get("/requests", {"model_id": I2V})
    listed = ListUserRequestsResponse.model_validate(answer)
    assert listed.total == len(listed.requests) == 5
    assert {r.status.value for r in listed.requests if r.status} == {
        "cancelled", "failed", "success", "processing",
    }  # fmt: skip


def test_model_details_but_for_the_integer_price() -> None:
    with KlingSimulator() as sim:
        sdk = Sdk(sim)
        models = sdk.get("/models")
        assert set(models) == {"model_ids"}  # no SDK model: see the module docstring
        assert all(isinstance(model, str) for model in models["model_ids"])
        details = [sdk.get(f"/models/{model_id}") for model_id in MODEL_IDS]
    for detail in details:
        price = (detail.get("price_info") or {}).get("price", 0)
        if price == int(price):
            assert GetModelResponse.model_validate(detail).model == detail["model"]
            continue
        # PriceInfo.price is an int in the SDK; GMI's unit is undocumented, the model doc says $0.112/s.
        with pytest.raises(pydantic.ValidationError) as raised:
            GetModelResponse.model_validate(detail)
        assert [error["loc"] for error in raised.value.errors()] == [("price_info", "price")]
        without_price = {**detail, "price_info": {**detail["price_info"], "price": 0}}
        assert GetModelResponse.model_validate(without_price).model == detail["model"]


@pytest.mark.parametrize(
    ("fault", "status"),
    [
        (Fault.rate_limited(retry_after_ms=50), 429),
        (Fault.capacity_exhausted(), 503),
        (Fault.capacity_exhausted(created=True), 503),
        (Fault.backend_error(), 500),
        (Fault.error(402, "billing"), 402),
    ],
)
def test_error_bodies_are_read_by_the_sdk_client(fault: Fault, status: int) -> None:
    with KlingSimulator() as sim:
        sim.script("POST /requests", fault)
        with pytest.raises(APIError) as raised:
            Sdk(sim).submit()
        body = fault.body
    assert isinstance(body, dict)
    assert str(raised.value) == f"HTTP Request failed: {status} - {body['error']}"


def test_plain_errors_and_a_bad_key_are_read_by_the_sdk_client() -> None:
    with KlingSimulator() as sim:
        sdk = Sdk(sim)
        for path, message in (
            ("/requests/nope", "404 - request nope not found"),
            ("/models/kling-9", "404 - model kling-9 does not exist"),
        ):
            with pytest.raises(APIError) as raised:
                sdk.get(path)
            assert str(raised.value) == f"HTTP Request failed: {message}"
        with pytest.raises(APIError) as raised:
            sdk.submit({})
        assert str(raised.value).startswith("HTTP Request failed: 400 - ")
        sdk.headers = {"Authorization": "Bearer wrong"}
        with pytest.raises(UnauthorizedError):
            sdk.get("/models")

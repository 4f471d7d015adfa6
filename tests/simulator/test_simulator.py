"""Tests of the GMI request-queue simulator, over real loopback HTTP."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import os
import selectors
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests

from airflow_provider_kling.api import API_PREFIX
from airflow_provider_kling.testing import (
    Fault,
    KlingSimulator,
    ManualClock,
    SimulatorConfig,
    SimulatorState,
    create_app,
)
from airflow_provider_kling.testing.media import fallback_video

REPO_ROOT = Path(__file__).resolve().parents[2]
I2V = "kling-3.0-turbo-i2v"
PAYLOAD = {"first_frame": "https://example.com/frame.jpg", "prompt": "a dragon takes flight"}
WAIT = 20.0  # generous bound for a noisy 2-core machine; tests finish as soon as the condition holds


@pytest.fixture
def sim() -> Iterator[KlingSimulator]:
    with KlingSimulator(queued_seconds=0.2, processing_seconds=0.3) as simulator:
        yield simulator


class Api:
    """A thin authenticated client for the simulator."""

    def __init__(self, simulator: KlingSimulator, key: str | None = None) -> None:
        self.sim = simulator
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {key or simulator.api_key}"

    def submit(self, payload: Any = None, model: str = I2V, **kwargs: Any) -> requests.Response:
        body = {"model": model, "payload": PAYLOAD if payload is None else payload}
        return self.session.post(f"{self.sim.api_url}/requests", json=body, timeout=10, **kwargs)

    def submit_id(self, payload: Any = None, model: str = I2V) -> str:
        response = self.submit(payload, model)
        assert response.status_code == 200, response.text
        request_id: str = response.json()["request_id"]
        return request_id

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.get(f"{self.sim.api_url}{path}", timeout=10, **kwargs)

    def record(self, request_id: str) -> dict[str, Any]:
        response = self.get(f"/requests/{request_id}")
        assert response.status_code == 200, response.text
        record: dict[str, Any] = response.json()
        return record

    def wait_for(self, request_id: str, statuses: set[str]) -> tuple[dict[str, Any], list[str]]:
        seen: list[str] = []
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            record = self.record(request_id)
            if not seen or seen[-1] != record["status"]:
                seen.append(record["status"])
            if record["status"] in statuses:
                return record, seen
            time.sleep(0.02)
        raise AssertionError(f"{request_id} never reached {statuses}; saw {seen}")


def video_url(outcome: dict[str, Any]) -> str:
    if "video_url" in outcome:
        return str(outcome["video_url"])
    if "url" in outcome:
        return str(outcome["url"])
    first = outcome["media_urls"][0]
    return str(first["url"] if isinstance(first, dict) else first)


def png_base64(width: int, height: int) -> str:
    pil_image = pytest.importorskip("PIL.Image")
    buffer = io.BytesIO()
    pil_image.new("RGB", (width, height), (30, 120, 200)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


# Authentication


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/requests"),
        ("GET", "/requests"),
        ("GET", "/requests/some-id"),
        ("DELETE", "/requests/some-id"),
        ("GET", "/models"),
        ("GET", f"/models/{I2V}"),
    ],
)
@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong-key", "sim-test-key", "Basic c2ltLXRlc3Qta2V5"]
)
def test_bad_or_missing_key_gets_401(
    sim: KlingSimulator, method: str, path: str, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = requests.request(method, f"{sim.api_url}{path}", headers=headers, json={}, timeout=10)
    assert response.status_code == 401
    assert response.json() == {"error": "invalid api key"}
    assert not sim.requests


def test_custom_api_key_is_the_only_one_accepted() -> None:
    with KlingSimulator(api_key="k-123") as simulator:
        assert Api(simulator).get("/models").status_code == 200
        assert Api(simulator, key="sim-test-key").get("/models").status_code == 401


# Lifecycle and records


def test_submit_answers_the_short_queued_record(sim: KlingSimulator) -> None:
    before = int(time.time())
    body = Api(sim).submit().json()
    assert set(body) == {"request_id", "model", "status", "created_at", "updated_at", "queued_at"}
    assert uuid.UUID(body["request_id"]).version == 4
    assert body["model"] == I2V
    assert body["status"] == "queued"
    for key in ("created_at", "updated_at", "queued_at"):
        assert isinstance(body[key], int)
        assert before - 1 <= body[key] <= time.time() + 1


def test_lifecycle_runs_queued_processing_success(sim: KlingSimulator) -> None:
    api = Api(sim)
    request_id = api.submit_id()
    record, seen = api.wait_for(request_id, {"success", "failed", "cancelled"})
    order = ["queued", "processing", "success"]
    assert seen == sorted(seen, key=order.index)
    assert seen[-1] == "success"
    expected = {
        "request_id", "org_id", "user_id", "model", "status", "is_public", "payload", "outcome",
        "created_at", "updated_at", "queued_at", "qworker_id",
    }  # fmt: skip
    assert set(record) == expected
    assert record["payload"] == PAYLOAD  # echoed verbatim by default, as GMI's docs show
    assert record["is_public"] is False
    assert record["updated_at"] >= record["created_at"]


def test_lifecycle_follows_an_injected_clock(manual: tuple[KlingSimulator, ManualClock]) -> None:
    sim, clock = manual
    api = Api(sim)
    request_id = api.submit_id()
    created = api.record(request_id)
    assert created["status"] == "queued"
    assert created["outcome"] is None
    assert created["qworker_id"] == ""
    clock.advance(9.9)
    assert api.record(request_id)["status"] == "queued"
    clock.advance(0.2)
    processing = api.record(request_id)
    assert processing["status"] == "processing"
    assert processing["qworker_id"]
    assert processing["updated_at"] == created["created_at"] + 10
    clock.advance(20)
    done = api.record(request_id)
    assert done["status"] == "success"
    assert done["updated_at"] == created["created_at"] + 30
    assert done["outcome"]
    assert sim.record(request_id)["status"] == "success"


def test_stats_say_when_a_request_was_first_polled_and_first_polled_finished(
    manual: tuple[KlingSimulator, ManualClock],
) -> None:
    sim, clock = manual
    api = Api(sim)
    request_id = api.submit_id()
    start = clock()
    clock.advance(5)
    api.record(request_id)
    clock.advance(60)  # finished 30 s after the submit: this poll is 35 s late
    api.record(request_id)
    api.record(request_id)
    (stats,) = httpx.get(f"{sim.base_url}/_simulator/stats").json()["requests"]
    assert stats["first_read_at"] == pytest.approx(start + 5)
    assert stats["finished_read_at"] == pytest.approx(start + 65)
    assert stats["finished_read_at"] - stats["finishes_at"] == pytest.approx(35)


@pytest.mark.parametrize(
    ("shape", "check"),
    [
        (
            "media_objects",
            lambda o: set(o) == {"media_urls", "thumbnail_image_url"} and o["media_urls"][0]["id"] == "0",
        ),
        ("media_strings", lambda o: set(o) == {"media_urls"} and isinstance(o["media_urls"][0], str)),
        ("video_url", lambda o: set(o) == {"video_url", "thumbnail_image_url"}),
        ("url", lambda o: set(o) == {"url"}),
    ],
)
def test_each_outcome_shape(shape: str, check: Callable[[dict[str, Any]], bool]) -> None:
    with KlingSimulator(queued_seconds=0, processing_seconds=0, outcome_shape=shape) as simulator:
        api = Api(simulator)
        record, _ = api.wait_for(api.submit_id(), {"success"})
        assert check(record["outcome"])
        url = video_url(record["outcome"])
        assert url.startswith(f"{simulator.base_url}/media/{record['request_id']}/")
        assert url.endswith("/sample_0.mp4")


def test_rotate_is_the_default_and_cycles_all_shapes() -> None:
    with KlingSimulator(queued_seconds=0, processing_seconds=0) as simulator:
        assert simulator.config.outcome_shape == "rotate"
        api = Api(simulator)
        simulator.configure(outcome_shape="media_objects,media_strings,video_url")
        keys = [frozenset(api.wait_for(api.submit_id(), {"success"})[0]["outcome"]) for _ in range(3)]
        assert len(set(keys)) == 3
        assert frozenset(api.wait_for(api.submit_id(), {"success"})[0]["outcome"]) == keys[0]
        simulator.configure(outcome_shape="rotate")
        keys = [frozenset(api.wait_for(api.submit_id(), {"success"})[0]["outcome"]) for _ in range(4)]
        assert len(set(keys)) == 4
        assert frozenset({"url"}) in keys
        simulator.configure(outcome_shape="url, video_url")
        keys = [frozenset(api.wait_for(api.submit_id(), {"success"})[0]["outcome"]) for _ in range(2)]
        assert set(keys) == {frozenset({"url"}), frozenset({"video_url", "thumbnail_image_url"})}


def test_media_urls_follow_the_host_the_client_used(sim: KlingSimulator) -> None:
    api = Api(sim)
    sim.configure(queued_seconds=0, processing_seconds=0, outcome_shape="video_url")
    request_id = api.submit_id()
    url = f"http://localhost:{sim.port}{API_PREFIX}/requests/{request_id}"
    outcome = api.session.get(url, timeout=10).json()["outcome"]
    assert outcome["video_url"].startswith(f"http://localhost:{sim.port}/media/")
    sim.configure(media_base_url="http://media.invalid:9/")
    assert api.record(request_id)["outcome"]["video_url"].startswith("http://media.invalid:9/media/")


# Simulated failures


@pytest.mark.parametrize(
    ("prompt", "status", "message"),
    [
        ("SIMULATE_FAILURE: content policy", "failed", "simulated failure: content policy"),
        (
            "make it fail SIMULATE_FAILURE",
            "failed",
            "simulated failure: requested by SIMULATE_FAILURE in the prompt",
        ),
        ("SIMULATE_CANCEL", "cancelled", None),
    ],
)
def test_prompt_markers_end_the_request(
    sim: KlingSimulator, prompt: str, status: str, message: str | None
) -> None:
    api = Api(sim)
    record, _ = api.wait_for(api.submit_id({**PAYLOAD, "prompt": prompt}), {"success", "failed", "cancelled"})
    assert record["status"] == status
    assert record["outcome"] == ({"error": message} if message else None)


def test_stuck_marker_stays_queued_forever(manual: tuple[KlingSimulator, ManualClock]) -> None:
    sim, clock = manual
    api = Api(sim)
    request_id = api.submit_id({**PAYLOAD, "prompt": "SIMULATE_STUCK"})
    clock.advance(10 * 24 * 3600)
    assert api.record(request_id)["status"] == "queued"


def test_fail_next_fails_exactly_one_request(sim: KlingSimulator) -> None:
    sim.fail_next("boom")
    api = Api(sim)
    first, second = api.submit_id(), api.submit_id()
    assert api.wait_for(first, {"success", "failed"})[0]["outcome"] == {"error": "simulated failure: boom"}
    assert api.wait_for(second, {"success", "failed"})[0]["status"] == "success"


@pytest.mark.parametrize(
    ("failure_shape", "expected"),
    [
        ("outcome_string", {"outcome": "simulated failure: x"}),
        ("error_field", {"outcome": None, "error": "simulated failure: x"}),
        ("reason_field", {"outcome": None, "reason": "simulated failure: x"}),
    ],
)
def test_failure_shapes(failure_shape: str, expected: dict[str, Any]) -> None:
    with KlingSimulator(queued_seconds=0, processing_seconds=0, failure_shape=failure_shape) as simulator:
        simulator.fail_next("x")
        api = Api(simulator)
        record, _ = api.wait_for(api.submit_id(), {"failed"})
        assert {key: record.get(key) for key in expected} == expected


def test_submit_status_dispatched_and_instant_models(sim: KlingSimulator) -> None:
    api = Api(sim)
    sim.configure(submit_status="dispatched")
    assert api.submit().json()["status"] == "dispatched"
    sim.configure(instant_models=frozenset({I2V}))
    instant = api.submit().json()
    assert instant["status"] == "success"
    assert video_url(instant["outcome"]).endswith("sample_0.mp4")
    assert api.submit({"prompt": "a cat"}, model="kling-3.0-turbo-t2v").json()["status"] == "dispatched"


@pytest.mark.parametrize(("echo", "expected"), [("verbatim", PAYLOAD), ("empty", {}), ("absent", None)])
def test_payload_echo(echo: str, expected: dict[str, Any] | None) -> None:
    with KlingSimulator(queued_seconds=0, processing_seconds=0, payload_echo=echo) as simulator:
        api = Api(simulator)
        payload = {"first_frame": base64.b64encode(b"not really a png").decode(), "prompt": "p"}
        request_id = api.submit_id(payload if expected else None)
        record = api.record(request_id)
        listed = api.get("/requests").json()["requests"][0]
    if expected is None:
        assert "payload" not in record
        assert "payload" not in listed
    else:
        assert record["payload"] == listed["payload"] == (payload if expected else {})


@pytest.mark.parametrize(
    ("config", "prompt"), [({"sync_models": ["*"]}, "a dragon"), ({}, "a dragon SIMULATE_SYNC")]
)
def test_a_synchronous_success_answers_without_outcome(config: dict[str, Any], prompt: str) -> None:
    with KlingSimulator(**config) as simulator:
        api = Api(simulator)
        body = api.submit({**PAYLOAD, "prompt": prompt}).json()
        assert body["status"] == "success"
        assert set(body) == {"request_id", "model", "status", "created_at", "updated_at", "queued_at"}
        record = api.record(body["request_id"])
        assert record["status"] == "success"
        assert video_url(record["outcome"]).endswith("/sample_0.mp4")
        assert api.submit({**PAYLOAD, "prompt": "plain"}).json()["status"] == (
            "success" if config else "queued"
        )


def test_sync_models_are_per_model_and_other_markers_still_decide_the_fate(sim: KlingSimulator) -> None:
    api = Api(sim)
    sim.configure(sync_models=frozenset({I2V}), submit_shape="minimal")
    assert api.submit().json()["status"] == "success"
    failed = api.submit({**PAYLOAD, "prompt": "SIMULATE_FAILURE: nope"}).json()
    assert failed == {"request_id": failed["request_id"], "status": "failed"}
    assert api.record(failed["request_id"])["outcome"] == {"error": "simulated failure: nope"}
    assert api.submit({"prompt": "a cat"}, model="kling-3.0-turbo-t2v").json()["status"] == "queued"
    assert sim.config.to_dict()["sync_models"] == [I2V]


def test_a_minimal_submit_answer_has_only_the_id_and_status(sim: KlingSimulator) -> None:
    sim.configure(submit_shape="minimal", submit_status="dispatched")
    body = Api(sim).submit().json()
    assert body == {"request_id": body["request_id"], "status": "dispatched"}
    sim.configure(instant_models=["*"])  # an instant answer is a whole record whatever the shape
    assert "outcome" in Api(sim).submit().json()


@pytest.mark.parametrize("created", [False, True])
def test_capacity_503_names_a_request_that_was_created_or_not(sim: KlingSimulator, created: bool) -> None:
    sim.script("POST /requests", Fault.capacity_exhausted(created=created))
    api = Api(sim)
    response = api.submit()
    assert response.status_code == 503
    body = response.json()
    assert body["error"] == "Upstream capacity temporarily exhausted; please retry later"
    named = api.get(f"/requests/{body['request_id']}")
    listed = [r["request_id"] for r in api.get("/requests").json()["requests"]]
    if created:
        assert named.status_code == 200
        assert named.json()["model"] == I2V
        assert listed == [body["request_id"]]
    else:
        assert named.status_code == 404
        assert listed == []
    assert Fault.from_dict({"preset": "capacity_exhausted", "created": created}).names_request is created
    with pytest.raises(ValueError, match="names_request"):
        Fault(status=503, body={"error": "x"}, names_request=True)


# Other routes


def test_list_requests_filters_by_model(sim: KlingSimulator) -> None:
    api = Api(sim)
    ids = {api.submit_id(), api.submit_id()}
    api.submit_id({"prompt": "a cat"}, model="kling-3.0-turbo-t2v")
    listed = api.get("/requests", params={"model_id": I2V}).json()
    assert listed["total"] == 2
    assert {r["request_id"] for r in listed["requests"]} == ids
    assert api.get("/requests").json()["total"] == 3
    assert api.get("/requests", params={"model_id": "nope"}).json() == {"requests": [], "total": 0}


def test_models_and_model_detail(sim: KlingSimulator) -> None:
    api = Api(sim)
    model_ids = api.get("/models").json()["model_ids"]
    for model in (I2V, "kling-3.0-turbo-t2v", "kling-v3-image-to-video", "kling-v2-5-turbo", "kling-v2-6"):
        assert model in model_ids
    assert len(model_ids) > 5
    detail = api.get(f"/models/{I2V}").json()
    assert detail["model"] == I2V
    params = {p["name"]: p for p in detail["parameters"]}
    assert params["first_frame"]["required"] is True
    assert params["resolution"]["options"] == ["720p", "1080p"]
    assert params["duration"]["min_value"] == 3
    assert params["duration"]["max_value"] == 15
    assert detail["price_info"] == {"price": 0.112, "pricing_type": "per_second", "unit": "second"}
    assert "price_info" in api.get("/models/kling-3.0-turbo-t2v").json()
    slashed = next(m for m in model_ids if "/" in m)
    assert api.get(f"/models/{slashed}").json()["model"] == slashed
    missing = api.get("/models/kling-9")
    assert missing.status_code == 404
    assert missing.json() == {"error": "model kling-9 does not exist"}


def test_unknown_request_is_404(sim: KlingSimulator) -> None:
    response = Api(sim).get("/requests/does-not-exist")
    assert response.status_code == 404
    assert response.json() == {"error": "request does-not-exist not found"}


def test_unknown_route_answers_json_404(sim: KlingSimulator) -> None:
    response = requests.get(f"{sim.base_url}/nope", timeout=10)
    assert response.status_code == 404
    assert "error" in response.json()


def test_delete_cancels_a_running_request(sim: KlingSimulator) -> None:
    api = Api(sim)
    request_id = api.submit_id({**PAYLOAD, "prompt": "SIMULATE_STUCK"})
    response = api.session.delete(f"{sim.api_url}/requests/{request_id}", timeout=10)
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert api.record(request_id)["status"] == "cancelled"
    assert api.session.delete(f"{sim.api_url}/requests/nope", timeout=10).status_code == 404


def test_delete_leaves_a_finished_request_alone() -> None:
    with KlingSimulator(instant_models=["*"]) as simulator:
        api = Api(simulator)
        request_id = api.submit_id()
        response = api.session.delete(f"{simulator.api_url}/requests/{request_id}", timeout=10)
        assert response.json()["status"] == "success"


# Validation


@pytest.mark.parametrize(
    ("model", "payload", "status", "error"),
    [
        (I2V, {"prompt": "no frame"}, 400, "first_frame is required"),
        (I2V, {"first_frame": "", "prompt": "x"}, 400, "first_frame is required"),
        (I2V, {"first_frame": 123}, 400, "first_frame is required"),
        (I2V, {}, 400, None),
        (I2V, "not a dict", 400, None),
        (I2V, None, 400, None),
        (I2V, {**PAYLOAD, "prompt": "x" * 2501}, 400, None),
        (I2V, {**PAYLOAD, "resolution": "4k"}, 500, "Backend error (400). Please try again."),
        (I2V, {**PAYLOAD, "duration": "20"}, 500, "Backend error (400). Please try again."),
        (I2V, {**PAYLOAD, "duration": 5}, 500, "Backend error (400). Please try again."),
        ("kling-3.0-turbo-t2v", {"resolution": "720p"}, 400, "prompt is required"),
        ("kling-3.0-turbo-t2v", {"prompt": "x", "aspect_ratio": "4:3"}, 500, None),
        ("kling-v3-image-to-video", {"prompt": "x"}, 400, "image is required"),
        ("no-such-model", PAYLOAD, 404, "model no-such-model does not exist"),
    ],
)
def test_invalid_submits_are_rejected(
    sim: KlingSimulator, model: str, payload: Any, status: int, error: str | None
) -> None:
    body = {"model": model, "payload": payload}
    response = Api(sim).session.post(f"{sim.api_url}/requests", json=body, timeout=10)
    assert response.status_code == status
    assert isinstance(response.json()["error"], str)
    if error:
        assert response.json()["error"] == error
    assert not sim.requests


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'{"payload": {}}', b""])
def test_malformed_submit_bodies_get_400(sim: KlingSimulator, body: bytes) -> None:
    headers = {"Content-Type": "application/json"}
    response = Api(sim).session.post(f"{sim.api_url}/requests", data=body, headers=headers, timeout=10)
    assert response.status_code == 400
    assert "error" in response.json()


def test_valid_payload_variants_are_accepted(sim: KlingSimulator) -> None:
    api = Api(sim)
    for extra in ({"resolution": "1080p", "duration": "15"}, {"resolution": "720p", "duration": "3"}, {}):
        assert api.submit({**PAYLOAD, **extra}).status_code == 200
    assert api.submit({"prompt": "p", "image": "https://x/y.png"}, model="kling-v2-6").status_code == 200


# Headers and counters


def test_organization_header_and_redacted_headers_are_recorded(sim: KlingSimulator) -> None:
    api = Api(sim)
    request_id = api.submit(headers={"X-Organization-ID": "org-42"}).json()["request_id"]
    submitted = sim.get_request(request_id)
    assert submitted.organization_id == "org-42"
    assert submitted.headers["x-organization-id"] == "org-42"
    assert submitted.headers["authorization"] == "Bearer ***"
    assert submitted.payload == PAYLOAD
    assert api.record(request_id)["org_id"] == "org-42"
    assert sim.api_key not in json.dumps(requests.get(f"{sim.base_url}/_simulator/stats", timeout=10).json())
    api.get(f"/requests/{request_id}", headers={"X-Organization-ID": "org-42"})
    assert (sim.last_headers("GET /requests/{request_id}") or {})["x-organization-id"] == "org-42"


def test_counters_include_faults_and_auth_failures(sim: KlingSimulator) -> None:
    api = Api(sim)
    sim.script("POST /requests", Fault.capacity_exhausted())
    api.submit()
    api.submit()
    requests.post(f"{sim.api_url}/requests", json={}, timeout=10)
    api.get("/models")
    assert sim.count("POST /requests") == 3
    assert sim.count("post /requests/") == 3
    assert sim.count("GET /models") == 1
    assert sim.count("GET /requests/{id}") == 0
    assert sim.count() == 4
    assert sim.counts == {"POST /requests": 3, "GET /models": 1}
    assert len(sim.requests) == 1
    with pytest.raises(ValueError, match="unknown route key"):
        sim.count("GET /nope")


# Fault script


def test_rate_limit_fault(sim: KlingSimulator) -> None:
    sim.script(
        "POST /requests",
        [Fault.rate_limited(retry_after_ms=50), Fault.rate_limited(1500, retry_after_header=True)],
    )
    api = Api(sim)
    first = api.submit()
    assert first.status_code == 429
    assert first.json() == {
        "error": f"Rate limit exceeded for model {I2V}: 2 requests per 60 seconds. Retry in 50 ms.",
        "rate_limit": {"limit_type": "RPM", "limit": 2, "interval_seconds": 60, "retry_after_ms": 50},
    }
    assert "Retry-After" not in first.headers
    second = api.submit()
    assert second.status_code == 429
    assert second.headers["Retry-After"] == "2"
    assert api.submit().status_code == 200
    assert len(sim.requests) == 1


def test_rate_limit_refuses_submits_beyond_the_window_until_a_slot_frees(
    manual: tuple[KlingSimulator, ManualClock],
) -> None:
    sim, clock = manual
    sim.configure(rate_limit=2, rate_limit_seconds=10)
    api = Api(sim)
    assert api.submit().status_code == 200
    clock.advance(4)
    assert api.submit().status_code == 200
    refused = api.submit()
    assert refused.status_code == 429
    # The oldest accepted submit leaves the window 6 s from now.
    assert refused.json()["rate_limit"] == {
        "limit_type": "RPM",
        "limit": 2,
        "interval_seconds": 10,
        "retry_after_ms": 6000,
    }
    clock.advance(6)
    assert api.submit().status_code == 200
    assert api.submit().status_code == 429
    assert len(sim.requests) == 3
    assert sim.refused_submits == 2
    assert sim.count("POST /requests") == 5
    with pytest.raises(ValueError, match="Invalid rate_limit: 0 is out of range"):
        sim.configure(rate_limit=0)


def test_capacity_and_backend_error_faults(sim: KlingSimulator) -> None:
    sim.script(
        "GET /requests/{id}", [Fault.capacity_exhausted(), Fault.backend_error(), Fault.error(402, "pay")]
    )
    api = Api(sim)
    request_id = api.submit_id()
    capacity = api.get(f"/requests/{request_id}")
    assert capacity.status_code == 503
    assert capacity.json()["error"] == "Upstream capacity temporarily exhausted; please retry later"
    assert uuid.UUID(capacity.json()["request_id"])
    backend = api.get(f"/requests/{request_id}")
    assert (backend.status_code, backend.json()) == (500, {"error": "Backend error (400). Please try again."})
    assert api.get(f"/requests/{request_id}").status_code == 402
    assert api.get(f"/requests/{request_id}").status_code == 200


def test_non_json_and_custom_faults(sim: KlingSimulator) -> None:
    sim.script(
        "GET /models",
        [
            Fault.non_json(),
            Fault(status=200, text="not json at all"),
            Fault(status=418, headers={"X-Extra": "1"}),
            Fault(status=200, body={"model_ids": ["only-this"]}),
        ],
    )
    api = Api(sim)
    html = api.get("/models")
    assert html.status_code == 502
    assert html.headers["content-type"].startswith("text/html")
    with pytest.raises(requests.JSONDecodeError):
        html.json()
    plain = api.get("/models")
    assert (plain.status_code, plain.text) == (200, "not json at all")
    teapot = api.get("/models")
    assert teapot.status_code == 418
    assert teapot.headers["X-Extra"] == "1"
    assert teapot.json() == {"error": "simulated HTTP 418"}
    assert api.get("/models").json() == {"model_ids": ["only-this"]}
    assert I2V in api.get("/models").json()["model_ids"]


def test_delay_fault_answers_late(sim: KlingSimulator) -> None:
    sim.script("GET /models", [Fault(status=503, delay=0.5), Fault.slow(0.5)])
    api = Api(sim)
    started = time.monotonic()
    assert api.get("/models").status_code == 503
    assert time.monotonic() - started >= 0.45
    started = time.monotonic()
    assert api.get("/models").status_code == 200
    assert time.monotonic() - started >= 0.45


def test_slow_fault_trips_client_timeout_and_stop_stays_fast() -> None:
    simulator = KlingSimulator().start()
    try:
        simulator.script("GET /models", Fault.slow(30))
        with pytest.raises(requests.ReadTimeout):
            Api(simulator).session.get(f"{simulator.api_url}/models", timeout=0.5)
    finally:
        started = time.monotonic()
        simulator.stop()
    assert time.monotonic() - started < 10


def test_connection_reset_is_a_connection_error_for_requests(sim: KlingSimulator) -> None:
    sim.script("POST /requests", Fault.connection_reset())
    api = Api(sim)
    with pytest.raises(requests.ConnectionError):
        api.submit()
    assert not sim.requests
    assert api.submit().status_code == 200
    assert sim.count("POST /requests") == 2


def test_connection_reset_is_a_transport_error_for_httpx(sim: KlingSimulator) -> None:
    sim.script("GET /requests/{id}", [Fault.connection_reset(), Fault.connection_reset(delay=0.1)])
    headers = {"Authorization": f"Bearer {sim.api_key}"}
    with httpx.Client(headers=headers, timeout=10) as client:
        for _ in range(2):
            with pytest.raises(httpx.TransportError):
                client.get(f"{sim.api_url}/requests/x")
        assert client.get(f"{sim.api_url}/requests/x").status_code == 404


@pytest.mark.parametrize(
    "fault", [Fault(status=504, after_processing=True), Fault.connection_reset(after_processing=True)]
)
def test_after_processing_creates_the_request_then_fails_the_answer(
    sim: KlingSimulator, fault: Fault
) -> None:
    sim.script("POST /requests", fault)
    api = Api(sim)
    try:
        assert api.submit().status_code == 504
    except requests.ConnectionError:
        assert fault.reset
    assert len(sim.requests) == 1
    record, _ = api.wait_for(sim.requests[0].request_id, {"success"})
    assert record["model"] == I2V


def test_media_route_faults(sim: KlingSimulator) -> None:
    sim.configure(instant_models=["*"], outcome_shape="video_url")
    outcome = Api(sim).submit().json()["outcome"]
    sim.script("GET /media", [Fault.error(503, "storage down"), Fault.connection_reset()])
    assert requests.get(outcome["video_url"], timeout=10).status_code == 503
    with pytest.raises(requests.ConnectionError):
        requests.get(outcome["thumbnail_image_url"], timeout=10)
    assert requests.get(outcome["video_url"], timeout=10).status_code == 200
    assert sim.count("GET /media") == 3


def test_fault_script_api_checks_its_input(sim: KlingSimulator) -> None:
    with pytest.raises(ValueError, match="unknown route key"):
        sim.script("GET /request/{id}", Fault())
    with pytest.raises(ValueError, match="HTTP status"):
        Fault(status=42)
    with pytest.raises(ValueError, match="not both"):
        Fault(body={}, text="x")
    with pytest.raises(ValueError, match="delay"):
        Fault(delay=-1)
    sim.script("GET /requests/{request_id}", [Fault(), Fault()])
    assert sim.state.pending_faults() == {"GET /requests/{id}": 2}
    sim.clear_faults("GET /requests/{id}")
    assert sim.state.pending_faults() == {}
    assert Fault.from_dict(Fault.rate_limited(7).to_dict()) == Fault.rate_limited(7)


# Control HTTP API


def test_control_api_drives_a_simulator(sim: KlingSimulator) -> None:
    control = f"{sim.base_url}/_simulator"
    faults: list[dict[str, Any]] = [
        {"route": "POST /requests", "faults": [{"preset": "rate_limited", "retry_after_ms": 50}]},
        {
            "route": "GET /models",
            "faults": {"status": 503, "body": {"error": "x"}, "headers": {"Retry-After": "1"}},
        },
    ]
    pushed = requests.post(f"{control}/faults", json=faults, timeout=10)
    assert pushed.json() == {"pending_faults": {"POST /requests": 1, "GET /models": 1}}
    api = Api(sim)
    assert api.submit().json()["rate_limit"]["retry_after_ms"] == 50
    models = api.get("/models")
    assert (models.status_code, models.headers["Retry-After"]) == (503, "1")

    config = requests.post(
        f"{control}/config", json={"queued_seconds": 0, "processing_seconds": 0}, timeout=10
    )
    assert config.json()["queued_seconds"] == 0
    requests.post(f"{control}/fail_next", json={"message": "via http"}, timeout=10)
    request_id = api.submit_id({**PAYLOAD, "prompt": "plain"})
    assert api.wait_for(request_id, {"failed"})[0]["outcome"] == {"error": "simulated failure: via http"}

    stats = requests.get(f"{control}/stats", timeout=10).json()
    assert stats["counts"]["POST /requests"] == 2
    assert stats["counts"]["GET /models"] == 1
    assert [r["request_id"] for r in stats["requests"]] == [request_id]
    assert stats["requests"][0]["status"] == "failed"
    assert stats["config"]["processing_seconds"] == 0

    requests.post(f"{control}/faults", json={"route": "GET /models", "faults": [{}]}, timeout=10)
    assert requests.delete(f"{control}/faults", timeout=10).json() == {"pending_faults": {}}
    assert requests.post(f"{control}/reset", timeout=10).json() == {"ok": True}
    stats = requests.get(f"{control}/stats", timeout=10).json()
    assert (stats["counts"], stats["requests"], stats["pending_faults"]) == ({}, [], {})
    assert requests.get(f"{control}/config", timeout=10).json()["queued_seconds"] == 0.2


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("faults", {"route": "GET /nope", "faults": []}),
        ("faults", {"faults": []}),
        ("faults", {"route": "GET /models", "faults": [{"preset": "nope"}]}),
        ("faults", {"route": "GET /models", "faults": [{"status": "x"}]}),
        ("faults", {"route": "GET /models", "faults": [{"bogus": 1}]}),
        ("config", {"outcome_shape": "gif"}),
        ("config", {"outcome_shape": "url,gif"}),
        ("config", {"payload_echo": "sometimes"}),
        ("config", {"submit_shape": "tiny"}),
        ("config", {"sync_models": "kling-v2-6"}),
        ("config", {"queued_seconds": -1}),
        ("config", {"nope": 1}),
        ("config", {"instant_models": "kling-v2-6"}),
        ("config", [1]),
    ],
)
def test_control_api_rejects_bad_input(sim: KlingSimulator, path: str, body: Any) -> None:
    response = requests.post(f"{sim.base_url}/_simulator/{path}", json=body, timeout=10)
    assert response.status_code == 400
    assert "error" in response.json()
    assert sim.state.pending_faults() == {}


def test_control_api_needs_no_key_and_is_not_counted(sim: KlingSimulator) -> None:
    assert requests.get(f"{sim.base_url}/_simulator/stats", timeout=10).status_code == 200
    assert requests.post(f"{sim.base_url}/_simulator/fail_next", timeout=10).status_code == 200
    assert sim.count() == 0


# Media


def test_media_route_serves_an_mp4_and_a_thumbnail(sim: KlingSimulator) -> None:
    sim.configure(instant_models=["*"], outcome_shape="media_objects")
    outcome = Api(sim).submit().json()["outcome"]
    with requests.get(video_url(outcome), stream=True, timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "video/mp4"
        data = b"".join(response.iter_content(1024))
    assert data[4:8] == b"ftyp"
    assert int(response.headers["content-length"]) == len(data)
    thumbnail = requests.get(outcome["thumbnail_image_url"], timeout=10)
    assert thumbnail.status_code == 200
    assert thumbnail.headers["content-type"] in ("image/jpeg", "image/png")
    assert thumbnail.content[:3] == b"\xff\xd8\xff" or thumbnail.content[:4] == b"\x89PNG"


def test_media_for_unknown_request_is_404(sim: KlingSimulator) -> None:
    assert requests.get(f"{sim.base_url}/media/nope/sample_0.mp4", timeout=10).status_code == 404
    assert requests.get(f"{sim.base_url}/media/nope/thumbnail.jpg", timeout=10).status_code == 404


def test_bundled_sample_is_small_and_plays() -> None:
    data = fallback_video()
    assert data[4:8] == b"ftyp"
    assert len(data) < 50_000
    av = pytest.importorskip("av")
    with av.open(io.BytesIO(data)) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == 24
    assert (frames[0].width, frames[0].height) == (192, 108)


@pytest.mark.parametrize(("size", "expected"), [((640, 400), (480, 300)), ((301, 500), (288, 480))])
@pytest.mark.parametrize("prefix", ["", "data:image/png;base64,"])
def test_media_is_encoded_from_a_base64_first_frame(
    sim: KlingSimulator, size: tuple[int, int], expected: tuple[int, int], prefix: str
) -> None:
    av = pytest.importorskip("av")
    sim.configure(instant_models=["*"], outcome_shape="media_strings")
    payload = {"first_frame": prefix + png_base64(*size), "duration": "3", "resolution": "1080p"}
    outcome = Api(sim).submit(payload).json()["outcome"]
    response = requests.get(video_url(outcome), timeout=30)
    assert response.status_code == 200
    assert response.content[4:8] == b"ftyp"
    with av.open(io.BytesIO(response.content)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name in ("h264", "mpeg4")
        frames = list(container.decode(video=0))
    assert len(frames) == 36  # 3 s at 12 fps
    assert (frames[0].width, frames[0].height) == expected
    assert frames[0].format.name == "yuv420p"


def test_the_clip_follows_the_requests_duration_and_resolution(sim: KlingSimulator) -> None:
    av = pytest.importorskip("av")
    sim.configure(instant_models=["*"], outcome_shape="media_strings")
    api = Api(sim)
    for payload, frame_count, size in (
        ({"duration": "10", "resolution": "720p"}, 120, (320, 200)),
        ({}, 60, (320, 200)),  # GMI's defaults: 5 s at 720p
    ):
        outcome = api.submit({"first_frame": png_base64(640, 400), **payload}).json()["outcome"]
        with av.open(io.BytesIO(requests.get(video_url(outcome), timeout=60).content)) as container:
            frames = list(container.decode(video=0))
        assert len(frames) == frame_count
        assert (frames[0].width, frames[0].height) == size


def test_the_sample_clip_is_served_with_a_line_saying_why(sim: KlingSimulator, caplog) -> None:
    sim.configure(instant_models=["*"], outcome_shape="video_url")
    outcome = (
        Api(sim).submit({"first_frame": "https://example.com/a.jpg", "duration": "10"}).json()["outcome"]
    )
    with caplog.at_level(logging.INFO, logger="airflow_provider_kling.testing.media"):
        assert requests.get(outcome["video_url"], timeout=30).content == fallback_video()
    assert "instead of a 10 s clip of the image: the first frame is a URL" in caplog.text


def test_url_first_frame_and_garbage_get_the_fallback_clip(sim: KlingSimulator) -> None:
    sim.configure(instant_models=["*"], outcome_shape="video_url")
    api = Api(sim)
    for first_frame in ("https://example.com/a.jpg", "bm90IGFuIGltYWdl", "%%%"):
        outcome = api.submit({"first_frame": first_frame}).json()["outcome"]
        assert requests.get(outcome["video_url"], timeout=30).content == fallback_video()


def test_concurrent_pollers_are_served(sim: KlingSimulator) -> None:
    request_id = Api(sim).submit_id()
    path = f"{API_PREFIX}/requests/{request_id}"
    raw = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {sim.api_key}\r\n\r\n".encode()

    async def poller() -> list[bytes]:
        # Plain asyncio streams: httpx's async pool is itself too slow to load the server this hard.
        reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
        statuses = []
        for _ in range(2):
            writer.write(raw)
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
            await reader.readexactly(length)
            statuses.append(head.split(b" ")[1])
        writer.close()
        return statuses

    async def poll_all() -> list[list[bytes]]:
        return await asyncio.gather(*(poller() for _ in range(300)))

    assert asyncio.run(poll_all()) == [[b"200", b"200"]] * 300

    def session_poller(_: int) -> list[int]:
        with requests.Session() as session:
            session.headers["Authorization"] = f"Bearer {sim.api_key}"
            return [session.get(f"{sim.base_url}{path}", timeout=30).status_code for _ in range(10)]

    with ThreadPoolExecutor(max_workers=30) as pool:
        assert list(pool.map(session_poller, range(30))) == [[200] * 10] * 30
    assert sim.count("GET /requests/{id}") == 900


# Lifecycle of the server itself


def test_start_stop_restart_and_port_zero() -> None:
    simulator = KlingSimulator()
    with pytest.raises(RuntimeError):
        _ = simulator.base_url
    with simulator:
        assert simulator.base_url == f"http://127.0.0.1:{simulator.port}"
        assert simulator.port > 0
        assert Api(simulator).get("/models").status_code == 200
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{simulator.base_url}/_simulator/stats", timeout=5)
    with simulator:
        assert requests.get(f"{simulator.base_url}/_simulator/stats", timeout=10).status_code == 200


def test_create_app_works_under_any_asgi_server() -> None:
    state = SimulatorState(api_key="k", config=SimulatorConfig(queued_seconds=0, processing_seconds=0))
    state.script("GET /models", Fault.connection_reset())

    async def call() -> tuple[int, int]:
        transport = httpx.ASGITransport(app=create_app(state))
        async with httpx.AsyncClient(transport=transport, base_url="http://sim") as client:
            # Without the simulator's uvicorn protocol a reset cannot be done; it degrades to a 500.
            reset = await client.get(f"{API_PREFIX}/models", headers={"Authorization": "Bearer k"})
            models = await client.get(f"{API_PREFIX}/models", headers={"Authorization": "Bearer k"})
        return reset.status_code, models.status_code

    assert asyncio.run(call()) == (500, 200)
    assert create_app().state.simulator.api_key == "sim-test-key"


def _read_line(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise AssertionError("the simulator CLI printed nothing")
    return process.stdout.readline().strip()


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_cli_serves_until_signalled(stop_signal: signal.Signals) -> None:
    command = [
        sys.executable, "-m", "airflow_provider_kling.testing.simulator",
        "--port", "0", "--api-key", "cli-key", "--queued-seconds", "0", "--processing-seconds", "0",
        "--outcome-shape", "video_url",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        base_url = _read_line(process, WAIT)
        assert base_url.startswith("http://127.0.0.1:")
        headers = {"Authorization": "Bearer cli-key"}
        api = f"{base_url}{API_PREFIX}"
        submitted = requests.post(
            f"{api}/requests", json={"model": I2V, "payload": PAYLOAD}, headers=headers, timeout=10
        )
        record = requests.get(
            f"{api}/requests/{submitted.json()['request_id']}", headers=headers, timeout=10
        ).json()
        assert record["outcome"]["video_url"].startswith(base_url)
        process.send_signal(stop_signal)
        _, stderr = process.communicate(timeout=WAIT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "RuntimeWarning" not in stderr
    assert "cli-key" not in stderr


def test_cli_reports_a_busy_port(sim: KlingSimulator) -> None:
    command = [sys.executable, "-m", "airflow_provider_kling.testing.simulator", "--port", str(sim.port)]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "cannot serve" in result.stderr


# Pytest plugin


def test_pytest_plugin_fixtures(tmp_path: Path) -> None:
    (tmp_path / "test_user_dag.py").write_text(
        textwrap.dedent(
            """
            import json, os
            import pytest, requests
            from airflow_provider_kling.api import API_PREFIX

            def test_connection_points_at_the_simulator(kling_connection_env, kling_simulator):
                connection = json.loads(os.environ["AIRFLOW_CONN_KLING_DEFAULT"])
                assert connection == kling_connection_env
                assert connection["conn_type"] == "kling"
                assert connection["host"] == kling_simulator.base_url
                url = connection["host"] + API_PREFIX + "/models"
                auth = {"Authorization": "Bearer " + connection["password"]}
                assert requests.get(url, headers=auth, timeout=10).status_code == 200
                assert kling_simulator.count("GET /models") == 1
                assert kling_simulator.config.queued_seconds < 1

            @pytest.mark.kling_simulator(outcome_shape="video_url", api_key="mine")
            def test_marker_options(kling_simulator):
                assert kling_simulator.api_key == "mine"
                assert kling_simulator.config.outcome_shape == "video_url"

            def test_environment_is_restored():
                assert "AIRFLOW_CONN_KLING_DEFAULT" not in os.environ

            from airflow_provider_kling.testing import SimulatorConfig

            @pytest.mark.kling_simulator(SimulatorConfig(queued_seconds=5), api_key="shared")
            def test_marker_config(kling_simulator):
                assert kling_simulator.config.queued_seconds == 5
                assert kling_simulator.config.processing_seconds == 2  # the config's own, not the fast one
                assert kling_simulator.api_key == "shared"
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if k != "AIRFLOW_CONN_KLING_DEFAULT"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
    # Autoload off, so an installed copy's pytest11 entry point cannot register the plugin twice.
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    command = [
        sys.executable, "-m", "pytest", "-q", "-p", "airflow_provider_kling.testing.pytest_plugin",
        "--strict-markers", "test_user_dag.py",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout

"""When a failed call is repeated, how long to wait, and what the error says."""

from __future__ import annotations

import email.utils
import json
import time

import pytest

from airflow_provider_kling.api import KlingAPIError
from airflow_provider_kling.exceptions import KlingSubmitOutcomeUnknown, KlingTransportError
from airflow_provider_kling.transport.failures import error_for_status, parse_retry_after
from airflow_provider_kling.transport.retries import is_retryable

RATE_LIMIT_BODY = {
    "error": "Rate limit exceeded for model seedream-5.0-lite: 2 requests per 60 seconds. Retry in 29970 ms.",
    "rate_limit": {"limit_type": "RPM", "limit": 2, "interval_seconds": 60, "retry_after_ms": 29970},
}


# --------------------------------------------------------------------------------------
# parse_retry_after
# --------------------------------------------------------------------------------------


def test_retry_after_ms_in_the_body_wins():
    assert parse_retry_after(RATE_LIMIT_BODY, {"Retry-After": "5"}) == pytest.approx(29.97)


def test_retry_after_ms_zero_means_now():
    assert parse_retry_after({"rate_limit": {"retry_after_ms": 0}}, {}) == 0.0


@pytest.mark.parametrize("value", [-5, "29970", True, None])
def test_unusable_retry_after_ms_is_ignored(value):
    assert parse_retry_after({"rate_limit": {"retry_after_ms": value}}, {}) is None


@pytest.mark.parametrize(
    ("name", "value", "seconds"), [("Retry-After", "7", 7.0), ("retry-after", " 2.5 ", 2.5)]
)
def test_retry_after_header_in_seconds(name, value, seconds):
    assert parse_retry_after(None, {name: value}) == seconds


def test_retry_after_header_as_an_http_date():
    when = email.utils.formatdate(time.time() + 120, usegmt=True)
    assert parse_retry_after("", {"Retry-After": when}) == pytest.approx(120, abs=2)


@pytest.fixture
def far_from_utc(monkeypatch):
    """A local time zone far from UTC, so a date read as local time is hours off."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_retry_after_header_as_an_http_date_with_minus_zero_zone_is_utc(far_from_utc):
    when = email.utils.formatdate(time.time() + 120).replace("+0000", "-0000")
    assert when.endswith("-0000")
    assert parse_retry_after("", {"Retry-After": when}) == pytest.approx(120, abs=2)


def test_a_retry_after_date_in_the_past_means_now():
    assert parse_retry_after(None, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0


@pytest.mark.parametrize("value", ["soon", "", "   "])
def test_a_garbage_retry_after_header_is_ignored(value):
    assert parse_retry_after(None, {"Retry-After": value}) is None


def test_retry_in_ms_sentence_in_the_error_text():
    body = {"error": "Rate limit exceeded. Retry in 1500 ms."}
    assert parse_retry_after(body, {}) == pytest.approx(1.5)
    assert parse_retry_after("Too many requests; retry in 250ms", {}) == pytest.approx(0.25)


def test_no_hint_at_all():
    assert parse_retry_after({"error": "Too many requests"}, {}) is None
    assert parse_retry_after(None, {}) is None


# --------------------------------------------------------------------------------------
# error_for_status
# --------------------------------------------------------------------------------------


def error(status: int, body: object = None, headers: dict[str, str] | None = None) -> KlingAPIError:
    text = body if isinstance(body, str) else json.dumps(body) if body is not None else ""
    return error_for_status(status, text, headers or {}, what="submit to kling-3.0-turbo-i2v")


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_points_to_the_password_field(status):
    err = error(status, {"error": "invalid api key"})
    assert err.status_code == status
    assert str(err).startswith(
        f"GMI answered HTTP {status} to submit to kling-3.0-turbo-i2v: invalid api key"
    )
    assert "Password field" in str(err)


def test_402_asks_for_billing_attention():
    err = error(402, {"error": "insufficient balance"})
    assert "billing" in str(err)
    assert "insufficient balance" in str(err)


def test_404_says_model_ids_are_case_sensitive():
    err = error(404, {"error": "model Kling-3.0-turbo-i2v does not exist"})
    assert err.status_code == 404
    assert "does not exist" in str(err)
    assert "case-sensitive" in str(err)


def test_429_says_rate_limited_and_how_long_to_wait():
    err = error(429, RATE_LIMIT_BODY)
    assert err.status_code == 429
    assert err.retry_after == pytest.approx(29.97)
    assert "rate limited" in str(err)
    assert "retry in 30.0 s" in str(err)
    assert "Rate limit exceeded for model" in str(err)


def test_429_without_a_hint_is_still_rate_limited():
    err = error(429, "")
    assert err.retry_after is None
    assert "rate limited" in str(err)


def test_500_backend_error_400_is_explained_as_an_invalid_parameter():
    err = error(500, {"error": "Backend error (400). Please try again."})
    assert err.status_code == 500
    assert "invalid parameter value" in str(err)


def test_a_plain_500_is_a_server_side_problem():
    err = error(500, {"error": "internal"})
    assert "server-side problem" in str(err)
    assert "invalid parameter" not in str(err)


def test_503_capacity_outage():
    err = error(
        503, {"error": "Upstream capacity temporarily exhausted; please retry later", "request_id": "x"}
    )
    assert err.status_code == 503
    assert "capacity temporarily exhausted" in str(err)
    assert "server-side problem" in str(err)


def test_a_non_json_body_is_shown_shortened():
    html = "<html><body>\n  <h1>502 Bad Gateway</h1>\n" + "x" * 1000 + "</body></html>"
    err = error(502, html)
    assert err.status_code == 502
    assert "<h1>502 Bad Gateway</h1>" in str(err)
    assert "\n" not in str(err)
    assert len(str(err)) < 500


def test_an_empty_body_says_so():
    assert "(empty body)" in str(error(500, ""))


def test_a_json_body_without_an_error_field_is_shown_as_it_is():
    assert '"detail": "nope"' in str(error(400, {"detail": "nope"}))
    assert "refused" in str(error(400, {"detail": "nope"}))


def test_a_garbage_retry_after_header_still_gives_an_api_error():
    err = error(503, {"error": "busy"}, {"Retry-After": "later"})
    assert isinstance(err, KlingAPIError)
    assert err.retry_after is None


# --------------------------------------------------------------------------------------
# is_retryable
# --------------------------------------------------------------------------------------


def http(status: int) -> KlingAPIError:
    return KlingAPIError(f"HTTP {status}", status_code=status)


@pytest.mark.parametrize(
    ("exc", "get", "post"),
    [
        pytest.param(http(429), True, True, id="429"),
        pytest.param(http(503), True, False, id="503"),  # a proxy's 503 says nothing of GMI's queue
        pytest.param(http(500), True, False, id="500"),
        pytest.param(http(502), True, False, id="502"),
        pytest.param(http(504), True, False, id="504"),
        pytest.param(http(408), True, True, id="408"),
        pytest.param(
            KlingAPIError("HTTP 503", status_code=503, request_id="req-9"),
            True,
            False,
            id="503-naming-a-request",
        ),
        pytest.param(http(400), False, False, id="400"),
        pytest.param(http(401), False, False, id="401"),
        pytest.param(http(402), False, False, id="402"),
        pytest.param(http(404), False, False, id="404"),
        pytest.param(KlingTransportError("refused", sent=False), True, True, id="transport-unsent"),
        pytest.param(KlingTransportError("read timeout", sent=True), True, False, id="transport-sent"),
        pytest.param(KlingAPIError("not JSON"), True, False, id="bad-body"),
        pytest.param(
            KlingSubmitOutcomeUnknown("unknown", model="m", started_at=0.0), False, False, id="submit-unknown"
        ),
        pytest.param(ValueError("bug"), False, False, id="other-exception"),
    ],
)
def test_retry_matrix(exc, get, post):
    assert is_retryable(exc, idempotent=True) is get
    assert is_retryable(exc, idempotent=False) is post

"""The simulator's behaviour knobs, checked when set (see docs/simulator.rst)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_kling.testing.wire import (
    FAILURE_SHAPES,
    OUTCOME_SHAPES,
    PAYLOAD_ECHOES,
    SUBMIT_SHAPES,
    SUBMIT_STATUSES,
)

#: Every outcome shape GMI is known to answer with, one request after another.
DEFAULT_OUTCOME_SHAPE = "rotate"


@dataclass(frozen=True)
class SimulatorConfig:
    """Behaviour knobs. Timing, outcome shape and instant or synchronous answers are fixed per request
    when it is submitted; ``failure_shape``, ``payload_echo`` and ``media_base_url`` apply to every read.

    :param queued_seconds: how long a request reports ``queued``.
    :param processing_seconds: how long it then reports ``processing`` before its terminal status.
    :param processing_seconds_max: when set, each request's processing time is drawn uniformly between
        ``processing_seconds`` and this, so requests finish at scattered times (benchmarks, load tests).
    :param outcome_shape: one of ``media_objects``, ``media_strings``, ``video_url``, ``url`` (a flat
        ``outcome.url``); ``rotate`` to cycle all of them, one request after another, so every client code
        path gets exercised (the default); or a comma-separated list of shapes to cycle.
    :param submit_status: status in the submit answer: ``queued`` (default), ``dispatched`` or ``created``.
    :param submit_shape: keys of a submit answer for a request that has not finished: ``standard``
        (``request_id``, ``model``, ``status`` and the three timestamps) or ``minimal`` (``request_id`` and
        ``status`` only, as a live answer was seen).
    :param instant_models: models whose submit answers a terminal record at once; ``"*"`` means all.
    :param sync_models: models that finish at once but whose submit answer is the short record with the
        terminal status and no ``outcome`` (``{"status": "success"}``); the outcome comes with the GET of
        the same request. ``"*"`` means all; the prompt marker ``SIMULATE_SYNC`` does it for one request.
    :param payload_echo: the ``payload`` of a GET record: ``verbatim`` (the submitted payload, a base64
        ``first_frame`` included, as GMI's docs show), ``empty`` (``{}``, as one live record had) or
        ``absent`` (no ``payload`` key).
    :param failure_shape: where a failure's message goes: ``outcome_object`` (``{"error": ...}``),
        ``outcome_string``, ``error_field`` (top-level ``error``) or ``reason_field`` (top-level ``reason``).
    :param media_base_url: base of media URLs in outcomes; default is the base URL the poll came in on.
    :param media_bytes: when set, every video is served as exactly this many bytes (the clip, then zero
        padding), streamed, so large downloads can be tested without storing them.
    :param media_bytes_per_second: with ``media_bytes``, stream videos no faster than this, so a test
        can act while a download is under way.
    :param rate_limit: when set, GMI's per-organization rate limit: at most this many submits are accepted
        in any ``rate_limit_seconds``; the next one is answered 429 with GMI's rate-limit body and the
        milliseconds until a slot frees up.
    :param rate_limit_seconds: the window of ``rate_limit`` (GMI's is 60 seconds).
    """

    queued_seconds: float = 1.0
    processing_seconds: float = 2.0
    processing_seconds_max: float | None = None
    outcome_shape: str = DEFAULT_OUTCOME_SHAPE
    submit_status: str = "queued"
    submit_shape: str = "standard"
    instant_models: frozenset[str] = frozenset()
    sync_models: frozenset[str] = frozenset()
    failure_shape: str = "outcome_object"
    payload_echo: str = "verbatim"
    media_base_url: str | None = None
    media_bytes: int | None = None
    media_bytes_per_second: float | None = None
    rate_limit: int | None = None
    rate_limit_seconds: float = 60.0

    def __post_init__(self) -> None:
        for models in ("instant_models", "sync_models"):
            if isinstance(getattr(self, models), str):
                raise ValueError(f"{models} must be a collection of model ids, not a string")
            object.__setattr__(self, models, frozenset(getattr(self, models)))
        if not (self.queued_seconds >= 0 and self.processing_seconds >= 0):
            raise ValueError("queued_seconds and processing_seconds must be >= 0")
        if (
            self.processing_seconds_max is not None
            and not self.processing_seconds_max >= self.processing_seconds
        ):
            raise ValueError("processing_seconds_max must be >= processing_seconds")
        if self.media_bytes is not None and not (isinstance(self.media_bytes, int) and self.media_bytes >= 0):
            raise ValueError("media_bytes must be a whole number of bytes >= 0")
        if self.media_bytes_per_second is not None and not self.media_bytes_per_second > 0:
            raise ValueError("media_bytes_per_second must be > 0")
        if self.rate_limit is not None and not (isinstance(self.rate_limit, int) and self.rate_limit >= 1):
            raise ValueError("rate_limit must be a whole number of submits >= 1")
        if not self.rate_limit_seconds > 0:
            raise ValueError("rate_limit_seconds must be > 0")
        if not isinstance(self.outcome_shape, str) or not set(self.outcome_rotation()) <= set(OUTCOME_SHAPES):
            raise ValueError(
                "outcome_shape must be rotate or one or more (comma-separated) of "
                f"{', '.join(OUTCOME_SHAPES)}, got {self.outcome_shape!r}"
            )
        for name, value, allowed in (
            ("submit_status", self.submit_status, SUBMIT_STATUSES),
            ("submit_shape", self.submit_shape, SUBMIT_SHAPES),
            ("failure_shape", self.failure_shape, FAILURE_SHAPES),
            ("payload_echo", self.payload_echo, PAYLOAD_ECHOES),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")

    def outcome_rotation(self) -> tuple[str, ...]:
        """The outcome shapes successive requests take, cycled (a single shape: every request's)."""
        if self.outcome_shape == "rotate":
            return OUTCOME_SHAPES
        return tuple(shape.strip() for shape in self.outcome_shape.split(","))

    def updated(self, changes: Mapping[str, Any]) -> SimulatorConfig:
        """A copy with ``changes`` applied; unknown or invalid values raise ``ValueError``."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown config fields: {sorted(unknown)}")
        try:
            return dataclasses.replace(self, **changes)
        except TypeError as exc:
            raise ValueError(f"bad config value: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        """JSON form, as served by ``GET /_simulator/config``."""
        data = dataclasses.asdict(self)
        data["instant_models"] = sorted(self.instant_models)
        data["sync_models"] = sorted(self.sync_models)
        return data

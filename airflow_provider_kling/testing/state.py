"""The simulator's in-memory state: configuration, submitted requests, counters and fault scripts.

Statuses are never stored: they are computed from the submit time on every read, so polling costs a
dictionary lookup and a few comparisons no matter how many requests exist. What GMI would answer for
a request (its JSON shape) is :mod:`.wire`'s business, not this module's.
"""

from __future__ import annotations

import dataclasses
import hmac
import itertools
import random
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_kling.testing.faults import Fault, normalize_route_key
from airflow_provider_kling.testing.media import MediaStore
from airflow_provider_kling.testing.wire import (
    FAILURE_SHAPES,
    OUTCOME_SHAPES,
    PAYLOAD_ECHOES,
    SUBMIT_SHAPES,
    SUBMIT_STATUSES,
    TERMINAL_STATUSES,
)

MARKERS = {"SIMULATE_STUCK": "stuck", "SIMULATE_FAILURE": "failed", "SIMULATE_CANCEL": "cancelled"}
#: A prompt marker, independent of the fate markers: answer the submit synchronously (see sync_models).
SYNC_MARKER = "SIMULATE_SYNC"
#: The default rotation: the outcome shapes the provider's client reads today. ``url`` joins it (as
#: ``"rotate"``) once the client reads a flat ``outcome.url``; until then it would fail the provider's
#: own tests, which run on this default.
DEFAULT_OUTCOME_SHAPE = "media_objects,media_strings,video_url"


class ManualClock:
    """A clock that only moves when told to; pass it as ``clock=`` to step through a lifecycle."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        with self._lock:
            self._now += seconds


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
        path gets exercised; or a comma-separated list of shapes to cycle. The default cycles every shape
        but ``url``.
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


@dataclass(frozen=True)
class SubmittedRequest:
    """A request the simulator accepted. ``headers`` are lower-cased, with the API key redacted."""

    request_id: str
    model: str
    payload: dict[str, Any]
    headers: dict[str, str]
    organization_id: str | None
    submitted_at: float
    queued_seconds: float
    processing_seconds: float
    fate: str  # success, failed, cancelled or stuck
    message: str | None = None
    outcome_shape: str = "media_objects"
    cancelled_at: float | None = None
    #: Answer the submit with the short record and no outcome, although the request is already finished.
    sync: bool = False

    @property
    def finishes_at(self) -> float | None:
        """When the request reaches its terminal status (``None`` if it never will, or was cancelled)."""
        if self.fate == "stuck" or self.cancelled_at is not None:
            return None
        return self.submitted_at + self.queued_seconds + self.processing_seconds

    def status_at(self, now: float) -> tuple[str, float]:
        """The status at ``now`` and the clock time it was entered."""
        if self.cancelled_at is not None:
            return "cancelled", self.cancelled_at
        started = self.submitted_at + self.queued_seconds
        if self.fate == "stuck" or now < started:
            return "queued", self.submitted_at
        finished = started + self.processing_seconds
        if now < finished:
            return "processing", started
        return ("success" if self.fate == "success" else self.fate), finished


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Lower-cased headers with credentials masked, safe to log or return from the control API."""
    safe = {name.lower(): value for name, value in headers.items()}
    for secret in ("authorization", "x-api-key", "cookie"):
        if secret in safe:
            safe[secret] = "Bearer ***" if safe[secret].lower().startswith("bearer ") else "***"
    return safe


class SimulatorState:
    """Everything one simulator knows; safe to use from the server thread and test threads at once."""

    def __init__(
        self,
        api_key: str = "sim-test-key",
        config: SimulatorConfig | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api_key = api_key
        self.clock = clock
        self.media = MediaStore()
        #: Set while the server stops, so scripted delays end early instead of holding up shutdown.
        self.shutting_down = threading.Event()
        self._initial_config = config or SimulatorConfig()
        self._lock = threading.Lock()
        self._reset_locked()

    def _reset_locked(self) -> None:
        self._config = self._initial_config
        self._requests: dict[str, SubmittedRequest] = {}
        self._counts: Counter[str] = Counter()
        self._last_headers: dict[str, Mapping[str, str]] = {}
        self._faults: dict[str, deque[Fault]] = {}
        self._fail_next: deque[str] = deque()
        self._rotation = itertools.count()
        self._random = random.Random(0)

    @property
    def config(self) -> SimulatorConfig:
        """The current configuration."""
        return self._config

    def configure(self, **changes: Any) -> SimulatorConfig:
        """Change configuration (see :class:`SimulatorConfig`); returns the new one."""
        with self._lock:
            self._config = self._config.updated(changes)
            return self._config

    def reset(self) -> None:
        """Forget requests, counters, faults and pending failures; restore the initial configuration."""
        with self._lock:
            self._reset_locked()
        self.media.clear()

    def check_api_key(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header carries this simulator's key."""
        scheme, _, token = (authorization or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), self.api_key.encode()
        )

    # Counters and faults

    def record_call(self, route: str, headers: Mapping[str, str]) -> Fault | None:
        """Count one call and pop the next scripted fault for its route, if any."""
        with self._lock:
            self._counts[route] += 1
            self._last_headers[route] = headers
            queue = self._faults.get(route)
            return queue.popleft() if queue else None

    def count(self, route: str | None = None) -> int:
        """Calls seen on a route key such as ``"POST /requests"`` (all routes when ``None``)."""
        with self._lock:
            if route is None:
                return sum(self._counts.values())
            return self._counts[normalize_route_key(route)]

    def counts(self) -> dict[str, int]:
        """Calls per route key."""
        with self._lock:
            return dict(self._counts)

    def last_headers(self, route: str) -> dict[str, str] | None:
        """Redacted headers of the latest call on a route key."""
        with self._lock:
            headers = self._last_headers.get(normalize_route_key(route))
        return None if headers is None else redact_headers(headers)

    def script(self, route: str, faults: Fault | Iterable[Fault]) -> None:
        """Append faults to a route's FIFO script; each is used for one call."""
        key = normalize_route_key(route)
        items = [faults] if isinstance(faults, Fault) else list(faults)
        with self._lock:
            self._faults.setdefault(key, deque()).extend(items)

    def clear_faults(self, route: str | None = None) -> None:
        """Drop scripted faults for one route key, or for all."""
        with self._lock:
            if route is None:
                self._faults.clear()
            else:
                self._faults.pop(normalize_route_key(route), None)

    def pending_faults(self) -> dict[str, int]:
        """How many scripted faults wait on each route key."""
        with self._lock:
            return {key: len(queue) for key, queue in self._faults.items() if queue}

    def fail_next(self, message: str = "requested by fail_next") -> None:
        """Make the next submitted request (without a ``SIMULATE_*`` marker) end ``failed``."""
        with self._lock:
            self._fail_next.append(message)

    # Requests

    def submit(self, model: str, payload: dict[str, Any], headers: Mapping[str, str]) -> SubmittedRequest:
        """Create a request, deciding now how it will end."""
        fate, message = _fate_from_prompt(payload.get("prompt"))
        with self._lock:
            config = self._config
            if fate == "success" and self._fail_next:
                fate, message = "failed", self._fail_next.popleft()
            shapes = config.outcome_rotation()
            shape = shapes[next(self._rotation) % len(shapes)] if len(shapes) > 1 else shapes[0]
            sync = _names(config.sync_models, model) or (
                isinstance(payload.get("prompt"), str) and SYNC_MARKER in payload["prompt"]
            )
            instant = sync or _names(config.instant_models, model)
            processing = config.processing_seconds
            if config.processing_seconds_max is not None:
                processing = self._random.uniform(processing, config.processing_seconds_max)
            request = SubmittedRequest(
                request_id=str(uuid.uuid4()),
                model=model,
                payload=payload,
                headers=redact_headers(headers),
                organization_id=headers.get("x-organization-id"),
                submitted_at=self.clock(),
                queued_seconds=0.0 if instant else config.queued_seconds,
                processing_seconds=0.0 if instant else processing,
                fate=fate,
                message=message,
                outcome_shape=shape,
                sync=sync,
            )
            self._requests[request.request_id] = request
        return request

    def get(self, request_id: str) -> SubmittedRequest | None:
        """A submitted request by id."""
        return self._requests.get(request_id)

    def cancel(self, request_id: str) -> SubmittedRequest | None:
        """Cancel a request that has not finished; finished ones are returned unchanged."""
        with self._lock:
            request = self._requests.get(request_id)
            if request is None:
                return None
            now = self.clock()
            if request.status_at(now)[0] not in TERMINAL_STATUSES:
                request = dataclasses.replace(request, cancelled_at=now)
                self._requests[request_id] = request
            return request

    @property
    def requests(self) -> list[SubmittedRequest]:
        """All submitted requests, oldest first."""
        with self._lock:
            return list(self._requests.values())

    def status(self, request: SubmittedRequest) -> str:
        """The request's status now."""
        return request.status_at(self.clock())[0]

    def stats(self) -> dict[str, Any]:
        """Counters, requests and pending faults, as served by ``GET /_simulator/stats``."""
        now = self.clock()
        return {
            "counts": self.counts(),
            "pending_faults": self.pending_faults(),
            "config": self._config.to_dict(),
            "requests": [
                {
                    "request_id": r.request_id,
                    "model": r.model,
                    "status": r.status_at(now)[0],
                    "fate": r.fate,
                    "organization_id": r.organization_id,
                    "headers": r.headers,
                    "created_at": int(r.submitted_at),
                    "submitted_at": r.submitted_at,
                    "finishes_at": r.finishes_at,
                }
                for r in self.requests
            ],
        }


def _names(models: frozenset[str], model: str) -> bool:
    return model in models or "*" in models


def _fate_from_prompt(prompt: object) -> tuple[str, str | None]:
    if isinstance(prompt, str):
        for marker, fate in MARKERS.items():
            if marker in prompt:
                detail = prompt.split(marker, 1)[1].strip().lstrip(":").strip()
                return fate, detail or f"requested by {marker} in the prompt"
    return "success", None

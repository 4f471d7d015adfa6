"""The simulator's in-memory state: submitted requests, their lifecycle, counters and fault scripts.

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

from airflow_provider_kling.api import TERMINAL_STATUSES
from airflow_provider_kling.testing.config import SimulatorConfig
from airflow_provider_kling.testing.faults import Fault, normalize_route_key
from airflow_provider_kling.testing.media import MediaStore

MARKERS = {"SIMULATE_STUCK": "stuck", "SIMULATE_FAILURE": "failed", "SIMULATE_CANCEL": "cancelled"}
#: A prompt marker, independent of the fate markers: answer the submit synchronously (see sync_models).
SYNC_MARKER = "SIMULATE_SYNC"


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
    #: When a client first read the request and first read it finished: how late waits notice.
    first_read_at: float | None = None
    finished_read_at: float | None = None

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
        self._admitted: deque[float] = deque()
        self._refused_submits = 0

    @property
    def config(self) -> SimulatorConfig:
        """The current configuration."""
        return self._config

    def configure(self, **changes: Any) -> SimulatorConfig:
        """Change configuration (see :class:`~.config.SimulatorConfig`); returns the new one."""
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

    def admit_submit(self) -> float | None:
        """Take a slot of the rate limit for one submit; ``None`` if taken, else seconds until one frees."""
        limit, window = self._config.rate_limit, self._config.rate_limit_seconds
        now = self.clock()
        with self._lock:
            while self._admitted and self._admitted[0] <= now - window:
                self._admitted.popleft()
            if limit is not None and len(self._admitted) >= limit:
                self._refused_submits += 1
                return self._admitted[0] + window - now
            self._admitted.append(now)
            return None

    def refused_submits(self) -> int:
        """Submits answered 429 by the configured ``rate_limit`` (scripted faults not included)."""
        with self._lock:
            return self._refused_submits

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

    def read(self, request_id: str) -> SubmittedRequest | None:
        """A submitted request by id, as a client polls it: the first reads are remembered."""
        now = self.clock()
        with self._lock:
            request = self._requests.get(request_id)
            if request is None:
                return None
            first = request.first_read_at or now
            done = request.finished_read_at
            if done is None and request.status_at(now)[0] in TERMINAL_STATUSES:
                done = now
            if (first, done) != (request.first_read_at, request.finished_read_at):
                request = dataclasses.replace(request, first_read_at=first, finished_read_at=done)
                self._requests[request_id] = request
            return request

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
            "refused_submits": self.refused_submits(),
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
                    "first_read_at": r.first_read_at,
                    "finished_read_at": r.finished_read_at,
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

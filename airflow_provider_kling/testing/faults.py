"""Scripted answers ("faults") that the simulator gives instead of, or after, normal handling."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_kling.api import I2V_MODEL, MODEL_SPECS
from airflow_provider_kling.testing import wire

#: Route keys that accept faults and are counted. Path parameters are written ``{id}``.
ROUTE_KEYS: tuple[str, ...] = (
    "POST /requests",
    "GET /requests",
    "GET /requests/{id}",
    "DELETE /requests/{id}",
    "GET /models",
    "GET /models/{id}",
    "GET /media",
)

_PARAM = re.compile(r"\{[^}]*\}")
#: How a ``reshape`` fault rewrites the records of a normal answer (see ``Fault``'s ``reshape``).
RESHAPES = ("no_created_at", "minimal", "normalised_echo", "empty_echo")


def normalize_route_key(route: str) -> str:
    """Return the canonical route key, accepting any ``{name}`` placeholder and extra spaces.

    ``"get  /requests/{request_id}"`` becomes ``"GET /requests/{id}"``. Unknown keys raise ``ValueError``
    so a typo in a test fails loudly instead of scripting a fault that never fires.
    """
    method, _, path = route.strip().partition(" ")
    key = f"{method.upper()} {_PARAM.sub('{id}', path.strip().rstrip('/'))}"
    if key not in ROUTE_KEYS:
        raise ValueError(f"unknown route key {route!r}; expected one of {', '.join(ROUTE_KEYS)}")
    return key


@dataclass(frozen=True)
class Fault:
    """One scripted answer, consumed by exactly one matching request.

    :param status: HTTP status to answer with. ``None`` answers normally (only useful with ``delay``).
    :param body: JSON body; defaults to ``{"error": "simulated HTTP <status>"}``.
    :param text: raw text body instead of JSON, to exercise clients on non-JSON answers.
    :param headers: extra response headers, e.g. ``{"Retry-After": "1"}``.
    :param delay: seconds to wait before answering.
    :param reset: abort the TCP connection instead of answering (clients see a connection error).
    :param after_processing: handle the request normally first (a submit really creates the request),
        then answer with this fault; models "the server accepted it but the answer was lost".
    :param names_request: with ``after_processing`` and a JSON object ``body``: set the body's
        ``request_id`` to the id the normal answer named (for a submit, the request it created), so a
        fault body can point at a request that exists.
    :param reshape: with ``status=None``: answer normally, but rewrite each record of the answer (a
        list answer's too) as GMI may send it: ``no_created_at`` (the key left out), ``minimal``
        (``request_id`` and ``status`` only, all a list entry is sure to have), ``normalised_echo``
        (the payload echo with numeric strings as numbers, keys reversed and the model doc's defaults
        filled in) or ``empty_echo`` (``{}``).
    """

    status: int | None = 500
    body: Any = None
    text: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    reset: bool = False
    after_processing: bool = False
    names_request: bool = False
    reshape: str | None = None

    def __post_init__(self) -> None:
        if self.status is not None and not 100 <= self.status <= 599:
            raise ValueError(f"status must be an HTTP status code, got {self.status}")
        if self.body is not None and self.text is not None:
            raise ValueError("give either body or text, not both")
        if self.delay < 0 or not math.isfinite(self.delay):
            raise ValueError("delay must be a finite number of seconds >= 0")
        if self.names_request and not (self.after_processing and isinstance(self.body, Mapping)):
            raise ValueError("names_request needs after_processing and a JSON object body")
        if self.reshape is not None and self.reshape not in RESHAPES:
            raise ValueError(f"reshape must be one of {', '.join(RESHAPES)}, got {self.reshape!r}")
        if self.reshape is not None and not self.passthrough:
            raise ValueError("reshape rewrites the normal answer: give it with status=None and no reset")

    @property
    def passthrough(self) -> bool:
        """Whether the real answer is sent (possibly late) rather than a scripted one."""
        return self.status is None and not self.reset

    def content(self, request_id: str | None = None) -> tuple[bytes, str]:
        """The body bytes and content type to answer with; ``request_id`` is what the normal answer
        named, used by ``names_request`` faults."""
        if self.text is not None:
            return self.text.encode(), "text/plain; charset=utf-8"
        body = self.body if self.body is not None else {"error": f"simulated HTTP {self.status}"}
        if self.names_request and request_id is not None:
            body = {**body, "request_id": request_id}
        return json.dumps(body).encode(), "application/json"

    def reshaped(self, body: Any) -> Any:
        """The normal answer ``body`` with each record rewritten as ``reshape`` says."""
        if isinstance(body, dict) and isinstance(body.get("requests"), list):
            return {**body, "requests": [self._reshape_record(r) for r in body["requests"]]}
        return self._reshape_record(body)

    def _reshape_record(self, record: Any) -> Any:
        if not isinstance(record, dict) or "request_id" not in record:
            return record
        if self.reshape == "minimal":
            return {"request_id": record["request_id"], "status": record.get("status")}
        if self.reshape == "no_created_at":
            return {k: v for k, v in record.items() if k != "created_at"}
        if not isinstance(record.get("payload"), dict):
            return record
        echo: dict[str, Any] = {}
        if self.reshape == "normalised_echo":
            spec = MODEL_SPECS.get(str(record.get("model")))
            filled = {**(spec.defaults if spec is not None else {}), **record["payload"]}
            echo = {k: _as_number(v) for k, v in reversed(list(filled.items()))}
        return {**record, "payload": echo}

    @classmethod
    def normalised(cls, reshape: str = "normalised_echo", **kwargs: Any) -> Fault:
        """A normal answer whose records GMI reshaped (see ``reshape``)."""
        return cls(status=None, reshape=reshape, **kwargs)

    @classmethod
    def error(cls, status: int, message: str, **kwargs: Any) -> Fault:
        """An answer with GMI's usual error body ``{"error": message}``."""
        return cls(status=status, body={"error": message}, **kwargs)

    @classmethod
    def rate_limited(
        cls,
        retry_after_ms: int = 29970,
        *,
        model: str = I2V_MODEL,
        limit: int = 2,
        interval_seconds: int = 60,
        retry_after_header: bool = False,
        **kwargs: Any,
    ) -> Fault:
        """A 429 with GMI's rate-limit body; ``Retry-After`` only on request (GMI's is unconfirmed)."""
        body = {
            "error": (
                f"Rate limit exceeded for model {model}: {limit} requests per {interval_seconds} seconds. "
                f"Retry in {retry_after_ms} ms."
            ),
            "rate_limit": {
                "limit_type": "RPM",
                "limit": limit,
                "interval_seconds": interval_seconds,
                "retry_after_ms": retry_after_ms,
            },
        }
        headers = dict(kwargs.pop("headers", {}))
        if retry_after_header:
            headers["Retry-After"] = str(max(1, math.ceil(retry_after_ms / 1000)))
        return cls(status=429, body=body, headers=headers, **kwargs)

    @classmethod
    def capacity_exhausted(cls, *, created: bool = False, **kwargs: Any) -> Fault:
        """GMI's 503 when upstream GPUs are exhausted; its body names a ``request_id``.

        Whether GMI created that request is not documented, so a test picks: by default the id is one
        no request has (GET answers 404); with ``created=True`` the call is handled first, so a submit
        really creates the request the body names (it shows in GET and in the list).
        """
        body = {
            "error": "Upstream capacity temporarily exhausted; please retry later",
            "request_id": str(uuid.uuid4()),
        }
        if created:
            kwargs.update(after_processing=True, names_request=True)
        return cls(status=503, body=body, **kwargs)

    @classmethod
    def backend_error(cls, **kwargs: Any) -> Fault:
        """The 500 GMI answers for some invalid parameter values (and genuine backend trouble)."""
        return cls.error(500, wire.BACKEND_ERROR, **kwargs)

    @classmethod
    def non_json(
        cls,
        status: int = 502,
        text: str = "<html><body><h1>502 Bad Gateway</h1></body></html>",
        **kwargs: Any,
    ) -> Fault:
        """A non-JSON answer such as a load balancer's HTML error page."""
        headers = {"Content-Type": "text/html; charset=utf-8", **dict(kwargs.pop("headers", {}))}
        return cls(status=status, text=text, headers=headers, **kwargs)

    @classmethod
    def connection_reset(cls, *, after_processing: bool = False, delay: float = 0.0) -> Fault:
        """Abort the connection without an HTTP answer."""
        return cls(status=None, reset=True, after_processing=after_processing, delay=delay)

    @classmethod
    def slow(cls, seconds: float, *, after_processing: bool = False) -> Fault:
        """Answer normally, but only after ``seconds`` (handled before or after the wait, see
        ``after_processing``); lets tests trip client read timeouts."""
        return cls(status=None, delay=seconds, after_processing=after_processing)

    def to_dict(self) -> dict[str, Any]:
        """JSON form, as accepted by :meth:`from_dict` and ``POST /_simulator/faults``."""
        return {
            "status": self.status,
            "body": self.body,
            "text": self.text,
            "headers": dict(self.headers),
            "delay": self.delay,
            "reset": self.reset,
            "after_processing": self.after_processing,
            "names_request": self.names_request,
            "reshape": self.reshape,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        """Build a fault from JSON: either the fields of :meth:`to_dict`, or ``{"preset": name, ...}``
        where name is one of ``rate_limited``, ``capacity_exhausted``, ``backend_error``, ``non_json``,
        ``connection_reset``, ``slow``, ``error``, ``normalised`` and the other keys are that helper's
        arguments."""
        if not isinstance(data, Mapping):
            raise ValueError("a fault must be a JSON object")
        data = dict(data)
        preset = data.pop("preset", None)
        if preset is None:
            allowed = {f.name for f in dataclasses.fields(cls)}
            unknown = set(data) - allowed
            if unknown:
                raise ValueError(f"unknown fault fields: {sorted(unknown)}")
            try:
                return cls(**data)
            except TypeError as exc:
                raise ValueError(f"bad fault fields: {exc}") from exc
        if preset not in _PRESETS:
            raise ValueError(f"unknown fault preset {preset!r}; expected one of {sorted(_PRESETS)}")
        try:
            fault: Fault = getattr(cls, preset)(**data)
        except TypeError as exc:
            raise ValueError(f"bad arguments for preset {preset!r}: {exc}") from exc
        return fault


_PRESETS = frozenset(
    {
        "rate_limited",
        "capacity_exhausted",
        "backend_error",
        "non_json",
        "connection_reset",
        "slow",
        "error",
        "normalised",
    }
)


def _as_number(value: Any) -> Any:
    # "5" echoed as 5: what a normalising store does to numeric text.
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    return value

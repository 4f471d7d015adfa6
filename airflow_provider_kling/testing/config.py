"""The simulator's settings, each declared once: its default, its check and its help (see docs/simulator.rst).

:class:`SimulatorConfig` says how the simulated GMI behaves and can change while it runs;
:class:`ServerSettings` says where and how it listens. ``KlingSimulator(**settings)``, the pytest
marker, the control API and the command line (generated from these fields by :mod:`.cli`) all read
these declarations, so a new setting is added here and nowhere else.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from airflow_provider_kling.api.errors import KlingValidationError
from airflow_provider_kling.api.validation import validate_number, validate_whole
from airflow_provider_kling.testing.catalog import MODEL_IDS, PARAMETER_KEYS, Drift
from airflow_provider_kling.testing.wire import (
    FAILURE_SHAPES,
    OUTCOME_SHAPES,
    PAYLOAD_ECHOES,
    SUBMIT_SHAPES,
    SUBMIT_STATUSES,
)

#: Every outcome shape GMI is known to answer with, one request after another.
DEFAULT_OUTCOME_SHAPE = "rotate"

# A check takes a value and its field's name, and gives the value to keep or raises ValueError.
Check = Callable[[Any, str], Any]


def _seconds(value: Any, name: str) -> float:
    return validate_number(value, name, allowed="a number of seconds, 0 or more", minimum=0)


def _positive(unit: str) -> Check:
    return lambda value, name: validate_number(value, name, allowed=f"a number of {unit} above 0", above=0)


def _whole(allowed: str, minimum: int, maximum: int | None = None) -> Check:
    def check(value: Any, name: str) -> int:
        number = validate_whole(value, name, allowed=allowed, minimum=minimum)
        if maximum is not None and number > maximum:
            raise KlingValidationError(name, f"{number} is out of range", allowed)
        return number

    return check


def _optional(check: Check) -> Check:
    return lambda value, name: None if value is None else check(value, name)


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise KlingValidationError(name, f"{value!r} is not text", "a non-blank string")
    return value


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise KlingValidationError(name, f"{value!r} is not a boolean", "True or False")
    return value


def _one_of(choices: tuple[str, ...]) -> Check:
    def check(value: Any, name: str) -> str:
        if value not in choices:
            raise KlingValidationError(name, f"{value!r} is not one of them", ", ".join(choices))
        return str(value)

    return check


def _models(value: Any, name: str) -> frozenset[str]:
    # A string would be read as a set of characters: "kling-v2-6" is not 10 model ids.
    allowed = 'a collection of model ids, "*" meaning all'
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise KlingValidationError(name, f"{value!r} is not a collection of model ids", allowed)
    models = frozenset(value)
    if not all(isinstance(model, str) for model in models):
        raise KlingValidationError(name, f"{sorted(map(repr, models))} are not all text", allowed)
    return models


def _drift(value: Any, name: str) -> Drift | None:
    allowed = (
        "a JSON object by model id: null for a model GMI no longer serves, or by parameter name null "
        f"to drop it or an object of the keys to change ({', '.join(PARAMETER_KEYS)}; null leaves one out)"
    )
    if isinstance(value, str):  # the command line's, or a JSON document's
        try:
            value = json.loads(value)
        except ValueError:
            raise KlingValidationError(name, f"{value!r} is not JSON", allowed) from None
    if value is None or value == {}:
        return None
    if not isinstance(value, Mapping):
        raise KlingValidationError(name, f"{value!r} is not an object", allowed)
    for model, changes in value.items():
        if model not in MODEL_IDS:
            raise KlingValidationError(
                name, f"{model!r} is not a model the simulator serves", ", ".join(MODEL_IDS)
            )
        if changes is not None and not isinstance(changes, Mapping):
            raise KlingValidationError(name, f"{model}: {changes!r} is not an object", allowed)
        for parameter, keys in (changes or {}).items():
            if keys is not None and (not isinstance(keys, Mapping) or not set(keys) <= set(PARAMETER_KEYS)):
                raise KlingValidationError(name, f"{model}: {parameter}: {keys!r} is not a change", allowed)
    try:  # a copy, and one the control API can serve
        copied: dict[str, Any] = json.loads(json.dumps(dict(value)))
    except (TypeError, ValueError) as err:
        raise KlingValidationError(name, f"it is not JSON data ({err})", allowed) from None
    return copied


def _outcome_shape(value: Any, name: str) -> str:
    allowed = f"rotate, or one or more (comma-separated) of {', '.join(OUTCOME_SHAPES)}"
    if not isinstance(value, str) or not set(_rotation(value)) <= set(OUTCOME_SHAPES):
        raise KlingValidationError(name, f"{value!r} is not a shape", allowed)
    return value


def _rotation(outcome_shape: str) -> tuple[str, ...]:
    if outcome_shape == "rotate":
        return OUTCOME_SHAPES
    return tuple(shape.strip() for shape in outcome_shape.split(","))


def setting(
    default: Any,
    help: str,
    check: Check | None = None,
    *,
    choices: tuple[str, ...] | None = None,
    cli_default: Any = dataclasses.MISSING,
) -> Any:
    """A field of a settings class: ``help`` is its one description (``--help``, the API docs);
    ``check`` (or ``choices``) is applied whenever it is set; ``cli_default`` overrides the default
    on the command line only."""
    if check is None:
        assert choices is not None, "a setting needs a check or its choices"
        check = _one_of(choices)
    metadata: dict[str, Any] = {"help": help, "check": check, "choices": choices}
    if cli_default is not dataclasses.MISSING:
        metadata["cli_default"] = cli_default
    return dataclasses.field(default=default, metadata=metadata)


_S = TypeVar("_S", bound="_Settings")


class _Settings:
    """What both settings classes share: every field checked when set, and changed copies."""

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            value = field.metadata["check"](getattr(self, field.name), field.name)
            object.__setattr__(self, field.name, value)

    def updated(self: _S, changes: Mapping[str, Any]) -> _S:
        """A copy with ``changes`` applied; an unknown field or a bad value raises ``ValueError``."""
        names = field_names(type(self))
        unknown = sorted(set(changes) - set(names))
        if unknown:
            raise KlingValidationError(
                "setting", f"{', '.join(unknown)} is not a setting of {type(self).__name__}", ", ".join(names)
            )
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


def field_names(settings: type) -> tuple[str, ...]:
    """The names of a settings class's fields, in declaration order."""
    return tuple(field.name for field in dataclasses.fields(settings))


def _document(settings: type) -> None:
    """Give a settings class's docstring a ``:param:`` line per field, from its ``help``."""
    params = []
    for field in dataclasses.fields(settings):
        choices = field.metadata["choices"]
        among = f" (one of {', '.join(choices)})" if choices else ""
        params.append(f":param {field.name}: {field.metadata['help']}{among}")
    settings.__doc__ = "\n\n".join([inspect.cleandoc(settings.__doc__ or ""), "\n".join(params)])


@dataclass(frozen=True)
class ServerSettings(_Settings):
    """Where and how the simulator listens; fixed once it is made."""

    api_key: str = setting(
        "sim-test-key", "the only API key accepted (Authorization: Bearer <key>); others get 401", _text
    )
    host: str = setting("127.0.0.1", "address to listen on (loopback unless told otherwise)", _text)
    port: int = setting(
        0,
        "port to listen on; 0 picks a free one",
        _whole("a port number, 0 to 65535 (0: a free one)", 0, 65535),
        cli_default=8765,
    )
    log_level: str = setting(
        "warning", "the server's log level", choices=("debug", "info", "warning", "error")
    )
    access_log: bool = setting(False, "log one line per request (headers are never logged)", _flag)
    backlog: int = setting(
        4096,
        "connections the socket queues before accepting them",
        _whole("a whole number of connections, 1 or more", 1),
    )


@dataclass(frozen=True)
class SimulatorConfig(_Settings):
    """How the simulated GMI behaves. Timing, outcome shape and instant or synchronous answers are fixed
    per request when it is submitted; ``failure_shape``, ``payload_echo`` and ``media_base_url`` apply
    to every read. Change them while it runs with ``KlingSimulator.configure`` or
    ``POST /_simulator/config``."""

    queued_seconds: float = setting(1.0, "how long a request reports queued", _seconds)
    processing_seconds: float = setting(
        2.0, "how long it then reports processing before its terminal status", _seconds
    )
    processing_seconds_max: float | None = setting(
        None,
        "when set, each request's processing time is drawn uniformly between processing_seconds and "
        "this, so requests finish at scattered times (benchmarks, load tests)",
        _optional(_seconds),
    )
    outcome_shape: str = setting(
        DEFAULT_OUTCOME_SHAPE,
        f"where a success's video URL goes: one of {', '.join(OUTCOME_SHAPES)} (url is a flat "
        "outcome.url); rotate to cycle all of them one request after another, so every client code "
        "path gets exercised; or a comma-separated list of shapes to cycle",
        _outcome_shape,
    )
    submit_status: str = setting("queued", "the status in a submit answer", choices=SUBMIT_STATUSES)
    submit_shape: str = setting(
        "standard",
        "the keys of a submit answer for an unfinished request: standard (request_id, model, status "
        "and three timestamps) or minimal (request_id and status only, as a live answer was seen)",
        choices=SUBMIT_SHAPES,
    )
    instant_models: frozenset[str] = setting(
        frozenset(), "models whose submit answers the finished record at once; * means all", _models
    )
    sync_models: frozenset[str] = setting(
        frozenset(),
        "models that finish at once but whose submit answer is the short record with the terminal "
        "status and no outcome, which comes with the GET of the request; * means all (the prompt "
        "marker SIMULATE_SYNC does it for one request)",
        _models,
    )
    failure_shape: str = setting(
        "outcome_object",
        "where a failure's text goes: outcome_object ({error: ...}), outcome_string, error_field "
        "(top-level error) or reason_field (top-level reason)",
        choices=FAILURE_SHAPES,
    )
    payload_echo: str = setting(
        "verbatim",
        "the payload of a GET record: verbatim (what was submitted, a base64 first_frame included, "
        "as GMI's docs show), empty ({}, as one live record had) or absent (no payload key)",
        choices=PAYLOAD_ECHOES,
    )
    media_base_url: str | None = setting(
        None, "base of media URLs in outcomes; unset: the base URL the poll came in on", _optional(_text)
    )
    media_bytes: int | None = setting(
        None,
        "when set, every video is served as exactly this many bytes (the clip, then zero padding), "
        "streamed, so large downloads can be tested without storing them",
        _optional(_whole("a whole number of bytes, 0 or more", 0)),
    )
    media_bytes_per_second: float | None = setting(
        None,
        "with media_bytes, stream videos no faster than this, so a test can act while a download is "
        "under way",
        _optional(_positive("bytes per second")),
    )
    rate_limit: int | None = setting(
        None,
        "when set, GMI's per-organization rate limit: at most this many submits are accepted in any "
        "rate_limit_seconds; the next is answered 429 with GMI's rate-limit body",
        _optional(_whole("a whole number of submits, 1 or more", 1)),
    )
    rate_limit_seconds: float = setting(
        60.0, "the window of rate_limit (GMI's is 60 seconds)", _positive("seconds")
    )
    model_drift: Mapping[str, Any] | None = setting(
        None,
        "how GMI's model detail (GET /models/{id}) differs from the provider's specs, by model id, as "
        "JSON: null for a model GMI no longer serves (unlisted, 404), or by parameter null to drop it or "
        'the keys to change, e.g. {"kling-3.0-turbo-i2v": {"resolution": {"options": ["720p", "1080p", '
        '"4k"]}}}; submits are checked against the drifted detail, as GMI checks against its own',
        _drift,
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.processing_seconds_max is not None and self.processing_seconds_max < self.processing_seconds:
            raise KlingValidationError(
                "processing_seconds_max",
                f"{self.processing_seconds_max:g} is below processing_seconds ({self.processing_seconds:g})",
                "a number of seconds, processing_seconds or more",
            )

    def outcome_rotation(self) -> tuple[str, ...]:
        """The outcome shapes successive requests take, cycled (a single shape: every request's)."""
        return _rotation(self.outcome_shape)

    def to_dict(self) -> dict[str, Any]:
        """JSON form, as served by ``GET /_simulator/config``."""
        data = dataclasses.asdict(self)
        return {k: sorted(v) if isinstance(v, frozenset) else v for k, v in data.items()}


_document(ServerSettings)
_document(SimulatorConfig)


def split_settings(
    settings: Mapping[str, Any], config: SimulatorConfig | None = None
) -> tuple[ServerSettings, SimulatorConfig]:
    """Keyword settings, each given to the class that declares it; behaviour ones applied over ``config``.

    :raises TypeError: a name neither class declares, as for any unexpected keyword argument.
    :raises ValueError: a bad value, naming the setting and what it allows.
    """
    server_names = field_names(ServerSettings)
    known = (*server_names, *field_names(SimulatorConfig))
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise TypeError(
            f"Invalid setting: {', '.join(unknown)} is not a simulator setting. Allowed: {', '.join(known)}."
        )
    server = ServerSettings(**{k: v for k, v in settings.items() if k in server_names})
    behaviour = {k: v for k, v in settings.items() if k not in server_names}
    return server, (config or SimulatorConfig()).updated(behaviour)

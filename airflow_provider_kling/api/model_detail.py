"""
GMI's own word on a model: its detail record (``GET .../models/{id}``), read whatever its shape,
and how the provider's spec (``MODEL_SPECS``) differs from it.

The provider checks payloads against its own specs before paying; when GMI changes a model, the
spec goes stale without a word. Here the two are compared, field by field: whether each field is a
parameter, whether it is required, its options and its numeric range. Only what GMI's record states
is compared: a key it leaves out is not a difference.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_kling.api.models import MODEL_SPECS, ModelSpec

_TRUE = frozenset({"true", "yes", "1", "required"})
_FALSE = frozenset({"false", "no", "0", "optional"})
_NUMERIC = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
# Free text and images: a min or max on them is a length or a size, not comparable with a range.
_UNRANGED_TYPES = frozenset({"string", "str", "text", "image", "file", "url"})


@dataclass(frozen=True)
class Parameter:
    """One parameter of GMI's detail record, each key ``None`` where the record leaves it out."""

    name: str
    type: str | None = None
    required: bool | None = None
    options: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True)
class Difference:
    """
    One way the provider's spec and GMI's detail disagree.

    :param field: the payload key.
    :param aspect: ``parameter`` (taken at all), ``required``, ``options``, ``minimum`` or ``maximum``.
    :param ours: what the provider's spec says, in words.
    :param gmi: what GMI's detail says, in words.
    """

    field: str
    aspect: str
    ours: str
    gmi: str

    def __str__(self) -> str:
        return f"{self.field} {self.aspect}: ours {self.ours}, GMI's {self.gmi}"


@dataclass(frozen=True)
class ModelCheck:
    """
    How one model's spec compares with GMI's detail.

    :param model: the model id.
    :param differences: every difference found, the spec's fields first, in its order.
    :param served: ``False`` when GMI answered that the model does not exist (404).
    :param error: why the detail could not be read (no answer, 5xx, 401...), else ``None``.
    """

    model: str
    differences: tuple[Difference, ...] = ()
    served: bool = True
    error: str | None = None

    @property
    def matches(self) -> bool:
        """Whether GMI's detail was read and agrees with the spec in everything it states."""
        return self.served and self.error is None and not self.differences

    def summary(self) -> str:
        """A few words for a list of models (the connection test)."""
        if not self.served:
            return "has NO detail on GMI (404)"
        if self.error is not None:
            return "could not be checked (its detail could not be read)"
        if not self.differences:
            return "matches GMI's detail"
        named = ", ".join(dict.fromkeys(f"{d.field} {d.aspect}" for d in self.differences))
        return f"DIFFERS from GMI's detail ({named})"

    def report(self) -> str:
        """What the check found, one line per difference, for a person reading a terminal or a log."""
        if not self.served:
            return (
                f"{self.model}: GMI answers that it does not exist (404): it is no longer served, "
                "or not to this API key; a submit to it would fail."
            )
        if self.error is not None:
            return f"{self.model}: GMI's detail could not be read: {self.error}"
        if not self.differences:
            return f"{self.model}: the provider's spec matches GMI's detail."
        lines = [
            f"{self.model}: the provider's spec differs from GMI's detail in {_count(self.differences)}:"
        ]
        return "\n".join([*lines, *(f"  {d}" for d in self.differences)])

    def warning(self) -> str:
        """The one warning a task logs when its model differs: what differs and what it means."""
        found = "; ".join(map(str, self.differences))
        return (
            f"Model {self.model} on GMI differs from this provider's spec of it in "
            f"{_count(self.differences)}: {found}. Payloads are still checked against the provider's "
            "spec, so a value GMI now accepts may be refused here, and one GMI no longer accepts may "
            "be refused by GMI after the submit. Upgrade airflow-provider-kling, or report the "
            f"difference; `{CHECK_COMMAND}` lists every model's."
        )


#: What the connection test and the warning point to for the whole list of differences.
CHECK_COMMAND = "python -m airflow_provider_kling.hooks.model_check"


def known_models_report(checks: Mapping[str, ModelCheck | None]) -> str:
    """
    What the connection test adds about each model the provider has a spec for: whether the key
    is served it (``None``: GMI does not list it) and whether its spec matches GMI's detail.
    """
    said = [
        f"{model} {'NOT served to this key' if c is None else c.summary()}" for model, c in checks.items()
    ]
    text = f"The models this provider knows: {'; '.join(said)}."
    if any(c is not None and not c.matches for c in checks.values()):
        text += f" `{CHECK_COMMAND}` says what differs."
    return text


def _count(differences: tuple[Difference, ...]) -> str:
    return f"{len(differences)} way{'s' if len(differences) != 1 else ''}"


def check_detail(model: str, detail: Mapping[str, Any]) -> ModelCheck:
    """Compare the spec of ``model`` (which must have one) with GMI's detail record of it."""
    return ModelCheck(model, tuple(differences(MODEL_SPECS[model], detail)))


def differences(spec: ModelSpec, detail: Mapping[str, Any]) -> list[Difference]:
    """
    Every difference between a spec and GMI's detail record of its model.

    A field of the spec GMI does not list, and a parameter GMI lists that the spec lacks, are
    differences (a renamed field is both); for a field both name, its required-ness, options
    and range are compared wherever GMI states them. A record that lists no parameters at all
    states nothing, so nothing differs.
    """
    parameters = parse_parameters(detail.get("parameters"))
    if parameters is None:
        return []
    found: list[Difference] = []
    for name in spec.fields:
        ours_required = "required" if name in spec.required else "optional"
        theirs = parameters.get(name)
        if theirs is None:
            found.append(Difference(name, "parameter", f"takes it ({ours_required})", "does not list it"))
            continue
        if theirs.required is not None and theirs.required != (name in spec.required):
            found.append(Difference(name, "required", ours_required, _required(theirs.required)))
        rule = spec.rule(name)
        if theirs.options is not None and set(theirs.options) != set(rule.options or ()):
            ours = _options(rule.options) if rule.options is not None else "any value"
            found.append(Difference(name, "options", ours, _options(theirs.options)))
        if rule.options is None and rule.minimum is None and rule.maximum is None:
            continue  # free text or an image: GMI's min or max would be a length or a size
        if (theirs.type or "").lower() in _UNRANGED_TYPES:
            continue
        for aspect, mine, gmi in (
            ("minimum", rule.minimum, theirs.minimum),
            ("maximum", rule.maximum, theirs.maximum),
        ):
            if gmi is not None and mine != gmi:
                found.append(Difference(name, aspect, _number(mine), _number(gmi)))
    for name, theirs in parameters.items():
        if name not in spec.fields:
            listed = f"lists it ({_required(theirs.required)})" if theirs.required is not None else "lists it"
            found.append(Difference(name, "parameter", "does not take it", listed))
    return found


def parse_parameters(raw: Any) -> dict[str, Parameter] | None:
    """
    GMI's ``parameters``, by name: a list of objects (or an object keyed by name), each key
    optional, options as a list or as text, numbers as numbers or numeric text. ``None`` when
    the record has no parameter list at all.
    """
    if isinstance(raw, str):
        raw = _json(raw)
    if isinstance(raw, Mapping):
        raw = [
            {"name": name, **item} if isinstance(item, Mapping) else {"name": name}
            for name, item in raw.items()
        ]
    if not isinstance(raw, list):
        return None
    parameters: dict[str, Parameter] = {}
    for item in raw:
        if not isinstance(item, Mapping):
            continue
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            continue
        kind = item.get("type")
        parameters[name.strip()] = Parameter(
            name=name.strip(),
            type=kind if isinstance(kind, str) else None,
            required=_flag(item.get("required")),
            options=_option_list(item.get("options")),
            minimum=_numeric(item.get("min_value")),
            maximum=_numeric(item.get("max_value")),
        )
    return parameters


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _flag(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        return True if text in _TRUE else False if text in _FALSE else None
    return None


def _option_list(value: Any) -> tuple[str, ...] | None:
    """Options as text: a list, a JSON list in a string, or a comma- or pipe-separated string."""
    if isinstance(value, str):
        parsed = _json(value) if value.strip().startswith("[") else None
        value = parsed if isinstance(parsed, list) else re.split(r"[,|]", value)
    if not isinstance(value, Iterable) or isinstance(value, Mapping):
        return None
    options = [_option(item) for item in value]
    found = tuple(dict.fromkeys(o for o in options if o))
    return found or None  # an empty list states no options


def _option(item: Any) -> str:
    if isinstance(item, Mapping):  # {"value": "720p", "label": "720p HD"}
        item = item.get("value", item.get("name"))
    if isinstance(item, bool):
        return "on" if item else "off"
    if isinstance(item, float) and item.is_integer():
        item = int(item)
    return "" if item is None else str(item).strip()


def _numeric(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and _NUMERIC.fullmatch(value.strip()):
        value = float(value)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def _required(required: bool | None) -> str:
    return "required" if required else "optional"


def _number(value: float | None) -> str:
    return "none" if value is None else f"{value:g}"


def _options(options: Iterable[str]) -> str:
    """``[720p, 1080p]``; a run of whole numbers as ``[3..15]``, so a range stays one line."""
    items = list(options)
    if len(items) > 2 and all(re.fullmatch(r"\d+", o) for o in items):
        numbers = sorted(int(o) for o in items)
        if numbers == list(range(numbers[0], numbers[-1] + 1)):
            return f"[{numbers[0]}..{numbers[-1]}]"
    return f"[{', '.join(items)}]"

"""
GMI's own word on each model: its detail read through a
:class:`~airflow_provider_kling.hooks.kling.KlingHook` and compared with the provider's spec
(:mod:`airflow_provider_kling.api.model_detail`), the warning a task logs when they differ, and
the command that checks every model (``python -m airflow_provider_kling.hooks.model_check``,
see docs/models.rst).

A task reads a model's detail at most once per process per :data:`CHECK_TTL`, quickly and only
once (no retries), and never fails or waits long on it: the check only informs.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import threading
import time
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow_provider_kling.api import (
    MODEL_SPECS,
    KlingAPIError,
    KlingError,
    KlingValidationError,
    validate_model,
)
from airflow_provider_kling.api.model_detail import ModelCheck, check_detail, known_models_report
from airflow_provider_kling.api.models import served_models_report
from airflow_provider_kling.api.redaction import redacted_errors
from airflow_provider_kling.transport.bounds import send
from airflow_provider_kling.transport.failures import parse_answer

if TYPE_CHECKING:
    import logging

    from airflow_provider_kling.hooks.kling import KlingHook

#: Seconds a quick check (a task's, the connection test's) may take in all, connecting included:
#: it only informs, so it must never hold up what it informs.
QUICK_TIMEOUT = 5.0


def check_model(hook: KlingHook, model_id: str, *, quick: bool = False) -> ModelCheck:
    """
    Compare the provider's spec of ``model_id`` with GMI's detail record of it.

    GMI's answer never raises: a 404 is a model not served, any other failure is the check's
    ``error``. ``quick`` asks once, within :data:`QUICK_TIMEOUT`; otherwise the hook's retry
    policy and the connection's timeout apply, as to any read.

    :raises KlingValidationError: the model has no spec in this provider, or the connection is bad.
    """
    model = validate_model(model_id)
    if model not in MODEL_SPECS:
        raise KlingValidationError("model", f"{model} has no spec in this provider", ", ".join(MODEL_SPECS))
    path, what = f"/models/{quote(model, safe='')}", f"get model {model}"
    try:
        detail = _get_once(hook, path, what) if quick else hook._call("GET", path, idempotent=True, what=what)
    except KlingAPIError as err:
        if err.status_code == 404:
            return ModelCheck(model, served=False)
        return ModelCheck(model, error=str(err))
    return check_detail(model, detail)


def connection_report(hook: KlingHook, served: Sequence[str]) -> str:
    """What Test Connection says: where, how many models, and each known model's check."""
    return f"{served_models_report(hook.settings.base_url, served)} {known_models(hook, served)}"


def known_models(hook: KlingHook, served: Collection[str]) -> str:
    """The connection test's words on each model with a spec: one quick detail read per served one."""
    return known_models_report({m: _quick_check(hook, m) if m in served else None for m in MODEL_SPECS})


def _quick_check(hook: KlingHook, model: str) -> ModelCheck:
    try:
        return check_model(hook, model, quick=True)
    except Exception as err:  # the key works: a check that fails for any reason is said, not a failed test
        return ModelCheck(model, error=str(err))


def _get_once(hook: KlingHook, path: str, what: str) -> dict[str, Any]:
    # The hook's own call, once and within QUICK_TIMEOUT: no retry policy, the same bounded read.
    settings = dataclasses.replace(hook.settings, timeout=min(QUICK_TIMEOUT, hook.settings.timeout))
    with redacted_errors(settings.secrets):
        answer = send(hook.session, "GET", path, None, None, settings, QUICK_TIMEOUT, what)
        return parse_answer(*answer, what=what, secrets=settings.secrets)


# --- the task warning --------------------------------------------------------------------------

#: Seconds a process trusts what it read of a model's detail before reading it again.
CHECK_TTL = 3600.0
#: Seconds before a detail that could not be read is asked for again.
UNREAD_TTL = 300.0

# One lock for all: a second task of the process waits for the first's read (at most the quick
# timeout) and then uses it, instead of asking again.
_lock = threading.Lock()
_checks: dict[tuple[str, str | None, str], tuple[float, ModelCheck]] = {}


def warn_if_model_differs(hook: KlingHook, model: Any, log: logging.Logger | Any) -> None:
    """
    Log one warning when GMI's detail of ``model`` differs from the provider's spec of it.

    A model without a spec is not checked. When the detail cannot be read the task is told at
    info level and goes on: this never raises and never retries.
    """
    try:
        check = _cached_check(hook, str(model).strip())
    except Exception as err:  # the check only informs: nothing here may stop a submit
        log.info("Could not check model %s against GMI's model detail: %s", model, err)
        return
    if check is None or check.matches:
        return
    if check.error is not None:
        log.info("Could not check model %s against GMI's model detail: %s", check.model, check.error)
    elif check.differences:
        log.warning("%s", check.warning())
    else:
        log.warning("%s", check.report())


def _cached_check(hook: KlingHook, model: str) -> ModelCheck | None:
    if model not in MODEL_SPECS:
        return None
    settings = hook.settings
    key = (settings.base_url, settings.organization_id, model)
    with _lock:
        now = time.monotonic()
        cached = _checks.get(key)
        if cached is not None and now < cached[0]:
            return cached[1]
        check = hook.check_model(model, quick=True)
        _checks[key] = (now + (UNREAD_TTL if check.error is not None else CHECK_TTL), check)
        return check


def forget_checks() -> None:
    """Forget every model detail read by this process (tests; a deployment that just changed)."""
    with _lock:
        _checks.clear()


# --- the command -------------------------------------------------------------------------------

#: Exit statuses of the command.
MATCHES, DIFFERS, UNCHECKED = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_kling.hooks.model_check",
        description="Compare this provider's spec of each model with GMI's own detail of it "
        "(GET .../models/{id}). Exits 0 when all match, 1 when one differs or is not served, "
        "2 when one could not be checked.",
    )
    parser.add_argument(
        "models",
        nargs="*",
        metavar="MODEL",
        help=f"models to check (default: every one the provider has a spec for: {', '.join(MODEL_SPECS)})",
    )
    parser.add_argument(
        "--conn-id", default="kling_default", help="the kling connection (default: %(default)s)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Check the models, print what each check found, and return the exit status."""
    args = build_parser().parse_args(argv)
    from airflow_provider_kling.exceptions import KlingConnectionNotFound
    from airflow_provider_kling.hooks.kling import KlingHook

    # A person waits for the answer: a few retries, not the five minutes a task may spend.
    hook = KlingHook(args.conn_id, retry_limit=2, retry_max_delay=30)
    status = MATCHES
    try:
        for model in args.models or MODEL_SPECS:
            check = hook.check_model(model)
            print(check.report(), flush=True)
            if check.error is not None:
                status = max(status, UNCHECKED)
            elif not check.matches:
                status = max(status, DIFFERS)
    except (
        KlingError,
        KlingConnectionNotFound,
    ) as err:  # a bad connection or a model without a spec: say so, no traceback
        print(f"error: {err}", file=sys.stderr)
        return UNCHECKED
    finally:
        hook.close()
    return status


if __name__ == "__main__":
    sys.exit(main())

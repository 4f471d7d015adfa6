"""Submit a paid request at most once per task, across the task's retries.

The semantics follow Airflow 3.3's ``ResumableJobMixin``: the request id is persisted to the task
state store right after the submit, before anything else can fail; a retry reconnects to an active
request, returns a succeeded one, and submits anew only after a failed one. Where the store does
not exist (Airflow 3.1 and 3.2) every try submits, as the docs say.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_kling.api.errors import KlingAPIError
from airflow_provider_kling.exceptions import KlingSubmitOutcomeUnknown

if TYPE_CHECKING:
    from airflow.sdk.types import Logger

    from airflow_provider_kling.api.records import KlingRequest
    from airflow_provider_kling.hooks.kling import KlingHook

#: The task state store key under which a try records its request, for the next try.
STATE_KEY = "kling_request_id"
# GMI stamps whole seconds with its own clock; a minute of slack covers skew.
_CLOCK_SLACK = 60.0


class StateStore(Protocol):
    """The part of Airflow 3.3's ``task_state_store`` this module uses."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def set(self, key: str, value: Any) -> None: ...


@dataclass
class Submitter:
    """
    One task try's way to a request: the earlier try's, or a new one.

    :param hook: the hook that talks to GMI.
    :param store: the task state store, or ``None`` where Airflow has none.
    :param log: the task's logger.
    :param reuse: whether to look for an earlier try's request at all.
    """

    hook: KlingHook
    store: StateStore | None
    log: Logger
    reuse: bool = True

    def request(self, model: str, payload: Mapping[str, Any], described: str) -> KlingRequest:
        """The earlier try's request when it can be reused, else a new one (paid once)."""
        earlier = self.earlier() if self.reuse else None
        if earlier is not None:
            return earlier
        record = self.submit(model, payload)
        self.log.info("Submitted Kling request %s: model=%s %s", record.request_id, model, described)
        return record

    def earlier(self) -> KlingRequest | None:
        """The request an earlier try of this task submitted, if it is running or succeeded."""
        previous = self.store.get(STATE_KEY) if self.store is not None else None
        if not previous:
            return None
        try:
            record = self.hook.get_request(str(previous))
        except KlingAPIError as err:
            if err.status_code != 404:
                raise
            self.log.warning("GMI no longer knows request %s from an earlier try; submitting anew", previous)
            return None
        if record.verdict == "failed":
            self.log.warning(
                "Request %s from an earlier try ended %s; submitting anew", previous, record.status
            )
            return None
        self.log.info(
            "Reusing Kling request %s (%s) from an earlier try of this task instead of paying for a new one",
            previous,
            record.status,
        )
        return record

    def submit(self, model: str, payload: Mapping[str, Any]) -> KlingRequest:
        """Submit, and persist the id before anything else can fail, so a retry finds it."""
        try:
            record = self.hook.submit(model, payload)
        except KlingSubmitOutcomeUnknown as err:
            # A task retry would submit again and may pay twice: stop here and let a
            # person look (the message lists the requests GMI created meanwhile).
            raise KlingSubmitOutcomeUnknown(
                f"{err} {self.created_since(err.model, err.started_at)}",
                model=err.model,
                started_at=err.started_at,
                status_code=err.status_code,
            ) from err
        if self.store is not None:
            self.store.set(STATE_KEY, record.request_id)
        return record

    def created_since(self, model: str, started: float) -> str:
        """
        Name the requests GMI created for ``model`` since ``started``, for a person to judge.

        Not adopted automatically: GMI's payload echo is not always there, so with several
        tasks submitting at once one of them could take another's video.
        """
        since = started - _CLOCK_SLACK
        try:
            recent = [
                r
                for r in self.hook.list_requests(model)
                if r.created_at is not None and r.created_at.timestamp() >= since
            ]
        except Exception as err:
            return f"Listing recent requests to find it failed too: {err}"
        if not recent:
            return "GMI lists no request for this model created since then."
        ids = ", ".join(f"{r.request_id} ({r.status})" for r in recent[:20])
        return f"Requests GMI created for {model} since then: {ids}."

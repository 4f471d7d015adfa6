"""Submit a paid request at most once per task, across the task's retries and clears.

The semantics and names follow Airflow 3.3's ``ResumableJobMixin``: with ``durable`` on, the
request is persisted to the task state store (under ``external_id_key``) right after the submit;
a retry reconnects to an active request, returns a succeeded one, and submits anew only after a
failed one. Two things go further, because a Kling request is paid per second of video:

* The stored entry carries a fingerprint of what was submitted (model and payload, images by
  hash): a try whose inputs changed never reuses the earlier request.
* The entry is written *before* the submit too, so a worker that dies between sending and
  storing leaves a trace; and a submit whose outcome is unknown is reconciled with GMI's records
  before anything is sent again (:meth:`Submitter.reconcile`).

Where the store does not exist (Airflow 3.1 and 3.2) every try submits, as the docs say; an
unknown outcome is still reconciled within the try.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_kling.api.errors import KlingAPIError
from airflow_provider_kling.api.fingerprint import echo_fingerprint, fingerprint
from airflow_provider_kling.exceptions import KlingSubmitOutcomeUnknown

if TYPE_CHECKING:
    from airflow.sdk.types import Logger

    from airflow_provider_kling.api.records import KlingRequest
    from airflow_provider_kling.hooks.kling import KlingHook

#: The task state store key under which a try records its request, for the next try.
STATE_KEY = "kling_request_id"
# GMI stamps whole seconds with its own clock; a minute of slack covers skew.
_CLOCK_SLACK = 60.0
#: Sends of one submit within a try when each answer is lost and GMI lists nothing.
MAX_SENDS = 3
#: Seconds before GMI's requests are listed a second time, when the first listing after a lost
#: answer shows nothing: a request created a moment ago may list late.
SETTLE_SECONDS = 5.0


class StateStore(Protocol):
    """The part of Airflow 3.3's ``task_state_store`` this module uses."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def set(self, key: str, value: Any) -> None: ...


@dataclass(frozen=True)
class Entry:
    """
    What a try stores about its submit.

    :param request_id: the request GMI created, or ``None`` while the submit is in flight.
    :param fingerprint: :func:`~airflow_provider_kling.api.fingerprint.fingerprint` of what was
        submitted; ``None`` for an entry written by a provider before 0.3 (a bare id).
    :param submitted_at: when the submit was sent (Unix time).
    :param completed: the task instance ended successfully after this submit.
    """

    request_id: str | None
    fingerprint: str | None = None
    submitted_at: float | None = None
    completed: bool = False

    @classmethod
    def parse(cls, stored: Any) -> Entry | None:
        if isinstance(stored, str) and stored:
            return cls(request_id=stored)
        if not isinstance(stored, Mapping):
            return None
        request_id, fp, at = stored.get("request_id"), stored.get("fingerprint"), stored.get("submitted_at")
        return cls(
            request_id=request_id if isinstance(request_id, str) and request_id else None,
            fingerprint=fp if isinstance(fp, str) else None,
            submitted_at=float(at) if isinstance(at, int | float) and not isinstance(at, bool) else None,
            completed=stored.get("completed") is True,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "fingerprint": self.fingerprint,
            "submitted_at": self.submitted_at,
            "completed": self.completed,
        }


@dataclass
class Submitter:
    """
    One task try's way to a request: the earlier try's, or a new one paid for once.

    :param hook: the hook that talks to GMI.
    :param store: the task state store, or ``None`` where Airflow has none.
    :param log: the task's logger.
    :param durable: record the request and look for an earlier try's (``ResumableJobMixin``'s
        name for it); ``False`` submits on every try.
    :param reuse_succeeded: when the task already succeeded once with the same inputs and is
        run again (cleared), return that video (``True``) or pay for a new take (``False``).
        A retry after a failed try always reuses a running or succeeded request.
    :param key: the task state store key (``ResumableJobMixin.external_id_key``).
    """

    hook: KlingHook
    store: StateStore | None
    log: Logger
    durable: bool = True
    reuse_succeeded: bool = True
    key: str = STATE_KEY

    def request(self, model: str, payload: Mapping[str, Any], described: str) -> KlingRequest:
        """The earlier try's request when it can be reused, else a new one (paid once)."""
        fp = fingerprint(model, payload)
        entry = Entry.parse(self.store.get(self.key)) if self.durable and self.store is not None else None
        earlier = self.earlier(entry, model, fp) if entry is not None else None
        if earlier is not None:
            return earlier
        record = self.submit(model, payload, fp)
        self.log.info("Submitted Kling request %s: model=%s %s", record.request_id, model, described)
        return record

    def completed(self) -> None:
        """Record that the task instance succeeded with the stored request (see ``reuse_succeeded``)."""
        if not self.durable or self.store is None:
            return
        entry = Entry.parse(self.store.get(self.key))
        if entry is not None and entry.request_id is not None and not entry.completed:
            self.store.set(self.key, {**entry.to_dict(), "completed": True})

    # --- an earlier try ----------------------------------------------------------------------

    def earlier(self, entry: Entry, model: str, fp: str) -> KlingRequest | None:
        """The request an earlier try submitted, when it is running or succeeded and the same."""
        if entry.fingerprint is not None and entry.fingerprint != fp:
            self.log.info(
                "The inputs changed since request %s of an earlier try; submitting anew for the new inputs",
                entry.request_id or "(in flight)",
            )
            return None
        if entry.request_id is None:
            # The earlier try died between sending and storing the answer: find what it created.
            self.log.warning("An earlier try's submit never recorded its answer; looking for it at GMI")
            since = entry.submitted_at or time.time() - 3600
            found = self.reconcile(None, model, fp, since)
            if found is not None:
                self.save(Entry(found.request_id, fp, since))
            return found
        if entry.completed and not self.reuse_succeeded:
            self.log.info(
                "This task already succeeded with request %s; reuse_succeeded=False: submitting a new take",
                entry.request_id,
            )
            return None
        try:
            record = self.hook.get_request(entry.request_id)
        except KlingAPIError as err:
            if err.status_code != 404:
                raise
            self.log.warning(
                "GMI no longer knows request %s of an earlier try; submitting anew", entry.request_id
            )
            return None
        if entry.fingerprint is None and echo_fingerprint(model, record.raw) not in (None, fp):
            self.log.info("Request %s of an earlier try had other inputs; submitting anew", entry.request_id)
            return None
        if record.verdict == "failed":
            self.log.warning(
                "Request %s from an earlier try ended %s; submitting anew", entry.request_id, record.status
            )
            return None
        self.log.info(
            "Reusing Kling request %s (%s) from an earlier try of this task instead of paying for a new one",
            entry.request_id,
            record.status,
        )
        self.save(Entry(record.request_id, fp, entry.submitted_at, entry.completed))
        return record

    # --- a new submit --------------------------------------------------------------------------

    def submit(self, model: str, payload: Mapping[str, Any], fp: str) -> KlingRequest:
        """Submit, with the entry written before sending and after GMI answered."""
        started = time.time()
        self.save(Entry(None, fp, started))
        for _ in range(MAX_SENDS):
            try:
                record: KlingRequest | None = self.hook.submit(model, payload)
            except KlingSubmitOutcomeUnknown as err:
                record = self.reconcile(err, model, fp, started)
            if record is not None:
                self.save(Entry(record.request_id, fp, started))
                return record
            self.log.warning("GMI lists no request from this submit, so it never arrived; sending it again")
        raise KlingAPIError(
            f"The submit to {model} was sent {MAX_SENDS} times, each answer was lost, and GMI lists no "
            "request from any of them; nothing was created. The task's retries may try again"
        )

    def reconcile(
        self, err: KlingSubmitOutcomeUnknown | None, model: str, fp: str, since: float
    ) -> KlingRequest | None:
        """
        Decide an unknown submit from GMI's own records.

        Adopt the request the answer named, if GMI has it; else the one request created since
        ``since`` whose payload echo matches; ``None`` (safe to send again) when GMI lists no
        request since then, or only requests whose echo shows other inputs.

        :raises KlingSubmitOutcomeUnknown: the records cannot decide (no echo, several matches,
            or the listing failed); the message names the candidates.
        """
        reason = str(err) if err is not None else "An earlier try's submit was interrupted."
        if err is not None and err.request_id is not None:
            named = self._named(err.request_id)
            if named is not None:
                return named
        try:
            candidates = self.created_since(model, since)
            if not candidates:
                time.sleep(SETTLE_SECONDS)
                candidates = self.created_since(model, since)
        except KlingAPIError as list_err:
            detail = f"Listing GMI's requests to check failed: {list_err}"
            raise self._unknown(reason, model, since, (), detail) from list_err
        echoes = [(c, echo_fingerprint(model, c.raw)) for c in candidates]
        matches = [c for c, echo in echoes if echo == fp]
        if len(matches) > 1:  # an earlier try's failed request may echo the same inputs
            matches = [c for c in matches if c.verdict != "failed"] or matches
        if len(matches) == 1:
            self.log.warning(
                "Adopting request %s: GMI created it since the submit, and its payload echo is this task's",
                matches[0].request_id,
            )
            return matches[0]
        unclear = matches or [c for c, echo in echoes if echo is None]
        if not unclear:
            return None
        ids = tuple(c.request_id for c in unclear)
        why = "several requests echo this task's inputs" if matches else "GMI echoes no payload for"
        listed = ", ".join(f"{c.request_id} ({c.status})" for c in unclear[:20])
        raise self._unknown(reason, model, since, ids, f"Not resent: {why}: {listed}.")

    def _unknown(
        self, reason: str, model: str, since: float, ids: tuple[str, ...], detail: str
    ) -> KlingSubmitOutcomeUnknown:
        return KlingSubmitOutcomeUnknown(
            f"{reason} {detail} Check them (KlingHook().get_request(id) or GMI's console); wait for yours "
            "with a KlingStatusSensor, or clear the task if none is yours.",
            model=model,
            started_at=since,
            candidates=ids,
        )

    def _named(self, request_id: str) -> KlingRequest | None:
        try:
            record = self.hook.get_request(request_id)
        except KlingAPIError as err:
            self.log.warning("GMI's answer named request %s, but looking it up failed: %s", request_id, err)
            return None
        self.log.warning("Adopting request %s, which GMI's answer named (%s)", request_id, record.status)
        return record

    def created_since(self, model: str, started: float) -> list[KlingRequest]:
        """The requests GMI created for ``model`` since ``started`` (less the clock slack)."""
        since = started - _CLOCK_SLACK
        return [
            r
            for r in self.hook.list_requests(model)
            if r.created_at is not None and r.created_at.timestamp() >= since
        ]

    def save(self, entry: Entry) -> None:
        if self.durable and self.store is not None:
            self.store.set(self.key, entry.to_dict())

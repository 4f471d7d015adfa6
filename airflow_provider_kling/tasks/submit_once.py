"""Submit a paid request at most once per task, across the task's retries and clears.

The semantics and names follow Airflow 3.3's ``ResumableJobMixin``: with ``durable`` on, the
request is persisted to the task state store (under ``external_id_key``) right after the submit;
a retry reconnects to an active request, returns a succeeded one, and submits anew only after a
failed one. Two things go further, because a Kling request is paid per second of video:

* The stored submit carries a fingerprint of what was submitted (model and payload, images by
  hash): a try whose inputs changed never reuses the earlier request.
* It is written *before* the submit too, so a worker that dies between sending and
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
from airflow_provider_kling.api.fingerprint import compare_echo, fingerprint
from airflow_provider_kling.api.ownership import Window, judge
from airflow_provider_kling.api.records import KlingRequest
from airflow_provider_kling.exceptions import KlingSubmitOutcomeUnknown

if TYPE_CHECKING:
    from airflow.sdk.types import Logger

    from airflow_provider_kling.hooks.kling import KlingHook

#: The task state store key under which a try records its request, for the next try.
STATE_KEY = "kling_request_id"
#: Sends of one submit within a try when each answer is lost and GMI lists nothing.
MAX_SENDS = 3
#: Seconds before GMI's requests are listed a second time, when the first listing after a lost
#: answer shows nothing: a request created a moment ago may list late.
SETTLE_SECONDS = 5.0
#: Listed requests looked up one by one, per listing, when their list entry leaves open
#: whether they are a lost submit's (no ``created_at``, an echo that cannot be compared).
MAX_LOOKUPS = 10


@dataclass(frozen=True)
class Candidate:
    """A request GMI lists that may be a lost submit's: what the error message names."""

    request_id: str
    status: str
    why: str


class StateStore(Protocol):
    """The part of Airflow 3.3's ``task_state_store`` this module uses."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def set(self, key: str, value: Any) -> None: ...


@dataclass(frozen=True)
class StoredSubmit:
    """
    What a try stores about its submit.

    :param request_id: the request GMI created, or ``None`` while the submit is in flight.
    :param fingerprint: :func:`~airflow_provider_kling.api.fingerprint.fingerprint` of what was
        submitted; ``None`` for one written by a provider before 0.3 (a bare id).
    :param submitted_at: when the submit was sent (Unix time).
    :param completed: the task instance ended successfully after this submit.
    """

    request_id: str | None
    fingerprint: str | None = None
    submitted_at: float | None = None
    completed: bool = False

    @classmethod
    def parse(cls, stored: Any) -> StoredSubmit | None:
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
        stored = (
            StoredSubmit.parse(self.store.get(self.key)) if self.durable and self.store is not None else None
        )
        earlier = self.earlier(stored, model, payload, fp) if stored is not None else None
        if earlier is not None:
            return earlier
        record = self.submit(model, payload, fp)
        self.log.info("Submitted Kling request %s: model=%s %s", record.request_id, model, described)
        return record

    def completed(self) -> None:
        """Record that the task instance succeeded with the stored request (see ``reuse_succeeded``)."""
        if not self.durable or self.store is None:
            return
        stored = StoredSubmit.parse(self.store.get(self.key))
        if stored is not None and stored.request_id is not None and not stored.completed:
            self.store.set(self.key, {**stored.to_dict(), "completed": True})

    # --- an earlier try ----------------------------------------------------------------------

    def earlier(
        self, stored: StoredSubmit, model: str, payload: Mapping[str, Any], fp: str
    ) -> KlingRequest | None:
        """The request an earlier try submitted, when it is running or succeeded and the same."""
        if stored.fingerprint is not None and stored.fingerprint != fp:
            self.log.info(
                "The inputs changed since request %s of an earlier try; submitting anew for the new inputs",
                stored.request_id or "(in flight)",
            )
            return None
        if stored.request_id is None:
            # The earlier try died between sending and storing the answer: find what it created.
            self.log.warning("An earlier try's submit never recorded its answer; looking for it at GMI")
            found = self.reconcile(None, model, payload, stored.submitted_at)
            if found is not None:
                self.save(StoredSubmit(found.request_id, fp, stored.submitted_at))
            return found
        if stored.completed and not self.reuse_succeeded:
            self.log.info(
                "This task already succeeded with request %s; reuse_succeeded=False: submitting a new take",
                stored.request_id,
            )
            return None
        try:
            record = self.hook.get_request(stored.request_id)
        except KlingAPIError as err:
            if err.status_code != 404:
                raise
            self.log.warning(
                "GMI no longer knows request %s of an earlier try; submitting anew", stored.request_id
            )
            return None
        if stored.fingerprint is None and compare_echo(model, payload, record.raw) == "other":
            self.log.info("Request %s of an earlier try had other inputs; submitting anew", stored.request_id)
            return None
        if record.verdict == "failed":
            self.log.warning(
                "Request %s from an earlier try ended %s; submitting anew", stored.request_id, record.status
            )
            return None
        self.log.info(
            "Reusing Kling request %s (%s) from an earlier try of this task instead of paying for a new one",
            stored.request_id,
            record.status,
        )
        self.save(StoredSubmit(record.request_id, fp, stored.submitted_at, stored.completed))
        return record

    # --- a new submit --------------------------------------------------------------------------

    def submit(self, model: str, payload: Mapping[str, Any], fp: str) -> KlingRequest:
        """Submit, with the stored written before sending and after GMI answered."""
        started = time.time()
        self.save(StoredSubmit(None, fp, started))
        last: KlingSubmitOutcomeUnknown | None = None
        for _ in range(MAX_SENDS):
            try:
                record: KlingRequest | None = self.hook.submit(model, payload)
            except KlingSubmitOutcomeUnknown as err:
                last = err
                record = self.reconcile(err, model, payload, started)
            if record is not None:
                self.save(StoredSubmit(record.request_id, fp, started))
                return record
            self.log.warning("GMI shows no request from this submit, so it never arrived; sending it again")
        raise KlingAPIError(
            f"The submit to {model} was sent {MAX_SENDS} times, no answer could be read (the last: {last}), "
            "and GMI showed no request from any of them; nothing was created. The task's retries may try "
            "again"
        )

    def reconcile(
        self,
        err: KlingSubmitOutcomeUnknown | None,
        model: str,
        payload: Mapping[str, Any],
        since: float | None,
    ) -> KlingRequest | None:
        """
        Decide an unknown submit from GMI's own records (:mod:`~airflow_provider_kling.api.ownership`).

        Adopt the one request GMI shows is this submit's: created since ``since`` (the first
        send, placed on GMI's clock by its ``Date`` header) with a payload echo of these inputs
        after GMI's normalisation; a request the answer named must pass the same checks.
        ``None`` (safe to send again) only when everything GMI lists is shown not to be this
        submit's, in two listings ``SETTLE_SECONDS`` apart.

        :param since: when the submit was first sent (our clock); ``None`` when unknown, and
            then nothing is adopted.
        :raises KlingSubmitOutcomeUnknown: the records cannot decide (a request that may be
            this submit's, several that are, or the listing failed); the message names them.
        """
        reason = str(err) if err is not None else "An earlier try's submit was interrupted."
        named: Candidate | None = None
        if err is not None and err.request_id is not None:
            record = self._named(err.request_id, model, payload, since)
            if isinstance(record, KlingRequest):
                return record
            named = record
        try:
            ours, maybe = self.look(model, payload, since, named)
            if not ours and not maybe:
                time.sleep(SETTLE_SECONDS)  # a request created a moment ago may list late
                ours, maybe = self.look(model, payload, since, named)
        except KlingAPIError as list_err:
            detail = f"Listing GMI's requests to check failed: {list_err}"
            ids: tuple[str, ...] = (named.request_id,) if named is not None else ()
            raise self._unknown(reason, model, since, ids, detail) from list_err
        if len(ours) == 1 and not maybe:
            self.log.warning(
                "Adopting request %s: GMI created it since this submit was first sent, and its payload "
                "echo shows this task's inputs",
                ours[0].request_id,
            )
            return ours[0]
        if not ours and not maybe:
            return None
        unclear = [Candidate(r.request_id, r.status, "it shows this task's inputs") for r in ours] + maybe
        why = "several requests show this task's inputs" if not maybe else "GMI cannot rule these out"
        listed = "; ".join(f"{c.request_id} ({c.status}: {c.why})" for c in unclear[:20])
        ids = tuple(c.request_id for c in unclear)
        raise self._unknown(reason, model, since, ids, f"Not resent: {why}: {listed}.")

    def look(
        self, model: str, payload: Mapping[str, Any], since: float | None, named: Candidate | None
    ) -> tuple[list[KlingRequest], list[Candidate]]:
        """
        GMI's requests for ``model`` that are this submit's, and those that may be.

        A list stored that leaves the question open (no ``created_at``, an empty or normalised
        echo) is looked up on its own, since GMI's record of one request may say more.
        """
        listed = self.hook.list_requests(model)
        window = self._window(since)
        ours: list[KlingRequest] = []
        maybe = [named] if named is not None else []
        lookups = 0
        for record in listed:
            if named is not None and record.request_id == named.request_id:
                continue
            verdict, why = judge(record, model, payload, window)
            if verdict == "maybe" and lookups < MAX_LOOKUPS:
                lookups += 1
                fuller = self._lookup(record.request_id)
                if fuller is not None:
                    record = fuller
                    verdict, why = judge(record, model, payload, window)
            if verdict == "ours":
                ours.append(record)
            elif verdict == "maybe":
                # Only the id and status are kept: a record may carry a 14 MB echo of the image.
                maybe.append(Candidate(record.request_id, record.status, why))
        return ours, maybe

    def _window(self, since: float | None) -> Window:
        return Window.unknown() if since is None else Window.since(since, self.hook.server_clock)

    def _unknown(
        self, reason: str, model: str, since: float | None, ids: tuple[str, ...], detail: str
    ) -> KlingSubmitOutcomeUnknown:
        return KlingSubmitOutcomeUnknown(
            f"{reason} {detail} Check them (KlingHook().get_request(id) or GMI's console); wait for yours "
            "with a KlingStatusSensor, or clear the task if none is yours.",
            model=model,
            started_at=since if since is not None else 0.0,
            candidates=ids,
        )

    def _named(
        self, request_id: str, model: str, payload: Mapping[str, Any], since: float | None
    ) -> KlingRequest | Candidate | None:
        """The request GMI's answer named: adopted when it passes the checks, else a candidate or nothing."""
        try:
            record = self.hook.get_request(request_id)
        except KlingAPIError as err:
            if err.status_code == 404:
                self.log.warning("GMI's answer named request %s, which GMI does not know", request_id)
                return None
            return Candidate(request_id, "unknown", f"GMI's answer named it; looking it up failed: {err}")
        verdict, why = judge(record, model, payload, self._window(since))
        if verdict == "ours":
            self.log.warning("Adopting request %s, which GMI's answer named (%s)", request_id, record.status)
            return record
        if verdict == "not ours":
            self.log.warning("GMI's answer named request %s, which is not this submit's: %s", request_id, why)
            return None
        return Candidate(record.request_id, record.status, f"GMI's answer named it, but {why}")

    def _lookup(self, request_id: str) -> KlingRequest | None:
        try:
            record = self.hook.get_request(request_id)
        except KlingAPIError as err:
            self.log.warning("Looking up listed request %s failed: %s", request_id, err)
            return None
        return record if record.request_id == request_id else None

    def save(self, stored: StoredSubmit) -> None:
        if self.durable and self.store is not None:
            self.store.set(self.key, stored.to_dict())

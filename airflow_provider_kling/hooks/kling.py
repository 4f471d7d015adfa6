"""Hooks for GMI Cloud's request-queue API: a sync one for workers, an async twin for the triggerer."""

from __future__ import annotations

import asyncio
import os
import time
import warnings
from collections.abc import Collection, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.sdk import BaseHook

from airflow_provider_kling import __version__, exceptions
from airflow_provider_kling.api import ConnectionSettings, KlingRequest, connection_settings, validate_model
from airflow_provider_kling.api.body import JsonBody
from airflow_provider_kling.api.ownership import ClockReading
from airflow_provider_kling.api.redaction import log_masks, redacted_errors
from airflow_provider_kling.api.validation import validate_number, validate_whole
from airflow_provider_kling.exceptions import KlingAPIError
from airflow_provider_kling.hooks import forms, lineage, masking, model_check
from airflow_provider_kling.transport.bounds import asend, bounded_session, send
from airflow_provider_kling.transport.clients import SharedClient, shared_clients
from airflow_provider_kling.transport.failures import list_field, parse_answer, raise_for_submit
from airflow_provider_kling.transport.retries import retrying_arguments
from airflow_provider_kling.transport.writers import DEFAULT_CONTENT_TYPES, DownloadResult, stream_download

if TYPE_CHECKING:
    import requests
    from airflow.sdk import Connection, ObjectStoragePath

    from airflow_provider_kling.api.model_detail import ModelCheck

USER_AGENT = f"airflow-provider-kling/{__version__}"
# Seconds to open a TCP/TLS connection, apart from the read timeout: a dead host fails fast.
CONNECT_TIMEOUT = 10.0


def _settings(conn: Connection, extra: Mapping[str, Any]) -> ConnectionSettings:
    raw_extra = conn.extra if isinstance(conn.extra, str) else None
    return connection_settings(
        conn_id=conn.conn_id,
        password=conn.password,
        host=conn.host,
        schema=conn.schema,
        port=conn.port,
        extra=extra,
        raw_extra=raw_extra,
    )


class _KlingHookBase(BaseHook):
    """Connection metadata and retry settings shared by the sync and async hooks."""

    conn_name_attr = "kling_conn_id"
    default_conn_name = "kling_default"
    conn_type = "kling"
    hook_name = "Kling (GMI Cloud)"

    def __init__(
        self,
        kling_conn_id: str = default_conn_name,
        *,
        retry_limit: int = 5,
        retry_max_wait: float = 60.0,
        retry_max_delay: float = 300.0,
    ) -> None:
        """
        :param kling_conn_id: the ``kling`` connection holding the API key.
        :param retry_limit: retries of one call after the first attempt.
        :param retry_max_wait: the longest single wait between retries, in seconds; a rate
            limit asking for longer fails the call at once (the task's own retries take over).
        :param retry_max_delay: the longest total time, in seconds, one call may spend retrying.
        """
        super().__init__()
        seconds = "a finite number of seconds, 0 or more"
        self.kling_conn_id = kling_conn_id
        self.retry_limit = validate_whole(retry_limit, "retry_limit", allowed="a whole number, 0 or more")
        self.retry_max_wait = validate_number(retry_max_wait, "retry_max_wait", allowed=seconds, minimum=0)
        self.retry_max_delay = validate_number(retry_max_delay, "retry_max_delay", allowed=seconds, minimum=0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kling_conn_id={self.kling_conn_id!r})"

    def _policy(self, *, idempotent: bool) -> dict[str, Any]:
        attempts, max_wait, max_delay = self.retry_limit + 1, self.retry_max_wait, self.retry_max_delay
        return retrying_arguments(
            idempotent=idempotent, attempts=attempts, max_wait=max_wait, max_delay=max_delay, log=self.log
        )

    def _cancel_outcome(self, request_id: str, error: Exception | None) -> bool:
        # GMI documents no cancel call, so a failed cancel is only worth a warning: the
        # caller is a task or trigger being killed, which must not fail on it.
        if error is not None:
            self.log.warning(
                "Could not cancel Kling request %s (GMI documents no cancel call): %s", request_id, error
            )
            return False
        self.log.info("Asked GMI to cancel Kling request %s", request_id)
        return True


class KlingHook(_KlingHookBase):
    """
    Talk to GMI Cloud's request-queue API from a worker.

    One ``requests.Session`` per hook keeps connections alive across calls. Reads retry
    on network errors, 5xx and 429; submits retry only when GMI surely did not accept
    them (see :mod:`airflow_provider_kling.transport.retries`), so a video is never paid for twice.

    :param kling_conn_id: the ``kling`` connection holding the API key.
    :param retry_limit: retries of one call after the first attempt.
    :param retry_max_wait: the longest single wait between retries, in seconds.
    :param retry_max_delay: the longest total time, in seconds, one call may spend retrying.
    """

    #: The last answer's ``Date`` header and when it was asked and answered: GMI's clock.
    server_clock: ClockReading | None = None

    # The form is defined here, not on the base: Airflow 3.1 reads only the hook class's own __dict__.
    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Connection form layout for Airflow 3.1; 3.2+ reads the same from the provider info."""
        return forms.ui_field_behaviour()

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra connection fields for Airflow 3.1; 3.2+ reads ``conn-fields`` from the provider info."""
        return forms.connection_form_widgets()

    @cached_property
    def settings(self) -> ConnectionSettings:
        """The connection's API key, base URL, organization and timeout, validated."""
        with exceptions.KlingConnectionNotFound.on_lookup(self.kling_conn_id, self.log):
            conn = self.get_connection(self.kling_conn_id)
        settings = _settings(conn, conn.extra_dejson)
        if masks := log_masks(settings.secrets, masked=conn.password):
            masking.mask_once(masks)
        return settings

    @cached_property
    def session(self) -> requests.Session:
        """The ``requests.Session`` every call of this hook reuses, with the auth headers set."""
        import requests

        session = bounded_session()
        session.headers.update(self.settings.headers(f"{USER_AGENT} python-requests/{requests.__version__}"))
        return session

    def close(self) -> None:
        """Close the HTTP session; the next call opens a new one."""
        if "session" in self.__dict__:
            self.session.close()
            del self.__dict__["session"]

    def submit(self, model: str, payload: Mapping[str, Any]) -> KlingRequest:
        """
        Submit one request and return its first record, which may already be terminal.

        Every submit ends in exactly one of three ways: accepted (the record is returned),
        surely refused (an error; sent again within the call only while asking again may
        work), or unknown. It is never resent here when GMI may have created the request.

        :raises KlingSubmitOutcomeUnknown: GMI may have created the request: the answer was
            lost or too slow, any 5xx (a 503 naming a request sets ``request_id``), or a 2xx
            that cannot be read. :class:`~airflow_provider_kling.tasks.submit_once.Submitter`
            reconciles it with GMI's records.
        :raises KlingSubmitRejected: a permanent refusal (400, 401, 402, 403, 404, a redirect):
            fails the task without retries.
        :raises KlingAPIError: refused, and the call's own retries ran out (rate limits).
        """
        model = validate_model(model)
        what = f"submit to {model}"
        started = time.time()
        try:
            body = self._call(
                "POST",
                "/requests",
                json={"model": model, "payload": dict(payload)},
                idempotent=False,
                what=what,
            )
            return KlingRequest.from_record(body)
        except KlingAPIError as err:
            raise_for_submit(err, model=model, started_at=started)

    def submit_request(self, model: str, payload: Mapping[str, Any]) -> str:
        """Submit one request and return its id. Deprecated: use ``submit(model, payload).request_id``."""
        warnings.warn(
            "KlingHook.submit_request is deprecated; use KlingHook.submit(model, payload).request_id",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.submit(model, payload).request_id

    def get_request(self, request_id: str) -> KlingRequest:
        """The current record of one request."""
        body = self._call("GET", _request_path(request_id), idempotent=True, what=f"get {request_id}")
        return KlingRequest.from_record(body)

    def list_requests(self, model: str) -> list[KlingRequest]:
        """Every request the account has for ``model`` (GMI documents no paging)."""
        body = self._call(
            "GET", "/requests", params={"model_id": model}, idempotent=True, what="list requests"
        )
        return [KlingRequest.from_record(item) for item in list_field(body, "requests", what="list requests")]

    def list_models(self) -> list[str]:
        """The model ids the API key may call."""
        body = self._call("GET", "/models", idempotent=True, what="list models")
        return [str(i) for i in list_field(body, "model_ids", what="list models")]

    def cancel_request(self, request_id: str) -> bool:
        """
        Ask GMI to cancel a request. GMI documents no cancel call, so this is best effort:
        failures are logged, never raised, and ``False`` is returned.
        """
        try:
            self._call("DELETE", _request_path(request_id), idempotent=True, what=f"cancel {request_id}")
        except Exception as err:
            return self._cancel_outcome(request_id, err)
        return self._cancel_outcome(request_id, None)

    def check_model(self, model_id: str, *, quick: bool = False) -> ModelCheck:
        """How this provider's spec of a model differs from GMI's detail (see ``hooks.model_check``)."""
        return model_check.check_model(self, model_id, quick=quick)

    def test_connection(self) -> tuple[bool, str]:
        """Check the key with free, read-only calls: list models, then each known model's detail."""
        try:
            report = model_check.connection_report(self, self.list_models())
        except Exception as err:
            return False, str(err)
        self.log.info("%s", report)  # Airflow's CLI prints only "Connection success!", not the report
        return True, report

    def download(
        self,
        url: str,
        destination: str | os.PathLike[str] | ObjectStoragePath,
        *,
        chunk_size: int = 1 << 20,
        max_bytes: int | None = None,
        content_types: Collection[str] | None = DEFAULT_CONTENT_TYPES,
    ) -> DownloadResult:
        """
        Stream one output video to a local path or an ``ObjectStoragePath``.

        Only one chunk is in memory at a time. The video is written under a temporary name
        in the same folder and renamed when complete, so no reader ever sees half a video
        under the final name; on any error the temporary file is removed. Output URLs are
        public, so the API key is not sent with them.

        :param url: the video URL (from a request's ``media_urls``).
        :param destination: the file to write: a local path, or an ``ObjectStoragePath``
            (``file://``, ``s3://``, ``gs://``, ``memory://``, ...). Local parent folders
            are created.
        :param chunk_size: bytes read and written at a time.
        :param max_bytes: refuse a larger video (checked against ``Content-Length`` before
            writing, and while streaming); ``None`` for no cap.
        :param content_types: accepted ``Content-Type`` prefixes (``video/`` and
            ``application/octet-stream`` by default; an answer without the header is
            accepted); ``None`` accepts any.
        :raises KlingDownloadError: the answer breaks the size cap or has another type.
        """
        result = stream_download(
            url,
            destination,
            settings=self.settings,
            connect_timeout=CONNECT_TIMEOUT,
            user_agent=USER_AGENT,
            chunk_size=chunk_size,
            max_bytes=max_bytes,
            content_types=content_types,
        )
        self.log.info(
            "Downloaded %s to %s (%d bytes, sha256 %s)", url, result.uri, result.size, result.sha256
        )
        lineage.report_written(self, result.uri)
        return result

    def _call(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool,
        what: str,
        json: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        from tenacity import Retrying

        retrying = Retrying(**self._policy(idempotent=idempotent))
        return retrying(self._send, method, path, json, params, what)

    def _send(
        self, method: str, path: str, json: Any, params: Mapping[str, str] | None, what: str
    ) -> dict[str, Any]:
        # A fresh body per attempt: a retry sends it from the start. The session sends Content-Type.
        body, sent = None if json is None else JsonBody(json), time.time()
        # Every error is scrubbed of the key here, before the retry policy logs it.
        with redacted_errors(self.settings.secrets):
            answer = send(self.session, method, path, body, params, self.settings, CONNECT_TIMEOUT, what)
            self.server_clock = ClockReading.from_headers(answer[2], sent, time.time())
            return parse_answer(*answer, what=what, secrets=self.settings.secrets)


class KlingAsyncHook(_KlingHookBase):
    """
    The async twin of :class:`KlingHook`, for triggers.

    Use it as an async context manager: the connection is fetched without blocking the
    event loop, and shared ``httpx.AsyncClient`` objects serve every poll until the block
    exits: every hook for the same connection in the same event loop uses the same few
    clients (:mod:`~airflow_provider_kling.transport.clients`), so a triggerer holding thousands
    of triggers keeps a few dozen connections at most; the last hook to exit closes them.

    .. code-block:: python

        async with KlingAsyncHook("kling_default") as hook:
            record = await hook.get_request(request_id)

    :param kling_conn_id: the ``kling`` connection holding the API key.
    :param retry_limit: retries of one call after the first attempt.
    :param retry_max_wait: the longest single wait between retries, in seconds.
    :param retry_max_delay: the longest total time, in seconds, one call may spend retrying.
    """

    settings: ConnectionSettings
    _shared: SharedClient | None = None

    async def __aenter__(self) -> KlingAsyncHook:
        import httpx

        with exceptions.KlingConnectionNotFound.on_lookup(self.kling_conn_id, self.log):
            try:
                conn = await self.aget_connection(self.kling_conn_id)
            except ImportError:  # Airflow 3.1 outside a task or triggerer has no supervisor to ask
                conn = await asyncio.to_thread(self.get_connection, self.kling_conn_id)
        # aextra_dejson (Airflow 3.3+) masks secrets without blocking the event loop.
        aextra = getattr(conn, "aextra_dejson", None)
        extra = await aextra() if aextra is not None else conn.extra_dejson
        self.settings = _settings(conn, extra)
        if masks := log_masks(self.settings.secrets, masked=conn.password):
            await masking.amask_once(masks)
        user_agent = f"{USER_AGENT} python-httpx/{httpx.__version__}"
        self._shared = await shared_clients.acquire(self.settings, user_agent, CONNECT_TIMEOUT)
        # Equal settings, one object: the hook's own copy is dropped with the connection it came from.
        self.settings = self._shared.settings
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._shared is not None:
            shared, self._shared = self._shared, None
            await shared_clients.release(shared)

    async def get_request(self, request_id: str) -> KlingRequest:
        """The current record of one request."""
        body = await self._call("GET", _request_path(request_id), what=f"get {request_id}")
        return KlingRequest.from_record(body)

    async def cancel_request(self, request_id: str) -> bool:
        """Best-effort cancel, as :meth:`KlingHook.cancel_request`."""
        try:
            await self._call("DELETE", _request_path(request_id), what=f"cancel {request_id}")
        except Exception as err:
            return self._cancel_outcome(request_id, err)
        return self._cancel_outcome(request_id, None)

    async def _call(self, method: str, path: str, *, what: str) -> Any:
        from tenacity import AsyncRetrying

        retrying = AsyncRetrying(**self._policy(idempotent=True))
        return await retrying(self._send, method, path, what)

    async def _send(self, method: str, path: str, what: str) -> dict[str, Any]:
        if self._shared is None:
            raise RuntimeError("KlingAsyncHook is used outside 'async with'")
        settings = self.settings
        with redacted_errors(settings.secrets):
            async with self._shared.slot() as client:
                answer = await asend(client, method, path, settings, what)
            return parse_answer(*answer, what=what, secrets=settings.secrets)


def _request_path(request_id: str) -> str:
    return f"/requests/{quote(request_id, safe='')}"


__all__ = ["DownloadResult", "KlingAsyncHook", "KlingHook"]

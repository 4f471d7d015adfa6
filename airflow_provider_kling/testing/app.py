"""The simulator's Starlette application: GMI's request-queue routes, media, and a control API."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from airflow_provider_kling.api.connection import API_PREFIX
from airflow_provider_kling.testing import wire
from airflow_provider_kling.testing.catalog import model_detail, served_models, validate_payload
from airflow_provider_kling.testing.faults import Fault
from airflow_provider_kling.testing.media import image_source
from airflow_provider_kling.testing.state import SimulatorState, SubmittedRequest

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

log = logging.getLogger(__name__)

#: Scope extension through which the simulator's uvicorn protocol lets the app drop a connection.
ABORT_EXTENSION = "kling_simulator.abort"

Handler = Callable[[Request], Awaitable[Response]]


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse(wire.error_body(message), status_code=status)


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


class _BadRequest(Exception):
    pass


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except ValueError as exc:
        raise _BadRequest("malformed JSON body") from exc


class AbortConnection(Response):
    """Not an answer: drops the TCP connection with a reset, so the client sees a connection error."""

    def __init__(self) -> None:
        super().__init__(status_code=500)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        abort = (scope.get("extensions") or {}).get(ABORT_EXTENSION)
        if abort is None:
            log.warning(
                "Connection-reset fault needs the simulator's uvicorn protocol; answering 500 instead"
            )
            await super().__call__(scope, receive, send)
            return
        abort()
        # uvicorn sends a 500 if the app returns before it has noticed that the connection is gone.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(_until_disconnect(receive), timeout=5)


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _control(handler: Handler) -> Handler:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except _BadRequest as exc:
            return _error(400, str(exc))

    return endpoint


def _named_request_id(response: Response | None) -> str | None:
    """The ``request_id`` a normal JSON answer named, if it named one."""
    if not isinstance(response, JSONResponse):
        return None
    try:
        body = json.loads(bytes(response.body))
    except ValueError:
        return None
    request_id = body.get("request_id") if isinstance(body, dict) else None
    return request_id if isinstance(request_id, str) else None


def _fault_response(fault: Fault, request_id: str | None = None) -> Response:
    content, content_type = fault.content(request_id)
    headers = dict(fault.headers)
    media_type = next((v for k, v in headers.items() if k.lower() == "content-type"), content_type)
    headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
    assert fault.status is not None  # passthrough faults never get here
    return Response(content, status_code=fault.status, headers=headers, media_type=media_type)


def _reshaped(response: Response, fault: Fault) -> Response:
    """A normal JSON answer with its records rewritten by a ``reshape`` fault."""
    if not isinstance(response, JSONResponse):
        return response
    body = fault.reshaped(json.loads(bytes(response.body)))
    return JSONResponse(body, status_code=response.status_code)


class _Endpoints:
    def __init__(self, state: SimulatorState) -> None:
        self.state = state

    def _record(self, submitted: SubmittedRequest, base_url: str) -> dict[str, Any]:
        return wire.record(submitted, self.state.config, self.state.clock(), base_url)

    def route(self, path: str, key: str, handler: Handler, method: str, *, auth: bool = True) -> Route:
        """A route that is counted, obeys the fault script, and (if ``auth``) checks the API key."""

        async def handle(request: Request) -> Response:
            if auth and not self.state.check_api_key(request.headers.get("authorization")):
                return _error(401, "invalid api key")
            try:
                return await handler(request)
            except _BadRequest as exc:
                return _error(400, str(exc))

        async def endpoint(request: Request) -> Response:
            fault = self.state.record_call(key, request.headers)
            if fault is None:
                return await handle(request)
            response = await handle(request) if fault.after_processing else None
            if fault.delay and not await self._sleep(fault.delay):
                return AbortConnection()
            if fault.reset:
                return AbortConnection()
            if fault.passthrough:
                answer = response if response is not None else await handle(request)
                return _reshaped(answer, fault) if fault.reshape is not None else answer
            return _fault_response(fault, _named_request_id(response))

        return Route(path, endpoint, methods=[method])

    async def _sleep(self, seconds: float) -> bool:
        """Sleep, but give up (returning False) as soon as the server begins to stop."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not self.state.shutting_down.is_set():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return True
            await asyncio.sleep(min(remaining, 0.1))
        return False

    # GMI request-queue API

    async def submit(self, request: Request) -> Response:
        data = await _json_body(request)
        if not isinstance(data, dict):
            return _error(400, "body must be a JSON object")
        model = data.get("model")
        if not isinstance(model, str) or not model:
            return _error(400, "model is required")
        drift = self.state.config.model_drift
        if model not in served_models(drift):
            return _error(404, f"model {model} does not exist")
        payload = data.get("payload")
        problem = validate_payload(model, payload, drift)
        if problem is not None:
            return _error(*problem)
        assert isinstance(payload, dict)  # validate_payload rejects anything else
        wait = self.state.admit_submit()
        if wait is not None:
            config = self.state.config
            assert config.rate_limit is not None  # admit_submit only refuses under a limit
            refusal = Fault.rate_limited(
                retry_after_ms=max(1, math.ceil(wait * 1000)),
                model=model,
                limit=config.rate_limit,
                interval_seconds=max(1, round(config.rate_limit_seconds)),
            )
            return _fault_response(refusal)
        submitted = self.state.submit(model, payload, request.headers)
        answer = wire.submit_answer(submitted, self.state.config, self.state.clock(), _base_url(request))
        return JSONResponse(answer)

    async def get_request(self, request: Request) -> Response:
        request_id = request.path_params["request_id"]
        submitted = self.state.read(request_id)
        if submitted is None:
            return _error(404, f"request {request_id} not found")
        return JSONResponse(self._record(submitted, _base_url(request)))

    async def cancel_request(self, request: Request) -> Response:
        request_id = request.path_params["request_id"]
        submitted = self.state.cancel(request_id)
        if submitted is None:
            return _error(404, f"request {request_id} not found")
        return JSONResponse(self._record(submitted, _base_url(request)))

    async def list_requests(self, request: Request) -> Response:
        model_id = request.query_params.get("model_id")
        base = _base_url(request)
        records = [
            self._record(r, base) for r in self.state.requests if model_id is None or r.model == model_id
        ]
        return JSONResponse(wire.list_answer(records))

    async def list_models(self, request: Request) -> Response:
        return JSONResponse(wire.models_answer(served_models(self.state.config.model_drift)))

    async def get_model(self, request: Request) -> Response:
        model_id = request.path_params["model_id"]
        detail = model_detail(model_id, self.state.config.model_drift)
        if detail is None:
            return _error(404, f"model {model_id} does not exist")
        return JSONResponse(detail)

    # Media, unauthenticated like GMI's public storage URLs

    async def video(self, request: Request) -> Response:
        submitted = self.state.get(request.path_params["request_id"])
        if submitted is None:
            return _error(404, "media not found")
        content = await self.state.media.video(submitted.payload)
        headers = {"Cache-Control": "public, max-age=3600"}
        size = self.state.config.media_bytes
        if size is None:
            return Response(content, media_type="video/mp4", headers=headers)
        headers["Content-Length"] = str(size)
        stream = _padded(content, size, rate=self.state.config.media_bytes_per_second)
        return StreamingResponse(stream, media_type="video/mp4", headers=headers)

    async def thumbnail(self, request: Request) -> Response:
        submitted = self.state.get(request.path_params["request_id"])
        if submitted is None or request.path_params["ext"] not in ("jpg", "jpeg", "png"):
            return _error(404, "media not found")
        content, content_type = await self.state.media.thumbnail(image_source(submitted.payload))
        return Response(content, media_type=content_type)

    # Control API for tests that drive a simulator in another process

    async def stats(self, request: Request) -> Response:
        return JSONResponse(self.state.stats())

    async def push_faults(self, request: Request) -> Response:
        data = await _json_body(request)
        entries = data if isinstance(data, list) else [data]
        try:
            parsed = []
            for entry in entries:
                if not isinstance(entry, dict) or not isinstance(entry.get("route"), str):
                    raise ValueError('expected {"route": "<METHOD /path>", "faults": [...]}')
                faults = entry.get("faults", [])
                faults = faults if isinstance(faults, list) else [faults]
                parsed.append((entry["route"], [Fault.from_dict(f) for f in faults]))
            for route, fault_list in parsed:
                self.state.script(route, fault_list)
        except ValueError as exc:
            return _error(400, str(exc))
        return JSONResponse({"pending_faults": self.state.pending_faults()})

    async def clear_faults(self, request: Request) -> Response:
        try:
            self.state.clear_faults(request.query_params.get("route"))
        except ValueError as exc:
            return _error(400, str(exc))
        return JSONResponse({"pending_faults": self.state.pending_faults()})

    async def config(self, request: Request) -> Response:
        if request.method == "POST":
            changes = await _json_body(request)
            if not isinstance(changes, dict):
                return _error(400, "expected a JSON object of config fields")
            try:
                self.state.configure(**changes)
            except ValueError as exc:
                return _error(400, str(exc))
        return JSONResponse(self.state.config.to_dict())

    async def fail_next(self, request: Request) -> Response:
        data = await _json_body(request) if (await request.body()).strip() else {}
        message = data.get("message") if isinstance(data, dict) else None
        self.state.fail_next(message if isinstance(message, str) else "requested by fail_next")
        return JSONResponse({"ok": True})

    async def reset(self, request: Request) -> Response:
        self.state.reset()
        return JSONResponse({"ok": True})


async def _padded(
    content: bytes, size: int, chunk: int = 1 << 20, rate: float | None = None
) -> AsyncIterator[bytes]:
    """``content`` then zeros, ``size`` bytes in all, a chunk at a time so the server never holds it;
    at most ``rate`` bytes per second when given."""
    head = content[:size]
    yield head
    if rate is not None:
        chunk = max(1, min(chunk, int(rate / 10)))  # ten chunks a second: a steady trickle
    zeros = bytes(chunk)
    left = size - len(head)
    while left > 0:
        if rate is not None:
            await asyncio.sleep(chunk / rate)
        yield zeros[: min(chunk, left)]
        left -= chunk


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse(wire.error_body(exc.detail), status_code=exc.status_code, headers=exc.headers)


def create_app(state: SimulatorState | None = None) -> Starlette:
    """Build the ASGI app; with no ``state`` a default one is made (``uvicorn --factory`` friendly).

    Connection-reset faults need :class:`~airflow_provider_kling.testing.simulator.AbortableHTTPProtocol`
    (pass ``--http airflow_provider_kling.testing.simulator:AbortableHTTPProtocol`` to uvicorn); under
    other servers they answer a bare 500 instead.
    """
    state = state or SimulatorState()
    e = _Endpoints(state)
    requests_path, models_path = f"{API_PREFIX}/requests", f"{API_PREFIX}/models"
    routes = [
        e.route(requests_path, "POST /requests", e.submit, "POST"),
        e.route(requests_path, "GET /requests", e.list_requests, "GET"),
        e.route(f"{requests_path}/{{request_id}}", "GET /requests/{id}", e.get_request, "GET"),
        e.route(f"{requests_path}/{{request_id}}", "DELETE /requests/{id}", e.cancel_request, "DELETE"),
        e.route(models_path, "GET /models", e.list_models, "GET"),
        e.route(f"{models_path}/{{model_id:path}}", "GET /models/{id}", e.get_model, "GET"),
        e.route("/media/{request_id}/sample_0.mp4", "GET /media", e.video, "GET", auth=False),
        e.route("/media/{request_id}/thumbnail.{ext}", "GET /media", e.thumbnail, "GET", auth=False),
        Route("/_simulator/stats", _control(e.stats), methods=["GET"]),
        Route("/_simulator/faults", _control(e.push_faults), methods=["POST"]),
        Route("/_simulator/faults", _control(e.clear_faults), methods=["DELETE"]),
        Route("/_simulator/config", _control(e.config), methods=["GET", "POST"]),
        Route("/_simulator/fail_next", _control(e.fail_next), methods=["POST"]),
        Route("/_simulator/reset", _control(e.reset), methods=["POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
    app.state.simulator = state
    return app

"""The Kling videos view's FastAPI app, mounted by the api-server under ``/kling``.

A plugin's app gets no authentication from Airflow, so every route here depends on Airflow's
own :func:`~airflow.api_fastapi.core_api.security.get_user` (the UI's ``_token`` cookie or a
bearer token; 401 without one) and shows only what the auth manager lets the caller read.
Nothing here holds, reads or sends the Kling API key: the data are the tasks' records.
"""

from __future__ import annotations

import html
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from airflow.api_fastapi.app import get_auth_manager

# FastAPI reads the dependencies out of the annotations at run time: these stay real imports.
from airflow.api_fastapi.common.db.common import SessionDep  # noqa: TC002
from airflow.api_fastapi.core_api.security import GetUserDep, get_user
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response, StreamingResponse

from airflow_provider_kling.api.filetypes import HEAD_BYTES, video_type
from airflow_provider_kling.plugins import queries

STATIC = Path(__file__).parent / "static"


def readable_dag_ids(user: GetUserDep) -> set[str]:
    """The DAGs the caller may read, as the auth manager says (every other Airflow page agrees)."""
    return set(get_auth_manager().get_authorized_dag_ids(user=user, method="GET"))


ReadableDep = Annotated[set[str], Depends(readable_dag_ids)]


def filters(
    readable: ReadableDep,
    dag_id: str | None = None,
    run_id: str | None = None,
    task_id: str | None = None,
    map_index: int | None = None,
    request_id: str | None = None,
    state: Annotated[list[str] | None, Query()] = None,
    status: Annotated[list[str] | None, Query()] = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> queries.Filters:
    """The view's filters from the query string; ``readable`` always applies."""
    return queries.Filters(
        readable=readable,
        dag_id=dag_id or None,
        run_id=run_id or None,
        task_id=task_id or None,
        map_index=map_index,
        request_id=request_id or None,
        states=tuple(s for s in state or () if s),
        statuses=tuple(s for s in status or () if s),
        since=since,
        until=until,
    )


FiltersDep = Annotated[queries.Filters, Depends(filters)]


def create_app() -> FastAPI:
    """The app the plugin mounts; built only in the api-server."""
    # Every route, and any added later, requires a login; the data routes also filter by DAG.
    app = FastAPI(
        title="Kling videos",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        dependencies=[Depends(get_user)],
    )

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request) -> HTMLResponse:
        # The page's own address is fixed as its base: inside Airflow's UI the script takes
        # its path out of the frame's address (so the UI does not mirror /kling/ into its own
        # address bar), and relative URLs must still reach this app.
        base = f'<base href="{html.escape(request.url.path, quote=True)}">'
        page = (STATIC / "index.html").read_text(encoding="utf-8")
        return HTMLResponse(page.replace("<head>", f"<head>\n{base}", 1))

    @app.get("/static/{name}")
    def static(name: str) -> FileResponse:
        path = STATIC / name
        if name not in {"app.js", "style.css", "theme.js"} or not path.is_file():
            raise HTTPException(404, "No such file")
        return FileResponse(path)

    @app.get("/api/videos")
    def videos(
        session: SessionDep,
        where: FiltersDep,
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=queries.MAX_PAGE)] = 24,
    ) -> dict[str, Any]:
        found = queries.page(session, where, offset=offset, limit=limit)
        return {
            "total": found.total,
            "offset": found.offset,
            "limit": found.limit,
            "videos": [video.to_json() for video in found.videos],
            # Each reviewed video: its takes (adjacent in ``videos``), the approved one, the notes.
            "groups": found.groups,
        }

    @app.get("/api/totals")
    def totals(session: SessionDep, where: FiltersDep) -> dict[str, Any]:
        return queries.totals(session, where)

    @app.get("/api/dags")
    def dags(session: SessionDep, readable: ReadableDep) -> dict[str, Any]:
        return {"dag_ids": queries.dag_ids(session, readable)}

    @app.get("/media/{dag_id}/{run_id}/{request_id}/{index}")
    def media(
        dag_id: str, run_id: str, request_id: str, index: int, session: SessionDep, readable: ReadableDep
    ) -> Response:
        # An unreadable DAG answers as a missing file does, so its videos' existence does not leak.
        uri = queries.stored_uri(session, dag_id, run_id, request_id, index) if dag_id in readable else None
        if uri is None:
            raise HTTPException(404, "No stored copy of this video")
        return stored_video(uri)

    return app


def stored_video(uri: str) -> Response:
    """Serve a recorded copy: a local file (with byte ranges, for seeking) or an object-store one."""
    local = uri.removeprefix("file://") if uri.startswith("file://") or "://" not in uri else None
    if local is not None:
        path = Path(local)
        if not path.is_absolute() or not path.is_file():
            raise HTTPException(404, "The stored copy is not readable from the api-server")
        with path.open("rb") as head:
            media_type = _video_type(head.read(HEAD_BYTES))
        return FileResponse(path, media_type=media_type)
    from airflow.sdk import ObjectStoragePath

    target = ObjectStoragePath(uri)
    try:
        handle = target.open("rb")
    except Exception:
        raise HTTPException(404, "The stored copy is not readable from the api-server") from None
    first = handle.read(64 * 1024)
    try:
        media_type = _video_type(first[:HEAD_BYTES])
    except HTTPException:
        handle.close()
        raise

    def chunks() -> Any:
        with handle:
            yield first
            while chunk := handle.read(1024 * 1024):
                yield chunk

    return StreamingResponse(chunks(), media_type=media_type)


def _video_type(head: bytes) -> str:
    # Served only when its bytes say video, whatever a task recorded as its copy: a HEIC or AVIF
    # photo opens with the same ftyp box as an MP4.
    media_type = video_type(head)
    if media_type is None:
        raise HTTPException(
            415, "The stored copy is not a video (allowed: MP4, QuickTime or WebM; not a HEIC or AVIF photo)"
        )
    return media_type


__all__ = ["create_app", "readable_dag_ids", "stored_video"]

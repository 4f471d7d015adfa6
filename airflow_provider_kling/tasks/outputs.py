"""
What a Kling task does with a finished request: copy its videos into storage, and describe
them on the task's asset events.

Shared by :class:`~airflow_provider_kling.operators.download.KlingDownloadVideoOperator`
and the ``download_to`` option of the submit operators and the sensor.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from airflow_provider_kling.api import KlingValidationError, estimate_cost
from airflow_provider_kling.tasks.ledger import COST_KEY, LEGACY_COST_KEY

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_kling.hooks.kling import KlingHook

#: The default file name under the destination; Jinja is rendered first, then the
#: ``{request_id}``, ``{index}`` and ``{image}`` fields are filled in for each video.
DEFAULT_FILENAME = "{{ run_id }}/{request_id}_{index}.mp4"
#: The default size cap of one video: a 15 s 1080p clip is a few tens of MB.
DEFAULT_MAX_BYTES = 2 * 1024**3

_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]+")


def safe_relative_name(name: str) -> str:
    """
    Make a relative file name that cannot leave the destination folder.

    Each ``/``-separated part keeps only letters, digits and ``._=-`` (others become
    ``_``); empty, ``.`` and ``..`` parts are dropped, and leading dots are removed so no
    name is hidden or collides with the ``.part`` files downloads are written to first.

    :param name: the rendered file name template.
    :raises KlingValidationError: nothing usable is left.
    """
    parts = [_UNSAFE.sub("_", part).lstrip(".") for part in re.split(r"[/\\]+", name)]
    kept = [part for part in parts if part and part not in (".", "..")]
    if not kept:
        raise KlingValidationError("filename", f"{name!r} names no file", "a relative file name")
    return str(PurePosixPath(*kept))


#: The fields a file name template may use.
FILENAME_FIELDS = "fields {request_id}, {index} and {image}"


def uses_image(template: str) -> bool:
    """Whether a file name template names the video after its source image."""
    return "{image}" in template


def output_names(template: str, request_id: str, count: int, image: str | None = None) -> list[str]:
    """
    The sanitised file name of each of a request's ``count`` videos.

    :param template: a file name with ``{request_id}``, ``{index}`` and ``{image}`` fields
        (Jinja already rendered).
    :param request_id: the request the videos belong to.
    :param count: how many videos it has.
    :param image: the source image's name without suffix (``red`` for ``red.jpg``), for
        ``{image}``; the request id stands in when it is unknown (an inline image).
    :raises KlingValidationError: the template has another field, or gives two videos the
        same name.
    """
    names: list[str] = []
    fields: dict[str, Any] = {"request_id": request_id, "image": image or request_id}
    for index in range(count):
        try:
            raw = template.format_map({**fields, "index": index})
        except (KeyError, IndexError, ValueError) as err:
            raise KlingValidationError(
                "filename", f"{template!r} cannot be filled in ({err!r})", FILENAME_FIELDS
            ) from None
        names.append(safe_relative_name(raw))
    if len(set(names)) < len(names):
        raise KlingValidationError(
            "filename", f"{template!r} gives {count} videos the same name", "a template with {index}"
        )
    return names


def resolve_destination(destination: Any, conn_id: str | None = None) -> Path | ObjectStoragePath:
    """
    The folder to write into: a local ``Path``, or an ``ObjectStoragePath`` for a URI.

    :param destination: a local path, a URI (``file://``, ``s3://``, ``gs://``,
        ``memory://``, ... through Airflow's object storage and fsspec), or an
        ``ObjectStoragePath``.
    :param conn_id: the Airflow connection for the object store, if it needs one.
    """
    if isinstance(destination, str) and "://" in destination:
        from airflow.sdk import ObjectStoragePath

        return ObjectStoragePath(destination, conn_id=conn_id)
    if isinstance(destination, str | Path):
        return Path(destination).expanduser()
    if hasattr(destination, "joinpath") and hasattr(destination, "open"):
        return destination  # type: ignore[no-any-return]
    raise KlingValidationError(
        "destination",
        f"a {type(destination).__name__} is not supported",
        "a local path, a URI or an ObjectStoragePath",
    )


def download_videos(
    hook: KlingHook,
    *,
    request_id: str,
    media_urls: Sequence[str],
    destination: Any,
    filename: str = DEFAULT_FILENAME,
    destination_conn_id: str | None = None,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    content_types: Collection[str] | None = None,
    image: str | None = None,
) -> list[dict[str, Any]]:
    """
    Stream each video of a request into ``destination``, one at a time.

    :param hook: the hook that downloads (see :meth:`~airflow_provider_kling.hooks.kling.KlingHook.download`).
    :param request_id: the request, used in the file names.
    :param media_urls: the videos' URLs.
    :param destination: the folder (see :func:`resolve_destination`).
    :param filename: the file name template (see :func:`output_names`).
    :param destination_conn_id: the object store's Airflow connection, if any.
    :param max_bytes: the largest video accepted.
    :param content_types: accepted ``Content-Type`` prefixes; ``None`` for the hook's default.
    :param image: the source image's name, for ``{image}`` (see :func:`output_names`).
    :return: one ``{"url", "uri", "size", "sha256"}`` per video, in order.
    """
    if not media_urls:
        raise KlingValidationError("media_urls", "there is no video to download", "at least one URL")
    folder = resolve_destination(destination, destination_conn_id)
    extra: dict[str, Any] = {"max_bytes": max_bytes}
    if content_types is not None:
        extra["content_types"] = content_types
    files = []
    for url, name in zip(media_urls, output_names(filename, request_id, len(media_urls), image), strict=True):
        written = hook.download(url, folder / name, **extra)
        files.append({"url": url, "uri": written.uri, "size": written.size, "sha256": written.sha256})
    return files


def request_metadata(
    request_id: str,
    model: str | None,
    payload: Mapping[str, Any] | None,
    request_info: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """
    What an asset event says about a video that this task did not submit (a sensor or a
    download downstream): request id, model, prompt, duration, resolution and
    ``estimated_cost_usd`` (``None`` where unknown). Images are never included. The submit
    operators use their :class:`~airflow_provider_kling.tasks.ledger.RequestEntry` instead.

    :param request_id: the request.
    :param model: its model id, if known.
    :param payload: what was submitted (or GMI's echo of it, often empty), if known.
    :param request_info: what the DAG says was submitted (``model``, ``prompt``,
        ``duration``, ``resolution``); it wins over the echo.
    """
    info = dict(request_info or {})
    model = info.pop("model", None) or model
    payload = {**(payload or {}), **info}
    cost = estimate_cost(model, payload) if model else None
    duration = payload.get("duration")
    return {
        "request_id": request_id,
        "model": model,
        "prompt": payload.get("prompt"),
        "duration": str(duration) if duration is not None else None,
        "resolution": payload.get("resolution"),
        COST_KEY: cost,
    }


def set_asset_extras(outlets: Sequence[Any], context: Mapping[str, Any], extra: Mapping[str, Any]) -> None:
    """
    Put ``extra`` on the event of each asset in a task's ``outlets``.

    Airflow emits one event per outlet asset when the task succeeds; a downstream DAG
    scheduled on the asset reads this from ``triggering_asset_events``. The price is also
    given under its deprecated name ``cost_usd``, for DAGs written against the previous version.
    """
    events = context.get("outlet_events")
    if events is None:
        return
    from airflow.sdk import Asset

    extra = dict(extra)
    if COST_KEY in extra:
        extra[LEGACY_COST_KEY] = extra[COST_KEY]
    for outlet in outlets or []:
        if isinstance(outlet, Asset):
            events[outlet].extra.update(extra)

"""The operator that copies a request's videos out of GMI's storage into yours."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_kling.api import validate_byte_cap, validate_request_id
from airflow_provider_kling.links.kling import KlingRequestLink, KlingVideoLink
from airflow_provider_kling.tasks.mixin import (
    DEFAULT_MAX_BYTES,
    DOWNLOAD_OPERATOR_RENAMES,
    NOT_GIVEN,
    DownloadSpec,
    KlingTaskMixin,
    download_arguments,
)
from airflow_provider_kling.tasks.outputs import request_metadata
from airflow_provider_kling.tasks.results import result_from_record

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_kling.api import KlingRequest
    from airflow_provider_kling.api.events import KlingResult


class KlingDownloadVideoOperator(KlingTaskMixin, BaseOperator):
    """
    Stream a Kling request's output videos to a local folder or any object store.

    Each video is streamed (never held whole in memory), checked against a size cap and
    its ``Content-Type``, written under a temporary name and renamed when complete (no
    half-written file under the final name), and hashed with sha256. GMI's output URLs
    have no documented retention, so copy them soon after the request succeeds.

    :param download_to: the folder to write into (templated): a local path, a URI that
        Airflow's object storage understands (``file://``, ``s3://``, ``gs://``,
        ``memory://``, ... through fsspec) or an ``ObjectStoragePath``.
    :param request_id: the request whose videos to fetch (templated): an id, or the dict
        a Kling task returned (its ``media_urls`` are used without another API call).
        Give this or ``media_urls``.
    :param media_urls: the video URLs to fetch (templated), a list or one URL; the files
        are named with ``request_id`` if given, else ``video``.
    :param download_filename: the file name under ``download_to`` (templated; then ``{request_id}``,
        ``{index}`` and ``{image}`` are filled in). Default ``{{ run_id }}/{request_id}_{index}.mp4``.
        ``{image}`` is the source image's file name without its suffix (``red_shoe`` for
        ``red_shoe.jpg``), as the Kling submit upstream of this task recorded it; the request
        id stands in for an image with no name (bytes, base64). Every part is sanitised, so
        no name escapes the destination.
    :param kling_conn_id: the ``kling`` connection (used to look the request up, and for
        the read timeout).
    :param download_conn_id: the Airflow connection of the object store, if it needs one.
    :param download_max_bytes: refuse a larger video. Default 2 GiB.
    :param content_types: accepted ``Content-Type`` prefixes. Default ``video/`` and the
        octet-stream types object stores use.
    :param request_info: what was submitted, for the asset events (templated):
        ``model``, ``prompt``, ``duration``, ``resolution``. GMI's record names the model
        but its payload echo is often empty, so without this the prompt, duration,
        resolution and cost of the event are ``None``.
    :param destination: deprecated name of ``download_to`` (a ``DeprecationWarning``; the four
        ``download_<what>`` arguments are named as on the submit operators and the sensor).
    :param filename: deprecated name of ``download_filename``.
    :param destination_conn_id: deprecated name of ``download_conn_id``.
    :param max_bytes: deprecated name of ``download_max_bytes``.

    :return: ``{"request_id", "media_urls", "files": [{"url", "uri", "size", "sha256"}],
        "uris"}``. With ``outlets=[Asset(...)]`` each asset event's extra carries the request
        id, model, prompt, duration, resolution, estimated cost and the written URIs.
    """

    template_fields: Sequence[str] = (
        "download_to",
        "request_id",
        "media_urls",
        "download_filename",
        "request_info",
    )
    operator_extra_links = (KlingVideoLink(), KlingRequestLink())
    ui_color = "#fde8d7"

    def __init__(
        self,
        *,
        download_to: Any = None,
        request_id: Any = None,
        media_urls: Sequence[str] | str | None = None,
        download_filename: str | None = None,
        kling_conn_id: str = "kling_default",
        download_conn_id: str | None = None,
        download_max_bytes: int | None = DEFAULT_MAX_BYTES,
        content_types: Sequence[str] | None = None,
        request_info: dict[str, Any] | None = None,
        destination: Any = NOT_GIVEN,
        filename: str | None = NOT_GIVEN,
        destination_conn_id: str | None = NOT_GIVEN,
        max_bytes: int | None = NOT_GIVEN,
        **kwargs: Any,
    ) -> None:
        old = {"destination": destination, "filename": filename, "destination_conn_id": destination_conn_id}
        download = download_arguments(
            type(self).__name__,
            {**old, "max_bytes": max_bytes},
            DOWNLOAD_OPERATOR_RENAMES,
            download_to=download_to,
            download_filename=download_filename,
            download_conn_id=download_conn_id,
            download_max_bytes=download_max_bytes,
        )
        super().__init__(**kwargs)
        if download["download_to"] is None:
            raise ValueError(
                "Invalid download_to: missing. Allowed: a local folder, a URI or an ObjectStoragePath."
            )
        if request_id is None and media_urls is None:
            raise ValueError("KlingDownloadVideoOperator needs request_id or media_urls")
        self.request_info = request_info
        self.download_to = download["download_to"]
        self.request_id = request_id
        self.media_urls = media_urls
        self.download_filename = download["download_filename"]
        self.kling_conn_id = kling_conn_id
        self.download_conn_id = download["download_conn_id"]
        self.download_max_bytes = validate_byte_cap(download["download_max_bytes"], "download_max_bytes")
        self.content_types = content_types
        self._record: KlingRequest | None = None

    def download_spec(self) -> DownloadSpec:
        types = None if self.content_types is None else tuple(self.content_types)
        return DownloadSpec(
            self.download_to, self.download_filename, self.download_conn_id, self.download_max_bytes, types
        )

    def asset_extra(self, result: KlingResult) -> Mapping[str, Any]:
        # Only GMI's record knows the model (and, when it echoes the payload, the prompt).
        record = self._record
        echo = record.raw.get("payload") if record is not None else None
        return request_metadata(
            result["request_id"],
            record.model if record is not None else None,
            echo if isinstance(echo, dict) else None,
            self.request_info,
        )

    def execute(self, context: Context) -> dict[str, Any]:
        request_id, urls = self._resolve()
        context["ti"].xcom_push(key="request_id", value=request_id)
        result = self.finish(context, {"request_id": request_id, "media_urls": urls})
        files = result.get("files", [])
        return {
            "request_id": request_id,
            "media_urls": urls,
            "files": files,
            "uris": [f["uri"] for f in files],
        }

    def _resolve(self) -> tuple[str, list[str]]:
        """The request id and the URLs to fetch; GMI's record is read only when needed."""
        if self.media_urls is not None:
            urls = (
                [self.media_urls] if isinstance(self.media_urls, str) else [str(u) for u in self.media_urls]
            )
            request_id = validate_request_id(self.request_id) if self.request_id is not None else "video"
            return request_id, urls
        given = self.request_id
        request_id = validate_request_id(given)
        if isinstance(given, dict) and given.get("media_urls") and not self.outlets:
            return request_id, [str(u) for u in given["media_urls"]]
        # GMI's record has the URLs and, for asset events, the model and prompt.
        self._record = record = self.hook.get_request(request_id)
        result = result_from_record(record)
        if result is None:
            raise ValueError(
                f"Kling request {request_id} is still {record.status}: wait for it (KlingStatusSensor) "
                "before downloading"
            )
        return request_id, list(result["media_urls"])

    #: For lineage: this task reads the videos at GMI's URLs (and writes the copies).
    lineage_reads = "videos"

"""
Where a Kling video came from, in the two lineage channels Airflow's own providers report to.

* Airflow's hook-level lineage collector: each video a hook writes (:func:`report_written`) and
  each local image a task reads (:func:`report_read`; an ``ObjectStoragePath`` reports its own).
* OpenLineage: :func:`operator_lineage` builds what
  ``KlingTaskMixin.get_openlineage_facets_on_complete`` returns, with the datasets a task read
  and made and a ``klingRequest`` run facet.

Datasets are named as OpenLineage's naming spec says (``openlineage.client.naming``): a local
file is namespace ``file``, name its absolute path; an object ``s3://bucket/key`` is namespace
``s3://bucket``, name ``key``; a URL is namespace ``https://host``, name its path, never its
query (signed URLs carry credentials there). An inline image has no location: it is described
in the run facet, never copied. Nothing here imports OpenLineage or the collector until a task
reads, writes or completes, so without the OpenLineage provider nothing is imported.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlsplit

from airflow_provider_kling.api import API_PREFIX, KlingValidationError, classify_first_frame

#: A dataset as OpenLineage names it: (namespace, name).
DatasetName = tuple[str, str]

#: The run facet's key; a custom facet's name starts with its project's.
FACET_NAME = "klingRequest"
#: The ``source`` of the standard ``externalQuery`` run facet that carries the request id.
EXTERNAL_SOURCE = "gmi-cloud"

# Object stores whose OpenLineage name is the key without its leading slash.
_SCHEME_NAMES = {"gcs": "gs", "s3a": "s3", "s3n": "s3"}


def _is_inline(value: Any) -> bool:
    if isinstance(value, bytes | bytearray | memoryview):
        return True
    if isinstance(value, str):
        try:
            return classify_first_frame(value) in ("base64", "data_uri")
        except KlingValidationError:
            return False
    return False


def dataset_of(location: Any) -> DatasetName | None:
    """
    The OpenLineage name of an image or video location: a local path, a URI, a URL or an
    ``ObjectStoragePath``. ``None`` for nothing at all; an inline image is never a location
    (see :func:`image_of`).
    """
    if location is None or isinstance(location, bytes | bytearray | memoryview):
        return None
    if isinstance(location, os.PathLike) and not hasattr(location, "protocol"):
        return "file", os.path.abspath(os.fspath(location))
    if hasattr(location, "protocol") and hasattr(location, "path"):  # ObjectStoragePath: no conn id
        protocol = location.protocol if isinstance(location.protocol, str) else location.protocol[0]
        text = f"{protocol}:///{str(location.path).lstrip('/')}"
    else:
        text = str(location).strip()
    if "://" not in text:
        return ("file", os.path.abspath(os.path.expanduser(text))) if text else None
    parts = urlsplit(text)
    scheme = _SCHEME_NAMES.get(parts.scheme.lower(), parts.scheme.lower())
    # No user info (an ObjectStoragePath's str names its connection there, a URL its password).
    host = parts.netloc.rpartition("@")[2]
    if scheme in ("file", "local"):
        return ("file", parts.path) if host in ("", "localhost") else (f"file://{host}", parts.path)
    if scheme in ("http", "https"):
        return f"{scheme}://{host.lower()}", parts.path or "/"
    # An object store's first part is its bucket, also where it came as the path ("memory:///b/k").
    bucket, _, key = (host + "/" + parts.path.lstrip("/") if host else parts.path.lstrip("/")).partition("/")
    return f"{scheme}://{bucket}", key


def asset_uri(location: Any) -> str | None:
    """The URI of a location for Airflow's lineage collector (``file:///abs/path``, ``s3://b/k``)."""
    name = dataset_of(location)
    if name is None:
        return None
    namespace, path = name
    if namespace == "file":
        return f"file://{path}"
    return f"{namespace}{path}" if path.startswith("/") else f"{namespace}/{path}"


def request_dataset(base_url: str, request_id: str) -> DatasetName:
    """The request's record at GMI (``GET {base}/requests/{id}``): what links a submit to its wait."""
    namespace, base_path = dataset_of(base_url) or ("", "")
    return namespace, f"{base_path.rstrip('/')}{API_PREFIX}/requests/{quote(request_id, safe='')}"


def image_of(image: Any) -> tuple[Any, str | None]:
    """
    Where an image argument as given was read from, or, for an inline image, its description:
    for a task that did not prepare its payload in this process (one resumed after a deferral).
    """
    return (None, describe_inline(image)) if _is_inline(image) else (image, None)


def describe_inline(image: Any) -> str | None:
    """What lineage says of an inline image instead of copying it: type, size, bytes, hash."""
    if not _is_inline(image):
        return None
    from airflow_provider_kling.api.images import check_image, decode_base64_image

    try:
        if isinstance(image, str):
            return "inline " + decode_base64_image(image).describe()
        return "inline " + check_image(bytes(image), source="the inline image").describe()
    except KlingValidationError:
        return f"inline image, {len(image):,} {'base64 chars' if isinstance(image, str) else 'bytes'}"


# --- Airflow's hook-level lineage collector ---------------------------------------------------


def _collector() -> Any:
    # Looked up at each call, so a test (or Airflow) can replace the collector.
    import importlib

    try:
        module = importlib.import_module("airflow.sdk.lineage")
    except ImportError:  # Airflow < 3.2
        module = importlib.import_module("airflow.lineage.hook")
    return module.get_hook_lineage_collector()


def report_read(context: Any, image: Any) -> None:
    """
    Tell the collector a local image file was read. ``image`` is where it was read from
    (``PreparedPayload.image_source``; ``None`` for an inline one). An ``ObjectStoragePath``
    reports its own reads, and a URL is read by GMI, not by the task: neither is reported here.
    """
    if image is None:
        return
    if hasattr(image, "protocol") or (isinstance(image, str) and "://" in image):
        return
    # A local path, or what reads a local file (the drop folder's FolderImage).
    local = isinstance(image, str | os.PathLike) or hasattr(image, "read_bytes")
    if local and (uri := asset_uri(image)) is not None:
        _collector().add_input_asset(context=context, uri=uri)


def report_written(context: Any, uri: str) -> None:
    """Tell the collector a video was written to ``uri`` (its final name, never a part file)."""
    if (found := asset_uri(uri)) is not None:
        _collector().add_output_asset(context=context, uri=found)


# --- OpenLineage --------------------------------------------------------------------------------


@functools.cache
def _run_facet_class() -> type:
    import attr
    from openlineage.client.facet_v2 import RunFacet

    @attr.define
    class KlingRequestRunFacet(RunFacet):
        """The Kling request a task run submitted, waited for or downloaded."""

        # camelCase, as every OpenLineage facet's fields are.
        requestId: str
        model: str | None = None
        durationSeconds: int | None = None
        resolution: str | None = None
        estimatedCostUsd: float | None = None
        image: str | None = None

    return KlingRequestRunFacet


def _seconds(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def operator_lineage(
    inputs: Sequence[DatasetName],
    outputs: Sequence[DatasetName],
    request: Mapping[str, Any],
    *,
    image_description: str | None = None,
    source: str = EXTERNAL_SOURCE,
) -> Any:
    """
    The ``OperatorLineage`` of one task run.

    :param inputs: the datasets the task read.
    :param outputs: the datasets it made.
    :param request: the request as the task's asset extra describes it (``request_id``,
        ``model``, ``duration``, ``resolution``, ``estimated_cost_usd``); the prompt is left out.
    :param image_description: what an inline image was (never its bytes), else ``None``.
    :param source: the ``externalQuery`` facet's source: where the request id means something.
    """
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.event_v2 import Dataset
    from openlineage.client.facet_v2 import external_query_run

    def unique(names: Sequence[DatasetName]) -> list[Any]:
        return [Dataset(namespace=ns, name=name) for ns, name in dict.fromkeys(names)]

    request_id = str(request["request_id"])
    facet = _run_facet_class()(
        requestId=request_id,
        model=request.get("model"),
        durationSeconds=_seconds(request.get("duration")),
        resolution=request.get("resolution"),
        estimatedCostUsd=request.get("estimated_cost_usd"),
        image=image_description,
    )
    external = external_query_run.ExternalQueryRunFacet(externalQueryId=request_id, source=source)
    return OperatorLineage(
        inputs=unique(inputs),
        outputs=unique(outputs),
        run_facets={FACET_NAME: facet, "externalQuery": external},
    )


def video_datasets(result: Mapping[str, Any]) -> list[DatasetName]:
    """A finished request's videos: the stored copies, or GMI's URLs where nothing was stored."""
    files = result.get("files") or []
    locations = [f["uri"] for f in files] if files else list(result.get("media_urls") or [])
    return [name for location in locations if (name := dataset_of(location)) is not None]


__all__ = [
    "FACET_NAME",
    "DatasetName",
    "asset_uri",
    "dataset_of",
    "describe_inline",
    "operator_lineage",
    "report_read",
    "report_written",
    "request_dataset",
    "video_datasets",
]

"""
Stream one video from its URL to a local path or an object store, atomically.

Only one chunk is in memory at a time, and the video is written under a temporary name
and renamed when complete, so no reader ever sees half a video under its final name.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import tempfile
import time
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_provider_kling.api.redaction import redacted_errors
from airflow_provider_kling.api.validation import validate_byte_cap, validate_whole
from airflow_provider_kling.exceptions import KlingDownloadError, KlingTransportError
from airflow_provider_kling.transport.bounds import (
    ACCEPT_ENCODING,
    call_deadline,
    download_seconds,
    read_answer,
)
from airflow_provider_kling.transport.failures import error_for_status, requests_errors
from airflow_provider_kling.transport.fetch import MAX_REDIRECTS, FetchPolicy
from airflow_provider_kling.transport.pinning import Pins, pinned_session

if TYPE_CHECKING:
    import requests
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_kling.api import ConnectionSettings

#: What a video download may answer with: object stores often serve MP4s as octet-stream.
DEFAULT_CONTENT_TYPES: tuple[str, ...] = ("video/", "application/octet-stream", "binary/octet-stream")


@dataclass(frozen=True)
class DownloadResult:
    """Where a video was written, how big it is and its sha256."""

    uri: str
    size: int
    sha256: str


def stream_download(
    url: str,
    destination: str | os.PathLike[str] | ObjectStoragePath,
    *,
    settings: ConnectionSettings,
    connect_timeout: float,
    user_agent: str,
    chunk_size: int,
    max_bytes: int | None,
    content_types: Collection[str] | None,
) -> DownloadResult:
    """
    The body of :meth:`~airflow_provider_kling.hooks.kling.KlingHook.download`, which
    documents the arguments.

    Output URLs are public, so only ``user_agent`` is sent with the request, never the API key.
    The URL and every redirect hop pass the :class:`~airflow_provider_kling.transport.fetch.FetchPolicy`
    before they are requested, and each connects only to the addresses the policy checked.
    Each read may wait the connection's timeout; the whole download
    may take that timeout plus its size at ``MIN_DOWNLOAD_RATE`` (see ``transport.bounds``).
    """
    import requests

    # Where the cap is enforced, so no caller's NaN (which every size comparison passes) gets by.
    max_bytes = validate_byte_cap(max_bytes, "max_bytes")
    chunk_size = validate_whole(
        chunk_size, "chunk_size", allowed="a whole number of bytes, 1 or more", minimum=1
    )
    policy = FetchPolicy(settings.base_url, settings.allowed_media_hosts)
    digest = hashlib.sha256()
    size = 0

    def chunks(resp: requests.Response) -> Iterator[bytes]:
        nonlocal size
        for chunk in resp.iter_content(chunk_size):
            size += len(chunk)
            if max_bytes is not None and size > max_bytes:
                raise KlingDownloadError(f"{url} is larger than the cap of {max_bytes:,} bytes")
            digest.update(chunk)
            yield chunk

    what = f"download {url}"
    idle = settings.timeout
    pins = Pins()
    # A media host, or the API's own host a video URL may point to, can echo the key in a
    # redirect or a header: every error leaving here is scrubbed of it.
    with (
        redacted_errors(settings.secrets),
        pinned_session(pins) as session,
        call_deadline(idle, idle=idle, what=what) as deadline,
    ):
        with requests_errors(what, settings):
            resp = _follow(session, pins, url, policy, (connect_timeout, idle), user_agent)
        with resp:
            if resp.status_code >= 400:
                with requests_errors(what, settings):
                    # Read as an API answer is, bounded: an error page may be endless.
                    text = read_answer(resp, what=what)[:2000]
                raise error_for_status(
                    resp.status_code, text, resp.headers, what=what, secrets=settings.secrets
                )
            _check_headers(url, resp.headers, max_bytes, content_types)
            length = resp.headers.get("Content-Length", "")
            deadline.extend_to(download_seconds(idle, int(length) if length.isdigit() else max_bytes))
            try:
                if isinstance(destination, str | os.PathLike):
                    uri = _write_local(Path(destination), chunks(resp))
                else:
                    uri = _write_object(destination, chunks(resp))
            except requests.exceptions.RequestException:
                # A broken stream stays requests' own error, as it always was; one cut at the
                # deadline says so.
                if not deadline.expired:
                    raise
                raise KlingTransportError(f"{what}: cut at the deadline", sent=True) from None
    return DownloadResult(uri=uri, size=size, sha256=digest.hexdigest())


def _follow(
    session: requests.Session,
    pins: Pins,
    url: str,
    policy: FetchPolicy,
    timeout: tuple[float, float],
    user_agent: str,
) -> requests.Response:
    """The answer at the end of ``url``'s redirects, each hop checked before it is requested."""
    checked = policy.check(url)
    for _ in range(MAX_REDIRECTS + 1):
        pins.add(checked)
        # The parsed URL, not the text given: the one the policy checked is the one requested.
        resp = session.get(
            checked.url.url,
            stream=True,
            timeout=timeout,
            headers={"User-Agent": user_agent, "Accept-Encoding": ACCEPT_ENCODING},
            allow_redirects=False,
        )
        if not 300 <= resp.status_code < 400:
            return resp
        location = resp.headers.get("Location")
        resp.close()
        here = checked.url.url
        if not location:
            raise KlingDownloadError(f"{here} answered HTTP {resp.status_code} without a Location to follow")
        try:
            hop = checked.url.join(location)
        except ValueError as err:
            raise KlingDownloadError(
                f"Refused to follow the redirect from {here} to {location[:200]!r}: {err}"
            ) from None
        checked = policy.check(hop, source=here)
    raise KlingDownloadError(
        f"{checked.url.url}: more than {MAX_REDIRECTS} redirects; the download was not followed further"
    )


def _check_headers(
    url: str, headers: Mapping[str, str], max_bytes: int | None, content_types: Collection[str] | None
) -> None:
    """Refuse a download by its headers, before a byte is written."""
    kind = headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_types is not None and kind and not kind.startswith(tuple(content_types)):
        raise KlingDownloadError(
            f"{url} answered with Content-Type {kind!r}, not a video (accepted: {', '.join(content_types)})"
        )
    length = headers.get("Content-Length", "")
    if max_bytes is not None and length.isdigit() and int(length) > max_bytes:
        raise KlingDownloadError(f"{url} is {int(length):,} bytes, over the cap of {max_bytes:,} bytes")


def _write_local(target: Path, chunks: Iterator[bytes]) -> str:
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
        # mkstemp creates the file 0600; give the video the permissions a plain write would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _sweep_parts(target, before=started)
    return str(target)


def _sweep_parts(target: Path, before: float) -> None:
    """
    Delete what a killed try left of ``target``: its part files untouched since before this
    write began. A writer still streaming touches its part file all the time, so it is kept.
    """
    for part in target.parent.glob(f".{glob.escape(target.name)}.*.part"):
        with contextlib.suppress(OSError):
            if part.stat().st_mtime < before:
                part.unlink()


def _write_object(target: ObjectStoragePath, chunks: Iterator[bytes]) -> str:
    if target.protocol in ("file", "local"):
        # Object stores have no folders to create; a local one does.
        target.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = target.parent / f".{target.name}.part"
    try:
        # Through the file system, not ObjectStoragePath.open, which would report the part file to
        # Airflow's lineage collector as a video written; the hook reports the final name.
        with tmp_path.fs.open(tmp_path.path, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
        tmp_path.rename(target)
    except BaseException:
        # Leave no half-written object behind in the user's storage.
        with contextlib.suppress(Exception):
            if tmp_path.exists():
                tmp_path.unlink()
        raise
    return str(target)

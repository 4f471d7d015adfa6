"""The event trigger that announces new images in a folder or bucket, once each, to an ``AssetWatcher``."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from airflow_provider_kling.api.errors import KlingValidationError
from airflow_provider_kling.api.images import MAX_IMAGE_BYTES, check_image
from airflow_provider_kling.api.validation import validate_number, validate_seconds
from airflow_provider_kling.triggers.storage.cursor import FolderCursor, FolderWatch, ListedFile
from airflow_provider_kling.triggers.storage.listing import FolderLister
from airflow_provider_kling.triggers.storage.local_folder import (
    LOCAL_RESCAN_SECONDS,
    FolderImage,
    LocalFolder,
    read_inside,
)

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

DEFAULT_PATTERNS = ("*.png", "*.jpg", "*.jpeg")
CURSOR_KEY = "kling_folder_cursor"


class CursorStore(Protocol):
    """Where a watch's cursor lives between triggerer processes."""

    async def load(self) -> Any: ...

    async def save(self, value: dict[str, Any]) -> None: ...


class StateStoreCursor:
    """The cursor in Airflow 3.3's asset state store, on the watched asset (one key per watch)."""

    def __init__(self, accessors: Any, key: str) -> None:
        self.accessors, self.key = accessors, key

    async def load(self) -> Any:
        return await self.accessors.aget(self.key)

    async def save(self, value: dict[str, Any]) -> None:
        await self.accessors.aset(self.key, value)


class FileCursor:
    """The cursor as a small JSON object in storage (Airflow 3.1 and 3.2 have no asset state store)."""

    def __init__(self, path: ObjectStoragePath) -> None:
        self.path = path

    async def load(self) -> Any:
        return await asyncio.to_thread(self._read)

    def _read(self) -> str | None:
        if self.path.protocol not in ("file", "local"):
            return self.path.read_text() if self.path.exists() else None
        try:  # a link left at the cursor's name is an error to fix, not a cursor to follow
            fd = os.open(self.path.path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None
        with os.fdopen(fd) as handle:
            return handle.read()

    async def save(self, value: dict[str, Any]) -> None:
        await asyncio.to_thread(self._write, json.dumps(value, separators=(",", ":")))

    def _write(self, text: str) -> None:
        # A local file is replaced by a rename, so a crash mid-write leaves the old cursor whole;
        # an object store's PUT is atomic already.
        if self.path.protocol in ("file", "local"):
            self.path.parent.mkdir(parents=True, exist_ok=True)  # a drop folder not made yet
            # A new file (O_EXCL), never a link someone left under a fixed name: the write stays
            # in the folder. The rename replaces a link at the cursor's name, not its target.
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent.path)
            try:
                with os.fdopen(fd, "w") as out:
                    out.write(text)
                os.replace(tmp, self.path.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        else:
            self.path.write_text(text)


class NewImagesTrigger(BaseEventTrigger):
    """
    Announce each new image in a folder or bucket prefix once, for an ``AssetWatcher``.

    Each event's payload is ``{"folder", "images": [...]}``, one entry per new image:
    ``{"uri", "name", "size", "etag", "mtime", "image"}`` (``etag`` where the store has one,
    ``mtime`` in seconds since the epoch, ``image`` a description: type, pixel size, bytes,
    sha256). By default the images one poll finds share one event: Airflow up to 3.3 schedules a
    burst of events on one asset as one run with the first event only, and leaves the others
    waiting for the next event (apache/airflow#54659). With ``event_per_image=True`` each image
    is an event of its own, with the same payload shape. An image is announced when
    it is complete: it matches ``patterns``, has no temporary name (dotfiles, ``.part``, ``.tmp``,
    ``~``, ...) and was listed unchanged on two polls. A file that GMI would refuse (not a JPEG or
    PNG, too small, too large) is named in the triggerer's log and never announced, and is not
    looked at again unless it is replaced.

    Once each: the watch's cursor is saved before its images are announced, in the watched
    asset's state store (Airflow 3.3), else in a small JSON object ``cursor_path`` (default
    ``.kling-cursor-<hash>.json`` in the watched folder, which the watch itself skips). A restarted
    or reassigned triggerer, or a reparsed DAG with the same arguments, resumes from it.

    :param path: the folder or prefix to watch: a local path, or a URI Airflow's object storage
        understands (``file://``, ``s3://``, ``gs://``, ...).
    :param patterns: globs a file name must match one of. Default PNG and JPEG names.
    :param conn_id: the Airflow connection of the object store, if it needs one.
    :param poll_interval: seconds between listings.
    :param settle_seconds: how long a file must stay unchanged before it is announced (at least
        one poll interval in any case).
    :param recursive: watch sub-folders too.
    :param announce_existing: on the watch's very first listing, announce the images already
        there. By default they are the starting point, and only later ones are announced.
    :param cursor_path: where the cursor object goes when there is no asset state store.
    :param check_images: refuse files GMI would refuse, before anything is paid for.
    :param event_per_image: one event per image instead of one per poll (see above).
    :param rescan_seconds: a local folder only: how often every file is looked at although no
        entry of the folder changed, to find a file rewritten or touched in place (every other
        change is found on the next poll). 0 looks at every file on every poll.
    """

    def __init__(
        self,
        path: str,
        patterns: Sequence[str] = DEFAULT_PATTERNS,
        conn_id: str | None = None,
        poll_interval: float = 10.0,
        settle_seconds: float = 0.0,
        recursive: bool = False,
        announce_existing: bool = False,
        cursor_path: str | None = None,
        check_images: bool = True,
        event_per_image: bool = False,
        rescan_seconds: float = LOCAL_RESCAN_SECONDS,
    ) -> None:
        super().__init__()
        if isinstance(patterns, str):
            patterns = [patterns]
        if not patterns:
            raise KlingValidationError("patterns", "it is empty", "one glob or more, e.g. '*.png'")
        poll_interval = validate_seconds(poll_interval, "poll_interval")
        settle_seconds = validate_number(
            settle_seconds, "settle_seconds", allowed="a finite number of seconds, 0 or more", minimum=0
        )
        rescan_seconds = validate_number(
            rescan_seconds,
            "rescan_seconds",
            allowed="a finite number of seconds, 0 or more (0: every file on every poll)",
            minimum=0,
        )
        self.path = str(path)
        self.patterns = [str(p) for p in patterns]
        self.conn_id = conn_id
        self.poll_interval = float(poll_interval)
        self.settle_seconds = float(settle_seconds)
        self.recursive = bool(recursive)
        self.announce_existing = bool(announce_existing)
        self.cursor_path = cursor_path
        self.check_images = bool(check_images)
        self.event_per_image = bool(event_per_image)
        self.rescan_seconds = float(rescan_seconds)
        self.asset_state_store: Any = getattr(self, "asset_state_store", None)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        # The kwargs identify the watch (BaseEventTrigger.hash): the same arguments after a reparse
        # are the same trigger, and so the same cursor.
        return (
            "airflow_provider_kling.triggers.storage.NewImagesTrigger",
            {
                "path": self.path,
                "patterns": list(self.patterns),
                "conn_id": self.conn_id,
                "poll_interval": self.poll_interval,
                "settle_seconds": self.settle_seconds,
                "recursive": self.recursive,
                "announce_existing": self.announce_existing,
                "cursor_path": self.cursor_path,
                "check_images": self.check_images,
                "event_per_image": self.event_per_image,
                "rescan_seconds": self.rescan_seconds,
            },
        )

    @property
    def watch_id(self) -> str:
        """A short digest of what is watched: the cursor's name, so two watches never share one."""
        what = json.dumps([self.path, sorted(self.patterns), self.recursive])
        return hashlib.sha256(what.encode()).hexdigest()[:16]

    def root(self) -> ObjectStoragePath:
        """The watched folder as an ``ObjectStoragePath`` (a local path becomes ``file://``)."""
        from airflow.sdk import ObjectStoragePath

        uri = self.path if "://" in self.path else f"file://{os.path.abspath(os.path.expanduser(self.path))}"
        return ObjectStoragePath(uri, conn_id=self.conn_id)

    def cursor_store(self, root: ObjectStoragePath) -> CursorStore:
        """The asset state store where the triggerer gives one (3.3), else the cursor object."""
        store = self.asset_state_store
        if store is not None and self.cursor_path is None:
            try:
                store._single_accessor()
            except (AttributeError, ValueError):
                self.log.warning(
                    "The asset state store holds several assets for this watch; its cursor stays in storage"
                )
            else:
                return StateStoreCursor(store, f"{CURSOR_KEY}:{self.watch_id}")
        if self.cursor_path:
            from airflow.sdk import ObjectStoragePath

            return FileCursor(ObjectStoragePath(self.cursor_path, conn_id=self.conn_id))
        return FileCursor(root / f".kling-cursor-{self.watch_id}.json")

    async def run(self) -> AsyncIterator[TriggerEvent]:
        root = self.root()
        store = self.cursor_store(root)
        saved = await self._load(store)
        cursor = FolderCursor.from_json(saved) or FolderCursor()
        watch = FolderWatch(
            cursor, tuple(self.patterns), self.settle_seconds, self.announce_existing and saved is None
        )
        lister = FolderLister(root, self.recursive, self.log, self.rescan_seconds)
        self.log.info(
            "Watching %s for %s every %.0f s (cursor: %s)",
            root,
            ", ".join(self.patterns),
            self.poll_interval,
            "new" if saved is None else f"{len(cursor.seen)} recent files remembered",
        )
        while True:
            try:
                listing = await asyncio.to_thread(lister.poll, list(watch.pending))
            except Exception as err:  # a store that fails now may answer on the next poll
                self.log.warning("Could not list %s: %s: %s", root, type(err).__name__, err)
                listing = None
            if listing is not None:
                for event in await self._announce(root, watch, store, listing, lister.local):
                    yield event
            await asyncio.sleep(self.poll_interval)

    async def _load(self, store: CursorStore) -> Any:
        """The saved cursor; a store that cannot be read yet is asked again, never taken as empty."""
        delay = self.poll_interval
        while True:
            try:
                return await store.load()
            except Exception as err:
                # Starting without the cursor would take every image that came meanwhile as old.
                self.log.warning("Could not read the watch's cursor (%s); trying again", err)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 300.0)

    async def _announce(
        self,
        root: ObjectStoragePath,
        watch: FolderWatch,
        store: CursorStore,
        listing: list[ListedFile],
        local: LocalFolder | None = None,
    ) -> list[TriggerEvent]:
        """One poll's decisions: the ready images, checked, remembered, then announced."""
        first = watch.cursor.since is None
        before = watch.cursor.to_json()
        ready = watch.observe(listing, time.monotonic())
        if first and not ready:
            self.log.info("%d existing files in %s are the starting point", len(listing), root)
        images: list[dict[str, Any]] = []
        done = []
        for entry in ready:
            try:
                described = await asyncio.to_thread(self._check, root, entry, local)
            except FileNotFoundError:
                # Deleted or replaced since it was listed: nothing to announce now; a new version
                # is in the next listing.
                continue
            except OSError as err:  # a store that fails now may answer on the next poll
                self.log.warning("Could not read %s: %s; trying again next poll", root / entry.name, err)
                continue
            done.append(entry)
            if described is not None:
                images.append(
                    {
                        "uri": str(root / entry.name),
                        "name": entry.name,
                        "size": entry.size,
                        "etag": entry.etag,
                        "mtime": entry.stamp if entry.mtime is None else entry.mtime,
                        "image": described,
                    }
                )
        watch.record(done)
        after = watch.cursor.to_json()
        if after != before:
            try:
                await store.save(after)
            except Exception:
                # Nothing is announced that the cursor does not hold: it is tried again next poll.
                self.log.exception("Could not save the cursor of %s; announcing nothing this poll", root)
                watch.cursor = FolderCursor.from_json(before) or FolderCursor()
                return []
        for image in images:
            self.log.info("New image %s (%s)", image["uri"], image["image"])
        groups = [[image] for image in images] if self.event_per_image else [images] if images else []
        return [TriggerEvent({"folder": str(root), "images": group}) for group in groups]

    def _check(self, root: ObjectStoragePath, entry: ListedFile, local: LocalFolder | None) -> str | None:
        """A description of the image, or ``None`` (and a log line naming it) if GMI would refuse it."""
        path = root / entry.name
        data: bytes | None = b""
        if local is not None and local.real is not None:
            # Read from inside the folder, never through a link, and only the version listed:
            # what is announced (and its sha256) is what was checked.
            limit = MAX_IMAGE_BYTES + 1 if self.check_images and entry.size <= MAX_IMAGE_BYTES else 0
            data = read_inside(local.real, entry.name, limit, entry.version)
            if data is None:
                raise FileNotFoundError(f"{path} is not the file listed any more")
        if not self.check_images:
            return f"{entry.size:,} bytes"
        try:
            if entry.size > MAX_IMAGE_BYTES:
                raise KlingValidationError(
                    "first_frame",
                    f"{path} is {entry.size:,} bytes",
                    f"at most {MAX_IMAGE_BYTES:,} bytes (10 MB)",
                )
            if local is None:
                with path.open("rb") as handle:
                    data = handle.read(MAX_IMAGE_BYTES + 1)
            return check_image(data or b"", source=f"file {path}").describe()
        except KlingValidationError as err:
            self.log.warning(
                "Refused %s: %s. It is not announced, and not looked at again unless replaced.", path, err
            )
            return None


def announced_image(image: dict[str, Any], conn_id: str | None = None) -> ObjectStoragePath | FolderImage:
    """
    An image an event announced, as ``first_frame`` takes it.

    From a local folder, a :class:`~airflow_provider_kling.triggers.storage.local_folder.FolderImage`,
    which reads it only from inside the folder (a link swapped in later is refused); from an
    object store, its ``ObjectStoragePath``.

    :param image: one entry of an event's ``images``.
    :param conn_id: the object store's connection, if it needs one.
    """
    uri, name = str(image["uri"]), str(image["name"])
    for scheme in ("file://", "local://"):
        if uri.startswith(scheme) and uri.endswith("/" + name):
            return FolderImage(uri[len(scheme) : -len(name) - 1] or "/", name)
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(uri, conn_id=conn_id)


__all__ = ["DEFAULT_PATTERNS", "NewImagesTrigger", "announced_image"]

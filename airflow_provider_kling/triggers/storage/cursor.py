"""
What a drop-folder watch remembers and decides, with no Airflow and no storage in it.

:class:`FolderWatch` is fed one listing per poll and answers which images are new and complete.
Its :class:`FolderCursor` is the small JSON document that makes the answer survive a restart:
it is saved before an image is announced, so no image is announced twice.
"""

from __future__ import annotations

import fnmatch
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

CURSOR_VERSION = 2
#: Marks a fingerprint read from a version 1 cursor: it is compared with
#: :attr:`ListedFile.legacy_fingerprint`, so an upgrade announces nothing twice.
LEGACY = "v1|"
#: How far before the newest file's timestamp the cursor still remembers names. A file older
#: than that when first listed is taken as old, not new: an upload that takes longer than this
#: (its object's timestamp is when it started, on some stores) would be missed.
DEFAULT_HORIZON = 24 * 3600.0
#: Names that editors, browsers, rsync and upload tools give a file while it is being written.
TEMPORARY_SUFFIXES = (".part", ".partial", ".tmp", ".temp", ".crdownload", ".download", ".swp", "~")


def is_temporary(name: str) -> bool:
    """Whether ``name`` (a path relative to the watched folder) is a file still being written."""
    parts = name.split("/")
    if any(part.startswith(".") for part in parts):  # dotfiles, and everything in a dot-folder
        return True
    return parts[-1].lower().endswith(TEMPORARY_SUFFIXES)


def matches(name: str, patterns: Sequence[str]) -> bool:
    """
    Whether ``name`` matches one of the glob ``patterns`` (case-insensitive).

    A pattern without ``/`` is matched against the file's own name, so ``*.png`` finds PNGs at
    any depth of a recursive watch; one with ``/`` against the whole relative path.
    """
    base = name.rsplit("/", 1)[-1].lower()
    return any(fnmatch.fnmatch(name.lower() if "/" in p else base, p.lower()) for p in patterns)


@dataclass(frozen=True, slots=True)
class ListedFile:
    """
    One file in a listing.

    :param name: its path relative to the watched folder.
    :param size: its size in bytes.
    :param stamp: when it last changed (seconds since the epoch), by a clock its owner cannot set
        back: the store's upload time, or for a local file its change time (ctime), which every
        write, rename, link and ``touch -d`` moves to now.
    :param etag: the store's ETag or generation, where it has one.
    :param version: what else tells this version of the file from the one before it under the
        same name, where the store gives more (a local file: device, inode, mtime and ctime).
    :param mtime: the file's own modification time, where it differs from ``stamp``.
    """

    name: str
    size: int
    stamp: float
    etag: str | None = None
    version: tuple[int, ...] | None = None
    mtime: float | None = None

    @property
    def fingerprint(self) -> str:
        """What changes when the file's content is replaced or still growing."""
        if self.version is not None:
            return f"{self.size}:" + ".".join(map(str, self.version))
        return f"{self.size}:{self.etag or repr(self.stamp)}"

    @property
    def legacy_fingerprint(self) -> str:
        """The fingerprint a cursor of version 1 holds for this file (stamp: the later of mtime and ctime)."""
        stamp = self.stamp if self.mtime is None else max(self.stamp, self.mtime)
        return f"{self.size}:{self.etag or repr(stamp)}"


@dataclass
class FolderCursor:
    """
    The persisted part of a watch.

    :param since: files stamped before this are old: never announced, not remembered.
        ``None`` until the first listing.
    :param seen: name -> ``[fingerprint, stamp]`` of every file announced or refused with a stamp
        at or after ``since``; a name is announced again only if its fingerprint changes.

    ``since`` is only how far back the cursor must remember across a restart: a version of a file
    that appears while the watch runs is new whatever its timestamps say.
    """

    since: float | None = None
    seen: dict[str, list[Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The cursor as a JSON-able dict (what the asset state store or the cursor file holds)."""
        # A copy: a caller compares it with the cursor after a poll to know whether to save.
        seen = {name: list(item) for name, item in self.seen.items()}
        return {"version": CURSOR_VERSION, "since": self.since, "seen": seen}

    @classmethod
    def from_json(cls, value: Any) -> FolderCursor | None:
        """A cursor from :meth:`to_json`'s output (a dict or its JSON text); ``None`` if unusable."""
        if isinstance(value, str | bytes):
            try:
                value = json.loads(value)
            except ValueError:
                return None
        if not isinstance(value, Mapping) or value.get("version") not in (1, CURSOR_VERSION):
            return None
        legacy = LEGACY if value.get("version") == 1 else ""
        since, seen = value.get("since"), value.get("seen")
        if not isinstance(seen, Mapping) or not (since is None or isinstance(since, int | float)):
            return None
        kept = {
            str(name): [legacy + str(item[0]), float(item[1])]
            for name, item in seen.items()
            if isinstance(item, list | tuple) and len(item) == 2 and isinstance(item[1], int | float)
        }
        return cls(since=None if since is None else float(since), seen=kept)


@dataclass
class FolderWatch:
    """
    Decide, poll after poll, which files are new images ready to announce.

    A file is ready when it matches one of ``patterns``, has no temporary name, is not in the cursor
    with the same fingerprint, and was listed with the same fingerprint on two polls at least
    ``settle_seconds`` apart (a file still being written changes size or timestamp in between).
    A file is looked at when its stamp is at or after the cursor's ``since``, or when it is not
    what the previous listing held under its name.

    :param cursor: what an earlier watch saved, or a new cursor.
    :param patterns: the globs a file name must match one of.
    :param settle_seconds: how long a file must stay unchanged before it is announced.
    :param announce_existing: on the very first listing, announce what is already there instead
        of taking it as the starting point.
    :param horizon: see :data:`DEFAULT_HORIZON`.
    """

    cursor: FolderCursor
    patterns: tuple[str, ...] = ("*",)
    settle_seconds: float = 0.0
    announce_existing: bool = False
    horizon: float = DEFAULT_HORIZON
    # name -> (fingerprint, when it was first listed with it); in memory only: after a restart a
    # file is simply watched for one more interval.
    pending: dict[str, tuple[str, float]] = field(default_factory=dict)
    # name -> entry of the last listing, in memory only (``None`` until the first): what makes a
    # change seen between two polls a change, whatever its timestamps.
    listed: dict[str, ListedFile] | None = None

    def candidates(self, listing: Iterable[ListedFile]) -> list[ListedFile]:
        """The files of a listing that this watch cares about at all."""
        return [e for e in listing if not is_temporary(e.name) and matches(e.name, self.patterns)]

    def observe(self, listing: Iterable[ListedFile], now: float) -> list[ListedFile]:
        """
        Take one listing (the whole folder) and return the files ready to announce, in name order.

        The caller announces or refuses each and then calls :meth:`record` with them, and saves
        the cursor, before it announces anything.

        :param now: a monotonic clock reading, for the settle time.
        """
        listing = list(listing)
        previous, self.listed = self.listed, {e.name: e for e in listing}
        cursor = self.cursor
        if cursor.since is None:
            return self._first(listing, now)
        since = cursor.since
        # A stamp ahead of the clock (a store's clock, a file's mtime set to the future) must not
        # push the horizon past the files still to come.
        newest = min(max((e.stamp for e in listing), default=since), time.time())
        # A file is looked at if it is stamped since the cursor's start, still settling, or not
        # what the last listing held under its name: a change seen live is a change, whatever the
        # file's timestamps say. Anything else is one comparison each, not a pattern match.
        pending = self.pending
        files = sorted(
            self.candidates(
                e
                for e in listing
                if e.stamp >= since
                or e.name in pending
                or (previous is not None and _differs(previous.get(e.name), e))
            ),
            key=lambda e: e.name,
        )
        listed = {e.name for e in files}
        self.pending = {name: p for name, p in pending.items() if name in listed}
        ready = []
        for entry in files:
            if self._known(entry):
                continue
            first = self.pending.get(entry.name)
            if first is None or first[0] != entry.fingerprint:
                self.pending[entry.name] = (entry.fingerprint, now)
                continue
            if now - first[1] >= self.settle_seconds:
                ready.append(entry)
        self._advance(files, newest)
        return ready

    def _known(self, entry: ListedFile) -> bool:
        """Whether the cursor holds this version of the file (a version 1 cursor's entry upgraded)."""
        known = self.cursor.seen.get(entry.name)
        if known is None:
            return False
        if known[0] == entry.fingerprint:
            return True
        if known[0] == LEGACY + entry.legacy_fingerprint:
            self.cursor.seen[entry.name] = [entry.fingerprint, entry.stamp]
            return True
        return False

    def _first(self, listing: list[ListedFile], now: float) -> list[ListedFile]:
        """The first listing ever: a starting point (or, if asked, everything is new)."""
        if self.announce_existing or not listing:
            self.cursor.since = min((e.stamp for e in self.candidates(listing)), default=0.0)
            self.listed = None  # every file is looked at, not only those changed since now
            return self.observe(listing, now)
        # Every file there now is old; any later one is stamped after the newest (or seen live).
        newest = min(max(e.stamp for e in listing), time.time())
        self.cursor.since = newest
        recent = self.candidates(e for e in listing if e.stamp >= newest)
        self.cursor.seen = {e.name: [e.fingerprint, e.stamp] for e in recent}
        return []

    def record(self, entries: Iterable[ListedFile]) -> None:
        """Remember files as done (announced or refused): they are not ready again unless replaced."""
        for entry in entries:
            self.cursor.seen[entry.name] = [entry.fingerprint, entry.stamp]
            self.pending.pop(entry.name, None)

    def _advance(self, files: list[ListedFile], newest: float) -> None:
        """Move ``since`` up to the horizon and forget what fell behind it, so the cursor stays small."""
        if self.cursor.since is None:
            return
        floor = newest - self.horizon
        if floor <= self.cursor.since:
            return
        # Never past a file still settling: it must not become "old" before it is announced.
        floor = min([floor, *(e.stamp for e in files if e.name in self.pending)])
        self.cursor.since = max(self.cursor.since, floor)
        self.cursor.seen = {n: v for n, v in self.cursor.seen.items() if v[1] >= self.cursor.since}


def _differs(before: ListedFile | None, now: ListedFile) -> bool:
    """Whether a file is not the one the last listing held under its name (a listing reuses entries)."""
    return before is not now and before != now


__all__ = [
    "DEFAULT_HORIZON",
    "LEGACY",
    "TEMPORARY_SUFFIXES",
    "FolderCursor",
    "FolderWatch",
    "ListedFile",
    "is_temporary",
    "matches",
]

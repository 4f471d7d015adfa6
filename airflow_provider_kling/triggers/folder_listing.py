"""How a drop-folder watch lists its folder, with what each kind of store makes cheap."""

from __future__ import annotations

import os
import time
from collections.abc import Collection
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow_provider_kling.triggers.folder_cursor import Entry

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

#: How often a local folder is read in full although its directory entry did not change: a file
#: rewritten in place changes no directory entry, so it is found by this listing at the latest.
LOCAL_RESCAN_SECONDS = 300.0
#: How close to a directory read a change of its timestamp must be to prove nothing.
SAME_TICK_SECONDS = 2.0


class FolderLister:
    """
    List a folder or prefix as :class:`Entry` objects.

    An object store prefix is one ``find`` with details per poll (a paged listing: no file costs
    a request of its own). A local folder (one level) is cheaper: while its directory entry is
    unchanged, a poll is one ``stat`` and lists nothing (and ``stat``-s only the files still
    settling); when it changed, its names are read and only the names not seen before are
    ``stat``-ed. Every
    ``LOCAL_RESCAN_SECONDS`` every file is ``stat``-ed again, to find files rewritten in place.

    :attr:`detailed` counts the files whose details the last listing fetched.
    """

    def __init__(self, root: ObjectStoragePath, recursive: bool) -> None:
        self.root, self.recursive = root, recursive
        self.local = root.protocol in ("file", "local") and not recursive
        self._base = str(root.fs._strip_protocol(root.path)).rstrip("/")
        self._signature: tuple[int, int] | None = None
        self._full_at = float("-inf")
        self._known: dict[str, Entry] = {}
        self._read_at = 0.0
        self.detailed = 0

    def poll(self, settling: Collection[str] = ()) -> list[Entry] | None:
        """
        The folder's files, or ``None`` when it provably did not change since the last listing.

        :param settling: names the caller is waiting on: looked at afresh on every poll.
        """
        if not self.local:
            return self._find()
        try:
            stat = os.stat(self._base)
        except FileNotFoundError:  # not made yet: an empty folder
            self._known, self.detailed = {}, 0
            return []
        signature = (stat.st_mtime_ns, stat.st_ino)
        full = time.monotonic() - self._full_at >= LOCAL_RESCAN_SECONDS
        # A directory's timestamp ticks coarsely (a few ms, or 1-2 s on some file systems): one
        # that changed just before the last read may hide a later change, so it proves nothing.
        settled = self._read_at - stat.st_mtime > SAME_TICK_SECONDS
        if signature == self._signature and settled and not full:
            if settling:
                return self._restat(settling)
            self.detailed = 0
            return None
        self._signature, self._read_at = signature, time.time()
        if full:
            self._full_at = time.monotonic()
        return self._scan(full, set(settling))

    def _restat(self, names: Collection[str]) -> list[Entry]:
        """The known files, with only ``names`` looked at again (the folder's entries did not change)."""
        for name in names:
            try:
                st = os.stat(os.path.join(self._base, name))
            except FileNotFoundError:
                self._known.pop(name, None)
                continue
            self._known[name] = Entry(name, st.st_size, max(st.st_mtime, st.st_ctime))
        self.detailed = len(names)
        return list(self._known.values())

    def _scan(self, full: bool, settling: set[str]) -> list[Entry]:
        known, fresh, detailed = self._known, {}, 0
        with os.scandir(self._base) as entries:
            for item in entries:
                if not item.is_file():
                    continue
                name = item.name
                if not full and name in known and name not in settling:
                    fresh[name] = known[name]
                    continue
                try:
                    st = item.stat()
                except FileNotFoundError:  # removed since the directory was read
                    continue
                detailed += 1
                # `mv` keeps a file's mtime but sets its ctime to now: the later one is when it arrived.
                fresh[name] = Entry(name, st.st_size, max(st.st_mtime, st.st_ctime))
        self._known, self.detailed = fresh, detailed
        return list(fresh.values())

    def _find(self) -> list[Entry]:
        found = self.root.fs.find(self._base, maxdepth=None if self.recursive else 1, detail=True)
        prefix = self._base + "/"
        files = []
        for name, info in found.items():
            if info.get("type", "file") != "file" or not name.startswith(prefix):
                continue
            files.append(Entry(name[len(prefix) :], int(info.get("size") or 0), _stamp(info), _etag(info)))
        self.detailed = len(files)
        return files


def _stamp(info: dict[str, Any]) -> float:
    """When a listed file last changed; for a local file the later of its mtime and ctime."""
    if "mtime" in info and "created" in info and isinstance(info["mtime"], int | float):
        return max(float(info["mtime"]), float(info["created"] or 0))
    for key in ("LastModified", "last_modified", "mtime", "updated", "timeCreated", "created"):
        if info.get(key) is not None:
            return _seconds(info[key])
    return 0.0


def _seconds(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return float(value)


def _etag(info: dict[str, Any]) -> str | None:
    for key in ("ETag", "etag", "md5Hash", "generation", "content_md5"):
        if info.get(key):
            return str(info[key]).strip('"')
    return None


__all__ = ["LOCAL_RESCAN_SECONDS", "FolderLister"]

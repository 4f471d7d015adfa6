"""How a drop-folder watch lists its folder, with what each kind of store makes cheap."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow_provider_kling.triggers.storage.cursor import ListedFile
from airflow_provider_kling.triggers.storage.local_folder import LOCAL_RESCAN_SECONDS, LocalFolder, WarningLog

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath


class FolderLister:
    """
    List a folder or prefix as :class:`ListedFile` objects.

    A local folder is listed by :class:`~airflow_provider_kling.triggers.storage.local_folder.LocalFolder`
    (one ``fstat`` per poll while nothing changed, no link ever followed). An object store prefix
    is one ``find`` with details per poll (a paged listing: no file costs a request of its own).

    :attr:`detailed` counts the files whose details the last listing fetched.
    """

    def __init__(
        self,
        root: ObjectStoragePath,
        recursive: bool,
        log: WarningLog | None = None,
        rescan_seconds: float = LOCAL_RESCAN_SECONDS,
    ) -> None:
        self.root, self.recursive = root, recursive
        self._base = str(root.fs._strip_protocol(root.path)).rstrip("/")
        local = root.protocol in ("file", "local")
        self.local = LocalFolder(self._base, recursive, log, rescan_seconds) if local else None
        self.detailed = 0

    def poll(self, settling: Collection[str] = ()) -> list[ListedFile] | None:
        """
        The folder's files, or ``None`` when it provably did not change since the last listing.

        :param settling: names the caller is waiting on: looked at afresh on every poll.
        """
        if self.local is None:
            return self._find()
        listing = self.local.poll(settling)
        self.detailed = self.local.detailed
        return listing

    def _find(self) -> list[ListedFile]:
        found = self.root.fs.find(self._base, maxdepth=None if self.recursive else 1, detail=True)
        prefix = self._base + "/"
        files = []
        for name, info in found.items():
            if info.get("type", "file") != "file" or not name.startswith(prefix):
                continue
            files.append(
                ListedFile(name[len(prefix) :], int(info.get("size") or 0), _stamp(info), _etag(info))
            )
        self.detailed = len(files)
        return files


def _stamp(info: dict[str, Any]) -> float:
    """When a listed file last changed; where a store gives both, the later of its mtime and ctime."""
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


__all__ = ["FolderLister"]

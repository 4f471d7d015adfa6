"""
A local drop folder, read without ever leaving it.

The folder is resolved once (its configured path may itself be a symbolic link); below it,
nothing is followed. The listing ``lstat``-s, so a symbolic link (to a file or a folder, inside
the folder or out, absolute, relative or a chain) is never a file of the folder, and a linked
sub-folder is never entered. A file is opened component by component from the resolved folder
with ``O_NOFOLLOW``, so a link swapped in after the listing cannot redirect the read either.
A hard link is a file of the folder like any other: its bytes are in it.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Protocol

from airflow_provider_kling.api.images import MAX_IMAGE_BYTES
from airflow_provider_kling.triggers.storage.cursor import ListedFile

#: How often, by default, every file is ``lstat``-ed although no directory entry changed: a file
#: rewritten or touched in place (``cp new.png old.png``, ``touch``) changes no directory entry,
#: so it is found by this pass.
LOCAL_RESCAN_SECONDS = 300.0
#: How close to a directory read a change of its timestamp must be to prove nothing.
SAME_TICK_SECONDS = 2.0

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0)
# O_NONBLOCK: a FIFO swapped in under an image's name must not hang the open.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


class WarningLog(Protocol):
    """Where the listing names what it skips: a ``logging.Logger`` or the trigger's log."""

    def warning(self, msg: Any, /, *args: Any) -> Any: ...


def entry_of(name: str, st: os.stat_result) -> ListedFile:
    """
    The listing entry of a regular file.

    Its version changes with every new file under the name (inode), every write (modification
    time) and every rename, link, ``touch -d``, ``cp -p`` or ``rsync -t`` (change time, which
    nobody can set back): the file's own timestamps may say anything, so they are not what
    tells one version from another. Its ``stamp`` is the change time, for the same reason.
    """
    version = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)
    return ListedFile(name, st.st_size, st.st_ctime, version=version, mtime=st.st_mtime)


def open_inside(root: str, name: str) -> int:
    """
    A descriptor of the regular file ``name`` (relative, ``/``-separated) inside the folder ``root``.

    :raises OSError: if any component of ``name`` is a link, ``.`` or ``..``, or the file is not a
        regular file (``ELOOP``, ``ENOTDIR``, ``ENOENT``, ...).
    """
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise FileNotFoundError(f"{name!r} is not a name inside the folder")
    folder = os.open(root, _DIR_FLAGS | os.O_NOFOLLOW)  # the caller resolved it
    try:
        for part in parts[:-1]:
            inner = os.open(part, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=folder)
            os.close(folder)
            folder = inner
        fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=folder)
    finally:
        os.close(folder)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise FileNotFoundError(f"{name!r} is not a regular file")
    return fd


def read_inside(root: str, name: str, limit: int, version: tuple[int, ...] | None = None) -> bytes | None:
    """
    Up to ``limit`` bytes of ``name`` inside ``root``; ``None`` if it is not the listed ``version``.

    :raises OSError: as :func:`open_inside` (a link is never followed).
    """
    fd = open_inside(root, name)
    try:
        if version is not None and entry_of(name, os.fstat(fd)).version != version:
            return None  # replaced since it was listed: the next listing sees the new file
        return read_fd(fd, limit)
    finally:
        os.close(fd)


def read_fd(fd: int, limit: int) -> bytes:
    """Up to ``limit`` bytes from an open file."""
    chunks, left = [], limit
    while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


@dataclass
class _Dir:
    """What one directory held when it was last read."""

    signature: tuple[int, int]
    read_at: float
    files: dict[str, ListedFile] = field(default_factory=dict)
    subdirs: list[str] = field(default_factory=list)


class LocalFolder:
    """
    List a local folder (and its sub-folders if ``recursive``) as :class:`ListedFile` objects.

    While no directory's entry changed, a poll is one ``fstat`` per directory and lists nothing
    (only the files still settling are looked at). When a directory's entry changed (a file
    added, removed, renamed, replaced by a rename, deleted and added again), every file in it is
    ``lstat``-ed: a name that is still there may hold a new file, even one with the old inode
    number, which file systems reuse. Every ``rescan_seconds`` every file is ``lstat``-ed, for
    files rewritten or touched in place (0: on every poll). Dot-folders are not entered (the
    watch skips their files).

    :attr:`detailed` counts the files whose details the last poll read.
    """

    def __init__(
        self,
        path: str,
        recursive: bool,
        log: WarningLog | None = None,
        rescan_seconds: float = LOCAL_RESCAN_SECONDS,
    ) -> None:
        self.path, self.recursive, self.rescan_seconds = path, recursive, rescan_seconds
        self.log: WarningLog = log or logging.getLogger(__name__)
        #: The folder's real path, resolved once it exists; nothing below it is followed.
        self.real: str | None = None
        self._dirs: dict[str, _Dir] = {}
        self._full_at = float("-inf")
        self._named: set[str] = set()
        self.detailed = 0

    def poll(self, settling: Collection[str] = ()) -> list[ListedFile] | None:
        """
        The folder's files, or ``None`` when provably nothing changed since the last listing.

        :param settling: names the caller is waiting on: looked at afresh on every poll.
        """
        self.detailed = 0
        if self.real is None:
            if not os.path.isdir(self.path):  # not made yet: an empty folder
                return []
            self.real = os.path.realpath(self.path)
        full = time.monotonic() - self._full_at >= self.rescan_seconds
        try:
            root = os.open(self.real, _DIR_FLAGS | os.O_NOFOLLOW)
        except OSError as err:
            if err.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                raise
            self._dirs = {}  # removed, or a link now: empty until the folder is back
            return []
        try:
            dirs: dict[str, _Dir] = {}
            changed = self._visit(root, "", full, dirs)
        finally:
            os.close(root)
        self._dirs = dirs
        if full:
            self._full_at = time.monotonic()
        if not changed:
            if not settling:
                return None
            self._restat(settling)
        return [entry for d in self._dirs.values() for entry in d.files.values()]

    def _visit(self, fd: int, rel: str, full: bool, dirs: dict[str, _Dir]) -> bool:
        """Read the directory open as ``fd`` if it changed, then its sub-folders; whether any changed."""
        st = os.fstat(fd)
        signature = (st.st_mtime_ns, st.st_ino)
        state = self._dirs.get(rel)
        # A directory's timestamp ticks coarsely (a few ms, or 1-2 s on some file systems): one
        # that changed just before the last read may hide a later change, so it proves nothing.
        changed = (
            full
            or state is None
            or state.signature != signature
            or state.read_at - st.st_mtime <= SAME_TICK_SECONDS
        )
        if changed:
            state = self._scan(fd, rel, signature, state)
        assert state is not None
        dirs[rel] = state
        for sub in state.subdirs:
            try:
                inner = os.open(sub, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            except OSError:  # removed or swapped for a link since: its parent's next read says so
                continue
            try:
                changed = self._visit(inner, f"{rel}{sub}/", full, dirs) or changed
            finally:
                os.close(inner)
        return changed

    def _scan(self, fd: int, rel: str, signature: tuple[int, int], before: _Dir | None) -> _Dir:
        state = _Dir(signature, time.time())
        known = before.files if before is not None else {}
        files, detailed = state.files, 0
        with os.scandir(fd) as items:
            for item in items:
                try:
                    st = item.stat(follow_symlinks=False)
                except FileNotFoundError:  # removed since the directory was read
                    continue
                detailed += 1
                mode = st.st_mode
                if stat.S_ISREG(mode):  # not a link, FIFO, socket or device
                    name = rel + item.name
                    version = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)
                    entry = known.get(name)
                    # The same entry for the same file: a watch compares the listings by identity.
                    if entry is None or entry.version != version or entry.size != st.st_size:
                        entry = ListedFile(name, st.st_size, st.st_ctime, version=version, mtime=st.st_mtime)
                    files[name] = entry
                elif item.name.startswith("."):
                    continue  # the watch skips dotfiles and dot-folders anyway
                elif stat.S_ISLNK(mode):
                    self._name_once(rel + item.name, "a symbolic link")
                elif stat.S_ISDIR(mode) and self.recursive:
                    state.subdirs.append(item.name)
        self.detailed += detailed
        return state

    def _restat(self, names: Collection[str]) -> None:
        """Look at the files still settling again (no directory entry changed)."""
        assert self.real is not None
        for name in names:
            folder = self._dirs.get(name[: name.rfind("/") + 1])
            if folder is None:
                continue
            self.detailed += 1
            try:
                st = os.lstat(os.path.join(self.real, name))
            except FileNotFoundError:
                st = None
            if st is None or not stat.S_ISREG(st.st_mode):
                folder.files.pop(name, None)
            else:
                folder.files[name] = entry_of(name, st)

    def _name_once(self, name: str, what: str) -> None:
        if name not in self._named:
            self._named.add(name)
            self.log.warning(
                "Skipped %s in %s: %s. The watch reads only regular files inside the folder.",
                name,
                self.path,
                what,
            )


class FolderImage:
    """
    An image a local drop folder announced, as ``first_frame`` reads it: only from inside the folder.

    It has what the operator reads a path with (``exists``, ``is_dir``, ``stat``, ``read_bytes``,
    like ``ObjectStoragePath``), all through ``open_inside``: a link swapped in under the
    image's name, or over a folder above it, after the image was announced is refused, not read.

    :param folder: the watched folder (it may itself be reached through a link).
    :param name: the image's path relative to it.
    """

    def __init__(self, folder: str, name: str) -> None:
        self.folder, self.name = folder, name

    def __str__(self) -> str:
        return f"file://{os.path.join(self.folder, self.name)}"

    def __repr__(self) -> str:
        return f"FolderImage({self.folder!r}, {self.name!r})"

    def _open(self) -> int:
        try:
            return open_inside(os.path.realpath(self.folder), self.name)
        except OSError as err:
            if err.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                what = f"{self.name} is a symbolic link or under one; it is not followed out of {self.folder}"
                raise OSError(err.errno, what) from None
            raise

    def exists(self) -> bool:
        return os.path.lexists(os.path.join(self.folder, self.name))

    def is_dir(self) -> bool:
        try:
            return stat.S_ISDIR(os.lstat(os.path.join(self.folder, self.name)).st_mode)
        except OSError:
            return False

    def stat(self) -> os.stat_result:
        fd = self._open()
        try:
            return os.fstat(fd)
        finally:
            os.close(fd)

    def read_bytes(self) -> bytes:
        fd = self._open()
        try:
            # One more byte than an image may have: a file grown since its size was checked is
            # refused by the image check, not read whole.
            return read_fd(fd, MAX_IMAGE_BYTES + 1)
        finally:
            os.close(fd)


__all__ = ["LOCAL_RESCAN_SECONDS", "FolderImage", "LocalFolder", "entry_of", "open_inside", "read_inside"]

"""A drop folder finds every new version of a file on the next poll, whatever its timestamps say."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from airflow_provider_kling.triggers.storage.cursor import FolderCursor, FolderWatch, ListedFile
from airflow_provider_kling.triggers.storage.local_folder import LocalFolder
from tests.helpers import collect, make_png, names, started, watcher

PNG = make_png(300, 300)
OTHER = make_png(400, 300)
LONG_AGO = 1_000_000_000  # 2001: older than any cursor


def same_file_again(path: Path) -> None:
    """Delete and add back the same bytes with the same mtime, as ``rm`` then ``cp -p`` would."""
    st = path.stat()
    path.unlink()
    path.write_bytes(PNG)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def renamed_over(path: Path) -> None:
    """Replace atomically with a file written beside it and dated long ago (``rsync -t``, ``unzip``)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(OTHER)
    os.utime(tmp, (LONG_AGO, LONG_AGO))
    os.replace(tmp, path)


def dated_copy(path: Path) -> None:
    """A new file whose mtime is older than the cursor (``cp -p old.png``)."""
    new = path.with_name("new.png")
    new.write_bytes(OTHER)
    os.utime(new, (LONG_AGO, LONG_AGO))


def touched_back(path: Path) -> None:
    """The same file, its mtime set back (``touch -d``): no entry of the folder changes."""
    os.utime(path, (LONG_AGO, LONG_AGO))


def rewritten_in_place(path: Path) -> None:
    """Other bytes of the same size written into the file, its mtime kept (``cp -p`` over it)."""
    st = path.stat()
    path.write_bytes(PNG[:-4] + b"\0\0\0\0")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


#: Changes to the folder's entries: found on the next poll, always.
ENTRY_CHANGES: dict[str, Callable[[Path], None]] = {
    "deleted and added again": same_file_again,
    "renamed over, dated back": renamed_over,
    "new with an old mtime": dated_copy,
}
#: Changes inside a file: found by the next full pass (every poll with rescan_seconds=0).
IN_PLACE: dict[str, Callable[[Path], None]] = {
    "touched back": touched_back,
    "rewritten in place": rewritten_in_place,
}
CHANGES = ENTRY_CHANGES | IN_PLACE


@pytest.mark.parametrize("change", CHANGES.values(), ids=list(CHANGES))
def test_the_next_listing_holds_the_new_version_at_once(tmp_path, change):
    (tmp_path / "a.png").write_bytes(PNG)
    os.utime(tmp_path, (time.time() - 10, time.time() - 10))  # a folder that changed a while ago
    rescan = 0.0 if change in IN_PLACE.values() else 300.0
    folder = LocalFolder(str(tmp_path), recursive=False, rescan_seconds=rescan)
    before = {e.name: e.fingerprint for e in folder.poll() or []}
    if rescan:
        assert folder.poll() is None  # idle: nothing read
    change(tmp_path / "a.png")
    after = {e.name: e.fingerprint for e in folder.poll() or []}
    assert after != before
    assert set(after) - {"new.png"} == {"a.png"}


@pytest.mark.parametrize("change", CHANGES.values(), ids=list(CHANGES))
async def test_a_running_watch_announces_the_new_version_on_its_next_polls(tmp_path, change):
    rescan = 0.0 if change in IN_PLACE.values() else 300.0
    await started(watcher(tmp_path, rescan_seconds=rescan))
    (tmp_path / "a.png").write_bytes(PNG)
    trigger = watcher(tmp_path, rescan_seconds=rescan)
    changed: list[bool] = []

    def change_once_announced() -> None:
        if getattr(trigger, "fired", None) and not changed:
            change(tmp_path / "a.png")
            changed.append(True)

    # One watch, no restart: the second event comes from the change.
    events = await collect(trigger, until=lambda e: len(e) >= 2, seconds=5, during=change_once_announced)
    expected = ["a.png", "new.png"] if change is dated_copy else ["a.png", "a.png"]
    assert names(events) == expected
    # And once only, after a restart too.
    assert await collect(watcher(tmp_path, rescan_seconds=rescan), seconds=0.3) == []


@pytest.mark.parametrize("change", CHANGES.values(), ids=list(CHANGES))
async def test_a_change_while_no_triggerer_runs_is_announced_by_the_next(tmp_path, change):
    await started(watcher(tmp_path))
    (tmp_path / "a.png").write_bytes(PNG)
    assert names(await collect(watcher(tmp_path), until=lambda e: len(e) >= 1, seconds=5)) == ["a.png"]
    change(tmp_path / "a.png")
    events = await collect(watcher(tmp_path), until=lambda e: len(e) >= 1, seconds=5)
    assert names(events) == (["new.png"] if change is dated_copy else ["a.png"])


def test_a_store_whose_timestamps_anyone_sets_still_finds_what_changed_while_it_watched():
    """An object store listing carries the file's own mtime (sftp, smb): it may be anything."""
    watch = FolderWatch(FolderCursor(), ("*.png",))
    now = time.time()
    assert watch.observe([ListedFile("a.png", 1, now)], 0.0) == []  # the starting point
    listing = [ListedFile("a.png", 1, now), ListedFile("old.png", 2, LONG_AGO)]  # new, dated 2001
    assert watch.observe(listing, 1.0) == []
    assert [e.name for e in watch.observe(listing, 2.0)] == ["old.png"]
    watch.record([listing[1]])
    listing = [ListedFile("a.png", 5, LONG_AGO), ListedFile("old.png", 2, LONG_AGO)]  # replaced, dated back
    assert watch.observe(listing, 3.0) == []
    assert [e.name for e in watch.observe(listing, 4.0)] == ["a.png"]


def test_a_stamp_in_the_future_does_not_make_later_files_old():
    watch = FolderWatch(FolderCursor(), ("*.png",), horizon=100.0)
    now = time.time()
    watch.observe([ListedFile("a.png", 1, now)], 0.0)
    future = [ListedFile("a.png", 1, now), ListedFile("z.png", 1, now + 10 * 365 * 86400)]
    watch.observe(future, 1.0)
    watch.record(watch.observe(future, 2.0))
    assert watch.cursor.since is not None
    assert watch.cursor.since <= time.time()
    # After a restart (nothing in memory), a file of today is still new.
    resumed = FolderWatch(FolderCursor.from_json(watch.cursor.to_json()) or FolderCursor(), ("*.png",))
    listing = [*future, ListedFile("b.png", 1, time.time())]
    resumed.observe(listing, 3.0)
    assert [e.name for e in resumed.observe(listing, 4.0)] == ["b.png"]


async def test_a_cursor_written_by_the_previous_version_is_read_and_nothing_announced_twice(tmp_path):
    await started(watcher(tmp_path))
    (tmp_path / "a.png").write_bytes(PNG)
    trigger = watcher(tmp_path)
    assert names(await collect(trigger, until=lambda e: len(e) >= 1, seconds=5)) == ["a.png"]
    # What version 1 saved for a.png: its size and the later of its mtime and ctime.
    st = os.stat(tmp_path / "a.png")
    stamp = max(st.st_mtime, st.st_ctime)
    cursor = tmp_path / trigger.cursor_store(trigger.root()).path.name  # type: ignore[attr-defined]
    since = json.loads(cursor.read_text())["since"]
    old = {"version": 1, "since": since, "seen": {"a.png": [f"{st.st_size}:{stamp!r}", stamp]}}
    cursor.write_text(json.dumps(old))

    (tmp_path / "b.png").write_bytes(PNG)
    assert names(await collect(watcher(tmp_path), until=lambda e: len(e) >= 1, seconds=5)) == ["b.png"]
    assert await collect(watcher(tmp_path), seconds=0.3) == []
    saved = json.loads(cursor.read_text())
    assert saved["version"] == 2
    assert not saved["seen"]["a.png"][0].startswith("v1|")  # upgraded on the way

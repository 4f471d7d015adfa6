"""NewImagesTrigger against a local folder and fsspec's memory store, run as the triggerer runs it."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from typing import Any

import pytest

from airflow_provider_kling.triggers.storage import NewImagesTrigger
from airflow_provider_kling.triggers.storage.listing import FolderLister
from tests.helpers import POLL, FakeStateStore, collect, make_png, names, started, watcher

PNG = make_png(300, 300)


async def test_new_images_are_announced_once_with_uri_size_and_mtime(tmp_path):
    await started(watcher(tmp_path))
    (tmp_path / "a.png").write_bytes(PNG)
    (tmp_path / "b.PNG").write_bytes(PNG)
    trigger = watcher(tmp_path)
    events = await collect(trigger, until=lambda e: len(e) >= 2, seconds=5)
    assert names(events) == ["a.png", "b.PNG"]
    assert len(trigger.fired) == 1  # found by one poll: one event, so one DAG run maps over both
    first = min(events, key=lambda e: e["name"])
    assert first["uri"] == f"file://{tmp_path}/a.png"
    assert first["size"] == len(PNG)
    assert first["mtime"] == pytest.approx(os.stat(tmp_path / "a.png").st_mtime, abs=1)
    assert "PNG image 300x300" in first["image"]
    json.dumps(events)  # what the triggerer stores must be JSON
    assert set(first) == {"uri", "name", "size", "etag", "mtime", "image"}

    # The condition stays true (the files are still there): nothing fires again, in this run or the next.
    assert await collect(watcher(tmp_path), seconds=10 * POLL) == []


async def test_event_per_image_gives_each_image_an_event_of_its_own(tmp_path):
    await started(watcher(tmp_path, event_per_image=True))
    for name in ("a.png", "b.png", "c.jpg"):
        (tmp_path / name).write_bytes(PNG)
    trigger = watcher(tmp_path, event_per_image=True)
    images = await collect(trigger, until=lambda e: len(e) >= 3, seconds=5)
    assert names(images) == ["a.png", "b.png", "c.jpg"]
    assert [len(payload["images"]) for payload in trigger.fired] == [1, 1, 1]


async def test_images_already_there_are_the_starting_point_unless_asked(tmp_path):
    (tmp_path / "old.png").write_bytes(PNG)
    assert await collect(watcher(tmp_path), seconds=6 * POLL) == []

    other = tmp_path / "other"
    other.mkdir()
    (other / "old.png").write_bytes(PNG)
    events = await collect(watcher(other, announce_existing=True), until=lambda e: len(e) >= 1, seconds=5)
    assert names(events) == ["old.png"]


async def test_a_restarted_watch_announces_only_what_came_while_it_was_down(tmp_path):
    await started(watcher(tmp_path))
    (tmp_path / "a.png").write_bytes(PNG)
    assert names(await collect(watcher(tmp_path), until=lambda e: len(e) >= 1, seconds=5)) == ["a.png"]
    (tmp_path / "b.png").write_bytes(PNG)  # while no triggerer runs the watch
    events = await collect(watcher(tmp_path), until=lambda e: len(e) >= 1, seconds=5)
    assert names(events) == ["b.png"]
    assert await collect(watcher(tmp_path), seconds=6 * POLL) == []
    # The cursor is a dotfile in the folder, which the watch itself skips.
    assert [p.name for p in tmp_path.glob(".kling-cursor-*.json")]


async def test_a_replaced_image_is_announced_again_and_a_deleted_one_is_not(tmp_path):
    await started(watcher(tmp_path))
    (tmp_path / "a.png").write_bytes(PNG)
    (tmp_path / "b.png").write_bytes(PNG)
    assert len(await collect(watcher(tmp_path), until=lambda e: len(e) >= 2, seconds=5)) == 2

    (tmp_path / "a.png").write_bytes(make_png(400, 300))  # replaced in place, new content
    (tmp_path / "b.png").unlink()
    events = await collect(watcher(tmp_path), until=lambda e: len(e) >= 1, seconds=5)
    assert names(events) == ["a.png"]
    assert "400x300" in events[0]["image"]
    (tmp_path / "b.png").write_bytes(PNG)  # deleted, then dropped again: a new file
    assert names(await collect(watcher(tmp_path), until=lambda e: len(e) >= 1, seconds=5)) == ["b.png"]


async def test_a_file_still_being_written_is_announced_only_when_complete(tmp_path):
    await started(watcher(tmp_path))
    target = tmp_path / "big.png"
    chunks = [PNG[i : i + 100] for i in range(0, len(PNG), 100)]
    written: list[int] = []

    def write_next() -> None:
        if len(written) < len(chunks):
            with target.open("ab") as out:
                out.write(chunks[len(written)])
            written.append(1)

    # A chunk every few polls: the file never stays the same for settle_seconds while it grows.
    slow = watcher(tmp_path, settle_seconds=0.5)
    events = await collect(slow, until=lambda e: len(written) == len(chunks), seconds=10, during=write_next)
    assert events == []
    events = await collect(watcher(tmp_path, settle_seconds=0.5), until=lambda e: len(e) >= 1, seconds=5)
    assert names(events) == ["big.png"]
    assert events[0]["size"] == len(PNG)


async def test_temporary_names_are_skipped_until_renamed(tmp_path):
    await started(watcher(tmp_path))
    for name in ("a.png.part", "a.png.tmp", "a.png~", ".a.png", "~$a.png.crdownload"):
        (tmp_path / name).write_bytes(PNG)
    assert await collect(watcher(tmp_path), seconds=8 * POLL) == []
    (tmp_path / "a.png.part").rename(tmp_path / "a.png")
    assert names(await collect(watcher(tmp_path), until=lambda e: len(e) >= 1, seconds=5)) == ["a.png"]


async def test_bad_files_are_refused_by_name_in_the_log_and_never_retried(tmp_path, caplog):
    await started(watcher(tmp_path))
    (tmp_path / "notes.png").write_bytes(b"not an image at all")
    (tmp_path / "thumb.png").write_bytes(make_png(100, 100))
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "good.png").write_bytes(PNG)
    with caplog.at_level(logging.WARNING):
        events = await collect(watcher(tmp_path), seconds=15 * POLL)
    assert names(events) == ["good.png"]
    refused = [r.getMessage() for r in caplog.records if "Refused" in r.getMessage()]
    assert len(refused) == 3, refused  # once each, although the watch polled many times
    assert any("notes.png" in m and "not a JPEG or PNG" in m for m in refused)
    assert any("thumb.png" in m and "300" in m for m in refused)
    assert any("empty.jpg" in m and "empty" in m for m in refused)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert await collect(watcher(tmp_path), seconds=6 * POLL) == []
    assert not [r for r in caplog.records if "Refused" in r.getMessage()]


async def test_an_image_over_the_size_limit_is_refused_without_reading_it(tmp_path, caplog, monkeypatch):
    import airflow_provider_kling.triggers.storage.new_images as storage

    monkeypatch.setattr(storage, "MAX_IMAGE_BYTES", 1000)
    await started(watcher(tmp_path))
    (tmp_path / "huge.png").write_bytes(PNG + b"\0" * 2000)
    with caplog.at_level(logging.WARNING):
        assert await collect(watcher(tmp_path), seconds=8 * POLL) == []
    messages = [r.getMessage() for r in caplog.records]
    assert any("huge.png" in m and "at most 1,000 bytes" in m for m in messages)


async def test_on_airflow_3_3_the_cursor_lives_in_the_asset_state_store(tmp_path):
    store = FakeStateStore()

    def in_store(**options: Any) -> NewImagesTrigger:
        trigger = watcher(tmp_path, **options)
        trigger.asset_state_store = store
        return trigger

    await started(in_store())
    (tmp_path / "a.png").write_bytes(PNG)
    assert names(await collect(in_store(), until=lambda e: len(e) >= 1, seconds=5)) == ["a.png"]
    (tmp_path / "b.png").write_bytes(PNG)
    assert names(await collect(in_store(), until=lambda e: len(e) >= 1, seconds=5)) == ["b.png"]
    [key] = store.data
    assert key.startswith("kling_folder_cursor:")
    assert set(store.data[key]["seen"]) == {"a.png", "b.png"}
    assert not list(tmp_path.glob(".kling-cursor-*"))  # nothing written into the user's folder


async def test_nothing_is_announced_while_the_cursor_cannot_be_saved(tmp_path):
    store = FakeStateStore()
    trigger = watcher(tmp_path)
    trigger.asset_state_store = store
    await started(trigger)
    (tmp_path / "a.png").write_bytes(PNG)
    failing = True
    real_set = store.aset

    async def aset(key: str, value: Any) -> None:
        if failing:
            raise ConnectionError("the API server is restarting")
        await real_set(key, value)

    store.aset = aset  # type: ignore[method-assign]
    assert await collect(trigger, seconds=8 * POLL) == []
    failing = False
    assert names(await collect(trigger, until=lambda e: len(e) >= 1, seconds=5)) == ["a.png"]


async def test_a_cursor_that_cannot_be_read_yet_is_asked_again_not_taken_as_empty(tmp_path):
    store = FakeStateStore()
    trigger = watcher(tmp_path)
    trigger.asset_state_store = store
    await started(trigger)
    (tmp_path / "a.png").write_bytes(PNG)  # arrives while the state store does not answer
    attempts = []
    real_get = store.aget

    async def aget(key: str, default: Any = None) -> Any:
        attempts.append(key)
        if len(attempts) < 3:
            raise ConnectionError("the API server is restarting")
        return await real_get(key, default)

    store.aget = aget  # type: ignore[method-assign]
    assert names(await collect(trigger, until=lambda e: len(e) >= 1, seconds=5)) == ["a.png"]
    assert len(attempts) == 3


async def test_a_local_drop_folder_that_does_not_exist_yet_is_watched_from_empty(tmp_path):
    folder = tmp_path / "incoming"
    await started(watcher(folder))
    (folder / "a.png").write_bytes(PNG)
    assert names(await collect(watcher(folder), until=lambda e: len(e) >= 1, seconds=5)) == ["a.png"]


@pytest.fixture
def memory_root():
    """A fresh ``memory://`` prefix, attached as Airflow's object store for that scheme."""
    from airflow.sdk import ObjectStoragePath
    from airflow.sdk.io import attach
    from fsspec.implementations.memory import MemoryFileSystem

    fs = MemoryFileSystem()
    attach(protocol="memory", fs=fs)
    root = ObjectStoragePath(f"memory://drop-{os.getpid()}-{id(fs)}/incoming")
    root.mkdir(parents=True, exist_ok=True)
    yield root
    fs.store.clear()
    fs.pseudo_dirs.clear()


async def test_a_memory_store_prefix_new_replaced_deleted_and_bad_files(memory_root, caplog):
    await started(watcher(memory_root))
    (memory_root / "a.png").write_bytes(PNG)
    (memory_root / "b.jpg.part").write_bytes(PNG)
    (memory_root / "c.png").write_bytes(b"GIF89a not a png")
    with caplog.at_level(logging.WARNING):
        events = await collect(watcher(memory_root), until=lambda e: len(e) >= 1, seconds=5)
        await collect(watcher(memory_root), seconds=6 * POLL)
    assert names(events) == ["a.png"]
    assert events[0]["uri"] == str(memory_root / "a.png")
    assert any("c.png" in r.getMessage() for r in caplog.records if "Refused" in r.getMessage())

    await asyncio.sleep(0.01)  # the memory store's timestamps are the clock's
    (memory_root / "a.png").write_bytes(make_png(300, 400))
    (memory_root / "b.jpg.part").rename(memory_root / "b.jpg")
    events = await collect(watcher(memory_root), until=lambda e: len(e) >= 2, seconds=5)
    assert names(events) == ["a.png", "b.jpg"]
    assert list(memory_root.glob(".kling-cursor-*.json"))  # Airflow < 3.3: the cursor object
    assert await collect(watcher(memory_root), seconds=6 * POLL) == []


async def test_two_watches_of_one_folder_keep_separate_cursors(tmp_path):
    pngs, jpegs = watcher(tmp_path, patterns=["*.png"]), watcher(tmp_path, patterns="*.jpg")
    assert pngs.watch_id != jpegs.watch_id
    await started(pngs)
    await started(jpegs)
    (tmp_path / "a.png").write_bytes(PNG)
    assert names(await collect(watcher(tmp_path, patterns=["*.png"]), until=lambda e: bool(e))) == ["a.png"]
    assert await collect(watcher(tmp_path, patterns="*.jpg"), seconds=6 * POLL) == []


def test_the_trigger_serializes_to_the_same_kwargs_after_a_reparse(tmp_path):
    classpath, kwargs = watcher(tmp_path, patterns=["*.png"], conn_id="aws_drop").serialize()
    assert classpath == "airflow_provider_kling.triggers.storage.NewImagesTrigger"
    rebuilt = NewImagesTrigger(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert rebuilt.watch_id == watcher(tmp_path, patterns=["*.png"], conn_id="aws_drop").watch_id


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"patterns": []}, "patterns"),
        ({"poll_interval": 0}, "poll_interval"),
        ({"rescan_seconds": -1}, "rescan_seconds"),
    ],
)
def test_bad_arguments_are_refused_when_the_dag_is_parsed(tmp_path, options, field):
    from airflow_provider_kling.api import KlingValidationError

    with pytest.raises(KlingValidationError, match=f"Invalid {field}"):
        NewImagesTrigger(path=str(tmp_path), **options)


def test_an_idle_local_folder_is_not_listed_again_and_a_changed_one_is_read_whole(tmp_path, monkeypatch):
    import airflow_provider_kling.triggers.storage.local_folder as local_folder

    def changed_seconds_ago(seconds: float) -> None:
        # Directory timestamps tick coarsely: a change just now proves nothing, so date it back.
        stamp = time.time() - seconds
        os.utime(tmp_path, (stamp, stamp))

    (tmp_path / "a.png").write_bytes(PNG)
    (tmp_path / "b.png").write_bytes(PNG)
    changed_seconds_ago(10)
    lister = FolderLister(watcher(tmp_path).root(), recursive=False)
    assert sorted(e.name for e in lister.poll() or []) == ["a.png", "b.png"]
    assert lister.poll() is None  # nothing changed: one stat of the folder, no listing
    assert lister.detailed == 0
    assert [e.name for e in lister.poll(["a.png"]) or []] != []  # a file is settling: only it
    assert lister.detailed == 1
    (tmp_path / "c.png").write_bytes(PNG)
    changed_seconds_ago(5)
    assert sorted(e.name for e in lister.poll() or []) == ["a.png", "b.png", "c.png"]
    # The folder's entries changed: every file in it is looked at, since a name still there may
    # hold another file now (deleted and added again, renamed over).
    assert lister.detailed == 3
    assert lister.poll() is None
    (tmp_path / "b.png").unlink()
    changed_seconds_ago(4)
    assert sorted(e.name for e in lister.poll() or []) == ["a.png", "c.png"]
    (tmp_path / "d.png").write_bytes(PNG)  # changed just now: listed again until it is settled
    assert sorted(e.name for e in lister.poll() or []) == ["a.png", "c.png", "d.png"]
    assert lister.poll() is not None

    # A file rewritten in place changes no directory entry: the periodic full pass finds it.
    monkeypatch.setattr(local_folder, "LOCAL_RESCAN_SECONDS", 0.0)
    (tmp_path / "a.png").write_bytes(PNG + b"more")
    found = {e.name: e.size for e in lister.poll() or []}
    assert found["a.png"] == len(PNG) + 4
    assert lister.detailed == 3


def test_a_missing_local_folder_is_an_empty_one(tmp_path):
    lister = FolderLister(watcher(tmp_path / "not-yet").root(), recursive=False)
    assert lister.poll() == []

"""A local drop folder is never left: links are not followed, by the watch or by the DAG reading an image."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from airflow_provider_kling.api import KlingValidationError
from airflow_provider_kling.api.images import prepare_first_frame
from airflow_provider_kling.triggers.storage import announced_image
from airflow_provider_kling.triggers.storage.local_folder import LocalFolder, read_inside
from tests.helpers import collect, make_png, names, started, watcher

PNG = make_png(300, 300)
SECRET = make_png(320, 300)  # an image outside the folder: its bytes must never be read


@pytest.fixture
def places(tmp_path: Path) -> tuple[Path, Path]:
    """A drop folder and, beside it, a folder the watch must never read."""
    drop, outside = tmp_path / "drop", tmp_path / "outside"
    drop.mkdir()
    outside.mkdir()
    (outside / "secret.png").write_bytes(SECRET)
    (outside / "album").mkdir()
    (outside / "album" / "inner.png").write_bytes(SECRET)
    return drop, outside


def plant_links(drop: Path, outside: Path) -> None:
    """Every kind of link out of the folder, and one that stays inside it."""
    (drop / "absolute.png").symlink_to(outside / "secret.png")
    (drop / "relative.png").symlink_to(Path("..") / "outside" / "secret.png")
    (drop / "hop.png").symlink_to(drop / "absolute.png")  # a chain: link -> link -> outside
    (drop / "album").symlink_to(outside / "album", target_is_directory=True)
    (drop / "dangling.png").symlink_to(outside / "gone.png")
    (drop / "real.png").write_bytes(PNG)
    (drop / "alias.png").symlink_to("real.png")  # stays inside: the image counts once, as real.png
    os.link(outside / "secret.png", drop / "hardlink.png")  # its bytes are in the folder: a file of it


@pytest.mark.parametrize("recursive", [False, True])
async def test_links_are_never_announced_and_the_images_they_point_at_never_read(places, caplog, recursive):
    drop, outside = places
    await started(watcher(drop, recursive=recursive))
    plant_links(drop, outside)
    with caplog.at_level(logging.WARNING):
        events = await collect(watcher(drop, recursive=recursive), until=lambda e: len(e) >= 2, seconds=5)
        events += await collect(watcher(drop, recursive=recursive), seconds=0.5)
    assert names(events) == ["hardlink.png", "real.png"]
    skipped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Skipped")]
    for link in ("absolute.png", "relative.png", "hop.png", "album", "dangling.png", "alias.png"):
        assert any(f"Skipped {link} in" in m and "symbolic link" in m for m in skipped), (link, skipped)


async def test_a_watched_folder_reached_through_a_link_is_watched(places):
    drop, _ = places
    via = drop.parent / "via"
    via.symlink_to(drop, target_is_directory=True)
    await started(watcher(via))
    (drop / "a.png").write_bytes(PNG)
    events = await collect(watcher(via), until=lambda e: len(e) >= 1, seconds=5)
    assert names(events) == ["a.png"]
    assert events[0]["uri"] == f"file://{via}/a.png"
    assert prepare_first_frame(announced_image(events[0]))[1].startswith("PNG image 300x300")


def test_a_link_swapped_in_after_the_listing_is_not_read(places):
    drop, outside = places
    (drop / "a.png").write_bytes(PNG)
    (drop / "sub").mkdir()
    (drop / "sub" / "b.png").write_bytes(PNG)
    folder = LocalFolder(str(drop), recursive=True)
    listed = {e.name: e for e in folder.poll() or []}
    assert read_inside(str(drop), "a.png", 10, listed["a.png"].version) == PNG[:10]

    (drop / "a.png").unlink()
    (drop / "a.png").symlink_to(outside / "secret.png")
    os.rename(drop / "sub", drop / "sub.old")
    (drop / "sub").symlink_to(outside / "album", target_is_directory=True)
    for name in ("a.png", "sub/inner.png"):
        with pytest.raises(OSError, match=r"symbolic links|Not a directory"):
            read_inside(str(drop), name, 10)
    with pytest.raises(FileNotFoundError):
        read_inside(str(drop), "../outside/secret.png", 10)

    # Replaced by another file inside the folder: not the version listed, so not read as it.
    (drop / "c.png").write_bytes(PNG)
    listed_c = {e.name: e for e in LocalFolder(str(drop), recursive=False).poll() or []}["c.png"]
    (drop / "c.png").unlink()
    (drop / "c.png").write_bytes(PNG)
    assert read_inside(str(drop), "c.png", 10, listed_c.version) is None


async def test_the_dag_reads_an_announced_image_only_from_inside_the_folder(places):
    drop, outside = places
    await started(watcher(drop))
    (drop / "a.png").write_bytes(PNG)
    [image] = await collect(watcher(drop), until=lambda e: len(e) >= 1, seconds=5)
    assert prepare_first_frame(announced_image(image))[1].startswith("PNG image 300x300")

    # Swapped for a link after it was announced: the submit refuses it by name, reads nothing.
    (drop / "a.png").unlink()
    (drop / "a.png").symlink_to(outside / "secret.png")
    with pytest.raises(KlingValidationError, match=r"first_frame.*a\.png is a symbolic link"):
        prepare_first_frame(announced_image(image))


def test_an_object_store_image_is_read_through_its_storage_path():
    from airflow.sdk import ObjectStoragePath

    located = announced_image({"uri": "s3://bucket/in/a.png", "name": "a.png"}, conn_id="aws_drop")
    assert isinstance(located, ObjectStoragePath)
    # Airflow 3.2+ keeps it as conn_id; 3.1 among the path's storage options.
    conn_id = getattr(located, "conn_id", None) or located.storage_options.get("conn_id")
    assert conn_id == "aws_drop"


async def test_the_cursor_is_never_written_or_read_through_a_link_left_in_the_folder(places, caplog):
    drop, outside = places
    trigger = watcher(drop)
    target = outside / "precious.txt"
    target.write_text("keep me")
    cursor = drop / trigger.cursor_store(trigger.root()).path.name  # type: ignore[attr-defined]
    cursor.with_name(f"{cursor.name}.tmp").symlink_to(target)  # where the next cursor used to go
    await started(trigger)
    (drop / "a.png").write_bytes(PNG)
    assert names(await collect(watcher(drop), until=lambda e: len(e) >= 1, seconds=5)) == ["a.png"]
    assert target.read_text() == "keep me"

    cursor.unlink()
    cursor.symlink_to(target)
    (drop / "b.png").write_bytes(PNG)
    with caplog.at_level(logging.WARNING):
        assert await collect(watcher(drop), seconds=0.3) == []
    assert any("Could not read the watch's cursor" in r.getMessage() for r in caplog.records)
    assert target.read_text() == "keep me"

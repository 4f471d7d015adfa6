"""The drop-folder watch's decisions, with no storage: what is new, what is complete, what is remembered."""

from __future__ import annotations

import pytest

from airflow_provider_kling.triggers.storage.cursor import (
    FolderCursor,
    FolderWatch,
    ListedFile,
    is_temporary,
    matches,
)

IMAGES = ("*.png", "*.jpg", "*.jpeg")


def started(*entries: ListedFile, **options: object) -> FolderWatch:
    """A watch whose first listing (the starting point) held ``entries``."""
    watch = FolderWatch(FolderCursor(), IMAGES, **options)  # type: ignore[arg-type]
    assert watch.observe(list(entries), 0.0) == []
    return watch


def settle(watch: FolderWatch, listing: list[ListedFile], now: float = 1.0) -> list[str]:
    """Two polls of the same listing: what becomes ready on the second."""
    assert watch.observe(listing, now) == []
    ready = watch.observe(listing, now + 1)
    watch.record(ready)
    return [e.name for e in ready]


@pytest.mark.parametrize(
    "name",
    [".hidden.png", "a.png.part", "a.png.tmp", "a.png~", "a.crdownload", ".sync/a.png", "A.PNG.PART"],
)
def test_temporary_names_are_recognised(name):
    assert is_temporary(name)


@pytest.mark.parametrize("name", ["a.png", "dir/b.jpg", "c.part.png"])
def test_final_names_are_not_temporary(name):
    assert not is_temporary(name)


def test_patterns_match_the_file_name_case_insensitively_and_paths_when_they_say_so():
    assert matches("Product.PNG", IMAGES)
    assert matches("sub/product.jpg", IMAGES)
    assert not matches("product.gif", IMAGES)
    assert matches("2026/12/a.png", ["2026/*/*.png"])
    assert not matches("2025/12/a.png", ["2026/*/*.png"])


def test_files_there_at_the_start_are_old_and_later_ones_new():
    watch = started(ListedFile("old.png", 10, 100.0))
    assert settle(watch, [ListedFile("old.png", 10, 100.0), ListedFile("new.png", 5, 101.0)]) == ["new.png"]


def test_announce_existing_takes_every_file_of_the_first_listing_as_new():
    watch = FolderWatch(FolderCursor(), IMAGES, announce_existing=True)
    listing = [ListedFile("a.png", 1, 5.0), ListedFile("b.png", 1, 6.0)]
    assert watch.observe(listing, 0.0) == []
    assert [e.name for e in watch.observe(listing, 1.0)] == ["a.png", "b.png"]


def test_a_growing_file_is_ready_only_once_two_polls_see_it_unchanged():
    watch = started()
    assert watch.observe([ListedFile("a.png", 100, 1.0)], 1.0) == []
    assert watch.observe([ListedFile("a.png", 200, 2.0)], 2.0) == []  # still growing
    assert [e.name for e in watch.observe([ListedFile("a.png", 200, 2.0)], 3.0)] == ["a.png"]


def test_an_etag_change_at_the_same_size_is_a_change():
    watch = started()
    assert watch.observe([ListedFile("a.png", 100, 1.0, etag="x")], 1.0) == []
    assert watch.observe([ListedFile("a.png", 100, 1.0, etag="y")], 2.0) == []
    assert watch.observe([ListedFile("a.png", 100, 1.0, etag="y")], 3.0) != []


def test_settle_seconds_holds_a_file_back_until_it_has_been_quiet_that_long():
    watch = started(settle_seconds=30.0)
    listing = [ListedFile("a.png", 100, 1.0)]
    assert watch.observe(listing, 0.0) == []
    assert watch.observe(listing, 10.0) == []
    assert watch.observe(listing, 31.0) != []


def test_an_announced_file_is_never_ready_again_while_it_stays_the_same():
    watch = started()
    listing = [ListedFile("a.png", 100, 1.0)]
    assert settle(watch, listing) == ["a.png"]
    for now in range(2, 10):
        assert watch.observe(listing, float(now)) == []


def test_a_replaced_file_is_new_again():
    watch = started()
    assert settle(watch, [ListedFile("a.png", 100, 1.0)]) == ["a.png"]
    assert settle(watch, [ListedFile("a.png", 120, 5.0)], now=5.0) == ["a.png"]


def test_a_file_deleted_while_settling_is_forgotten():
    watch = started()
    assert watch.observe([ListedFile("a.png", 100, 1.0)], 1.0) == []
    assert watch.observe([], 2.0) == []
    assert watch.pending == {}
    assert watch.observe([ListedFile("a.png", 100, 1.0)], 3.0) == []  # back again: watched afresh


def test_temporary_and_unmatched_files_are_never_ready():
    watch = started()
    listing = [
        ListedFile("a.png.part", 1, 1.0),
        ListedFile(".a.png", 1, 1.0),
        ListedFile("notes.txt", 1, 1.0),
    ]
    assert settle(watch, listing) == []
    assert watch.pending == {}


def test_the_cursor_survives_json_and_a_new_watch_resumes_from_it():
    watch = started(ListedFile("old.png", 1, 1.0))
    assert settle(watch, [ListedFile("old.png", 1, 1.0), ListedFile("a.png", 2, 2.0)]) == ["a.png"]
    saved = watch.cursor.to_json()

    resumed = FolderWatch(FolderCursor.from_json(saved) or FolderCursor(), IMAGES)
    listing = [ListedFile("old.png", 1, 1.0), ListedFile("a.png", 2, 2.0), ListedFile("b.png", 3, 3.0)]
    assert settle(resumed, listing) == ["b.png"]


@pytest.mark.parametrize("value", [None, "", "{", {"version": 99}, {"version": 1, "seen": []}, 42])
def test_an_unusable_cursor_is_no_cursor(value):
    assert FolderCursor.from_json(value) is None


def test_the_cursor_forgets_names_behind_the_horizon_so_it_stays_small():
    watch = started(horizon=100.0)
    assert settle(watch, [ListedFile("a.png", 1, 10.0)]) == ["a.png"]
    assert settle(watch, [ListedFile("a.png", 1, 10.0), ListedFile("b.png", 1, 500.0)], now=3.0) == ["b.png"]
    assert watch.cursor.since == 400.0
    assert set(watch.cursor.seen) == {"b.png"}
    # a.png is behind the horizon now: old, and not announced again.
    assert settle(watch, [ListedFile("a.png", 1, 10.0), ListedFile("b.png", 1, 500.0)], now=5.0) == []


def test_the_horizon_never_passes_a_file_that_is_still_settling():
    watch = started(horizon=100.0)
    assert watch.observe([ListedFile("slow.png", 1, 10.0), ListedFile("b.png", 1, 500.0)], 1.0) == []
    assert watch.cursor.since is not None
    assert watch.cursor.since <= 10.0
    ready = watch.observe([ListedFile("slow.png", 1, 10.0), ListedFile("b.png", 1, 500.0)], 2.0)
    assert [e.name for e in ready] == ["b.png", "slow.png"]

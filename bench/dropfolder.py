"""Part 5: a drop folder holding 100,000 old images: what one poll of NewImagesTrigger's watch costs.

The baseline, in the same process, is the naive poll: list the whole folder with details and
look at every file (what a watch with no memory of the folder must do). The watch is measured
idle (nothing new) and with 10 new images; each poll is repeated and the median is kept.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Section, Target, cli, ratio, table

from airflow_provider_kling.triggers.storage.cursor import FolderCursor, FolderWatch
from airflow_provider_kling.triggers.storage.listing import FolderLister
from airflow_provider_kling.triggers.storage.new_images import DEFAULT_PATTERNS, NewImagesTrigger

FULL, SMOKE = 100_000, 2_000
REPEATS = 5


def fill(folder: Path, count: int, stamp: float) -> None:
    """``count`` small files named like product images, all older than ``stamp``."""
    for i in range(count):
        path = folder / f"product_{i:06d}.png"
        path.write_bytes(b"\x89PNG")
        os.utime(path, (stamp, stamp))
    os.utime(folder, (stamp, stamp))  # a folder nothing was added to for an hour


def median_seconds(step: Callable[[], object]) -> float:
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms"


def run(smoke: bool) -> Section:
    count = SMOKE if smoke else FULL
    with tempfile.TemporaryDirectory(prefix="kling-drop-bench-") as tmp:
        folder = Path(tmp)
        fill(folder, count, time.time() - 3600)
        root = NewImagesTrigger(path=str(folder)).root()

        def naive() -> int:
            found = root.fs.find(str(folder), maxdepth=1, detail=True)
            return sum(1 for name in found if name.endswith(".png"))

        baseline = median_seconds(naive)
        lister = FolderLister(root, recursive=False)
        watch = FolderWatch(FolderCursor(), DEFAULT_PATTERNS)
        started = time.perf_counter()
        watch.observe(lister.poll() or [], time.monotonic())
        first = time.perf_counter() - started
        listed: list[int] = []

        def idle_poll() -> None:
            listing = lister.poll(list(watch.pending))
            listed.append(lister.detailed)
            if listing is not None:
                watch.observe(listing, time.monotonic())

        idle = median_seconds(idle_poll)
        idle_listed = max(listed)
        for i in range(10):
            (folder / f"new_{i}.png").write_bytes(b"\x89PNG")
        listed.clear()
        started = time.perf_counter()
        idle_poll()  # sees the new files
        idle_poll()  # sees them unchanged: ready
        busy = (time.perf_counter() - started) / 2
        busy_listed = max(listed)

    rows = [
        ["naive poll: list all with details (baseline)", ms(baseline), "1.00x", f"{count:,}"],
        ["watch, first listing (starting point)", ms(first), ratio(first, baseline), f"{count:,}"],
        ["watch, idle poll", ms(idle), ratio(idle, baseline), f"{idle_listed:,}"],
        ["watch, poll with 10 new images", ms(busy), ratio(busy, baseline), f"{busy_listed:,}"],
    ]
    body = [
        f"A local folder of {count:,} old images, polled by the watch of `NewImagesTrigger` "
        f"(median of {REPEATS} polls; the baseline is the naive poll in the same process).",
        "",
        *table(["Poll", "Time", "vs baseline", "Files whose details were read"], rows),
        "",
        "An idle local folder costs one `stat` of its directory: its entry changes when a file is "
        "added, renamed or removed. A poll after such a change `lstat`s every file of that folder "
        "(a name that is still there may hold a new file, even under a reused inode number), "
        "without following links and without fsspec's per-file overhead; the files it had already "
        "are compared, not examined again. A file rewritten or touched in place changes no entry: "
        "every 5 minutes (`rescan_seconds`) all files are `lstat`-ed to find it, at the cost of the "
        "poll after a change. Object stores "
        "(`s3://`, `gs://`) have no such signal and fsspec's listings there take no start-after "
        "key, so each poll of a bucket prefix is one paged listing of it (1,000 keys a request); "
        "see docs/howto-drop-folder.rst for keeping such a prefix small.",
    ]
    targets = [
        Target(
            f"Idle poll, {count:,} old images (local)",
            "no file listed",
            f"{idle_listed:,} files, {ratio(idle, baseline)} of the naive poll",
            idle_listed == 0,
        ),
        Target(
            f"Poll with 10 new images, {count:,} old (local)",
            "cheaper than the naive poll, every file of the changed folder looked at",
            f"{busy_listed:,} files, {ratio(busy, baseline)} of the naive poll",
            busy < baseline,
        ),
    ]
    return Section(
        "Drop folder at scale",
        ["python bench/dropfolder.py          # ~1 min", "python bench/dropfolder.py --smoke"],
        "\n".join(body),
        targets,
    )


if __name__ == "__main__":
    cli(run, __doc__)

"""Part 4: memory for a large image submitted and a large video downloaded.

Every step runs in a fresh process (``_memory_child.py``) and reports its peak RSS growth over the
RSS just before it, after a warm-up of the same code path. The baseline, in the same run, is the
same file read once into memory with ``Path.read_bytes()``.
"""

from __future__ import annotations

import math
import random
import struct
import sys
import tempfile
import zlib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Section, SimulatorProcess, Target, cli, connection_env, ratio, run_child, simulator, table

from airflow_provider_kling.api import KlingRequest

MIB = 1024 * 1024


def size_kb(kb: int) -> str:
    """KiB as MiB, or as KiB when under one MiB (a streamed download often is)."""
    return f"{kb / 1024:.1f} MiB" if kb >= 1024 else f"{kb} KiB"


def write_png(path: Path, approx_bytes: int) -> int:
    """A valid RGB PNG of about ``approx_bytes`` of random (incompressible) pixels; its size."""
    # Square, so any size passes GMI's aspect-ratio and 300 px checks.
    width = height = max(300, math.isqrt(approx_bytes // 3))
    rng = random.Random(4)
    rows = b"".join(b"\x00" + rng.randbytes(width * 3) for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(rows, 0))
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + idat + chunk(b"IEND", b"")
    path.write_bytes(png)
    return len(png)


def video_url(sim: SimulatorProcess) -> str:
    """Submit one request the simulator finishes at once, and return its video's URL."""
    sim.control("config", {"queued_seconds": 0, "processing_seconds": 0})
    return KlingRequest.from_record(sim.api(f"/requests/{sim.submit()}")).media_urls[0]


def step(sim: SimulatorProcess, *args: str) -> dict[str, Any]:
    result: dict[str, Any] = run_child(["bench/_memory_child.py", *args], env=connection_env(sim))
    return result


def run(smoke: bool) -> Section:
    image_target = 1 * MIB if smoke else 10_000_000
    video_bytes = 20 * MIB if smoke else 500 * MIB
    with tempfile.TemporaryDirectory(prefix="kling-bench-memory-") as tmp:
        image = Path(tmp) / "large.png"
        image_bytes = write_png(image, image_target)
        video = Path(tmp) / "out" / "large.mp4"
        with simulator("--media-bytes", str(video_bytes)) as sim:
            read_image = step(sim, "read", str(image))
            submitted = step(sim, "submit", str(image))
            downloaded = step(sim, "download", str(video), video_url(sim))
            read_video = step(sim, "read", str(video))
    mb = 1000 * 1000
    submit_x = submitted["peak_growth_kb"] * 1024 / image_bytes
    download_mb = downloaded["peak_growth_kb"] * 1024 / MIB
    download_x = ratio(downloaded["peak_growth_kb"], read_video["peak_growth_kb"])
    rows = [
        [
            f"submit a {image_bytes / mb:.1f} MB PNG (`KlingI2VOperator`, file path)",
            size_kb(submitted["peak_growth_kb"]),
            f"{submit_x:.2f}x",
            size_kb(read_image["peak_growth_kb"]),
            ratio(submitted["peak_growth_kb"], read_image["peak_growth_kb"]),
        ],
        [
            f"download a {video_bytes / MIB:.0f} MiB video (`KlingHook.download`)",
            size_kb(downloaded["peak_growth_kb"]),
            f"{downloaded['peak_growth_kb'] * 1024 / downloaded['bytes']:.3f}x",
            size_kb(read_video["peak_growth_kb"]),
            download_x,
        ],
    ]
    body = [
        "Peak RSS growth of each step in a fresh process, after a warm-up of the same code path, "
        "against reading the same file once into memory (`Path.read_bytes()`) in another fresh "
        "process of the same run. The submit is what the operator does with a file path: read "
        "the file, check it is a JPEG or PNG within GMI's limits, base64 it and POST the JSON "
        "body. The download streams the simulator's video (served at the size given, "
        "`--media-bytes`) to a local file in 1 MiB chunks, hashing as it goes.",
        "",
        *table(
            ["step", "peak RSS growth", "÷ file size", "baseline: read the file once", "÷ baseline"],
            rows,
        ),
    ]
    targets = [
        Target("Submit a 10 MB image", "≤ 3x the file size", f"{submit_x:.2f}x", submit_x <= 3),
        Target(
            "Download a 500 MB video",
            "< 32 MB peak RSS growth",
            f"{size_kb(downloaded['peak_growth_kb'])} ({download_x} of reading it once)",
            download_mb < 32,
        ),
    ]
    return Section(
        "Memory",
        ["python bench/memory.py          # ~30 s", "python bench/memory.py --smoke"],
        "\n".join(body),
        targets,
    )


if __name__ == "__main__":
    cli(run, __doc__)

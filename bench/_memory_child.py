"""One memory measurement, in a process of its own so each peak is that step's alone.

Invoked by ``bench/memory.py`` as ``python bench/_memory_child.py STEP FILE [URL]``, with a
``kling_default`` connection to a simulator in the environment; prints one JSON line: the peak RSS
growth of the step over the RSS just before it.

Steps:

- ``read FILE``: the baseline, the file read once into memory.
- ``submit FILE``: what ``KlingI2VOperator`` does with ``first_frame=FILE``: check and encode the image,
  then submit it with ``KlingHook``.
- ``download FILE URL``: ``KlingHook.download`` of URL to FILE.
"""

from __future__ import annotations

import contextlib
import gc
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import peak_rss_kb, reset_peak_rss, rss_kb

from airflow_provider_kling.exceptions import KlingDownloadError
from airflow_provider_kling.hooks.kling import KlingHook
from airflow_provider_kling.operators.kling import KlingI2VOperator

SMALL_IMAGE = Path(__file__).resolve().parent.parent / "example_dags" / "assets" / "product.png"


def submit(path: Path) -> None:
    operator = KlingI2VOperator(task_id="bench_memory", first_frame=str(path), prompt="bench")
    prepared = operator.prepare()
    operator.hook.submit(prepared.model, prepared.payload)


def warm_up(step: str, url: str | None) -> None:
    """Load every module and code path the step uses, so its peak is the data's, not the imports'."""
    if step == "submit":
        submit(SMALL_IMAGE)
    elif step == "download" and url is not None:
        # Refused by its Content-Length, as intended: the code path is loaded, nothing is streamed.
        with tempfile.TemporaryDirectory() as tmp, contextlib.suppress(KlingDownloadError):
            KlingHook().download(url, Path(tmp) / "warm-up.mp4", max_bytes=1)
    else:
        SMALL_IMAGE.read_bytes()


def main(step: str, path: Path, url: str | None) -> dict[str, Any]:
    warm_up(step, url)
    gc.collect()
    before = rss_kb()
    reset_peak_rss()
    if step == "read":
        data = path.read_bytes()
        size = len(data)
    elif step == "submit":
        submit(path)
        size = path.stat().st_size
    elif step == "download" and url is not None:
        size = KlingHook().download(url, path, max_bytes=None).size
    else:
        raise SystemExit(f"unknown step {step!r}")
    return {"step": step, "bytes": size, "rss_before_kb": before, "peak_growth_kb": peak_rss_kb() - before}


if __name__ == "__main__":
    step, file, *rest = sys.argv[1:]
    print(json.dumps(main(step, Path(file), rest[0] if rest else None)))

"""Simulator settings for load tests: scattered render times, and exact times in the stats."""

from __future__ import annotations

import time

import pytest
import requests

from airflow_provider_kling.testing import KlingSimulator
from airflow_provider_kling.testing.config import SimulatorConfig


def submit(sim: KlingSimulator, prompt: str = "p") -> str:
    payload = {"first_frame": "https://e.com/a.png", "prompt": prompt}
    resp = requests.post(
        f"{sim.api_url}/requests",
        json={"model": "kling-3.0-turbo-i2v", "payload": payload},
        headers={"Authorization": f"Bearer {sim.api_key}"},
        timeout=10,
    )
    resp.raise_for_status()
    return str(resp.json()["request_id"])


def test_processing_times_are_drawn_from_the_range():
    with KlingSimulator(queued_seconds=0, processing_seconds=5, processing_seconds_max=50) as sim:
        for _ in range(40):
            submit(sim)
        times = [r.processing_seconds for r in sim.requests]
    assert all(5 <= t <= 50 for t in times)
    assert len({round(t, 3) for t in times}) > 30  # scattered, not one value


def test_stats_give_each_request_its_exact_submit_and_finish_times():
    with KlingSimulator(queued_seconds=1, processing_seconds=2) as sim:
        request_id = submit(sim)
        stuck = submit(sim, prompt="SIMULATE_STUCK")
        stats = requests.get(f"{sim.base_url}/_simulator/stats", timeout=10).json()
    by_id = {r["request_id"]: r for r in stats["requests"]}
    done = by_id[request_id]
    assert done["finishes_at"] == pytest.approx(done["submitted_at"] + 3)
    assert by_id[stuck]["finishes_at"] is None


def test_a_throttled_video_streams_no_faster_than_the_rate():
    with KlingSimulator(queued_seconds=0, processing_seconds=0, media_bytes=300_000) as sim:
        sim.configure(media_bytes_per_second=200_000)
        request_id = submit(sim)
        started = time.monotonic()
        body = requests.get(f"{sim.base_url}/media/{request_id}/sample_0.mp4", timeout=30).content
        elapsed = time.monotonic() - started
    assert len(body) == 300_000
    assert body[4:8] == b"ftyp"
    assert elapsed >= 1.0  # the padding after the clip: at least ~1.2 s at 200 kB/s


@pytest.mark.parametrize(
    ("changes", "text"),
    [
        ({"processing_seconds": 5, "processing_seconds_max": 1}, "processing_seconds_max"),
        ({"media_bytes": -1}, "media_bytes"),
        ({"media_bytes_per_second": 0}, "media_bytes_per_second"),
        ({"rate_limit": 0}, "rate_limit"),
        ({"rate_limit_seconds": 0}, "rate_limit_seconds"),
    ],
)
def test_bad_load_settings_are_refused(changes, text):
    with pytest.raises(ValueError, match=text):
        SimulatorConfig(**changes)

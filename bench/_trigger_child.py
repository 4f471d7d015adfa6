"""One trigger-benchmark run, in a process of its own: N triggers in one event loop, as a triggerer runs them.

Invoked by ``bench/triggers.py`` as
``python bench/_trigger_child.py VARIANT N POLL_INTERVAL DEADLINE PROCESSING_MIN PROCESSING_MAX``, with a
``kling_default`` connection to a simulator in the environment; prints one JSON line.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from _common import POLL_ROUTE, SimulatorProcess, peak_rss_kb, quiet_stdout, reset_peak_rss, rss_kb
from airflow.triggers.base import TriggerEvent

from airflow_provider_kling.api import KlingRequest
from airflow_provider_kling.hooks.kling import KlingAsyncHook, KlingHook
from airflow_provider_kling.transport.clients import CONNECTIONS_PER_SHARD
from airflow_provider_kling.triggers.kling import KlingStatusTrigger

PAYLOAD = {"first_frame": "https://example.com/product.png", "prompt": "bench", "duration": "5"}


class ClientPerPollHook(KlingAsyncHook):
    """Baseline (a): a new ``httpx.AsyncClient`` for every poll, as several upstream triggers do."""

    async def get_request(self, request_id: str) -> KlingRequest:
        headers = self.settings.headers("bench-client-per-poll")
        async with httpx.AsyncClient(base_url=self.settings.api_url, headers=headers, timeout=30) as client:
            resp = await client.get(f"/requests/{request_id}")
        resp.raise_for_status()
        return KlingRequest.from_record(resp.json())


class ToThreadHook:
    """Baseline (b): the sync hook (one ``requests.Session``) called through ``asyncio.to_thread``."""

    hook = KlingHook()

    async def get_request(self, request_id: str) -> KlingRequest:
        return await asyncio.to_thread(self.hook.get_request, request_id)


class BaselineTrigger(KlingStatusTrigger):
    """The provider's own polling loop, fed by a baseline hook instead of the shared client."""

    variant = "client-per-poll"

    async def run(self) -> AsyncIterator[TriggerEvent]:
        if self.variant == "to-thread":
            event = await self._wait(ToThreadHook())  # type: ignore[arg-type]
        else:
            async with ClientPerPollHook(self.kling_conn_id) as hook:
                event = await self._wait(hook)
        yield TriggerEvent(event)


async def submit_all(sim: SimulatorProcess, n: int, processing: tuple[float, float]) -> list[str]:
    """Create one request that is done at once (for the warm-up), then N that finish in ``processing``."""
    headers = {"Authorization": f"Bearer {sim.api_key}"}
    ids: list[str] = []
    gate = asyncio.Semaphore(50)
    async with httpx.AsyncClient(base_url=sim.api_url, headers=headers, timeout=60) as client:
        control = f"{sim.base_url}/_simulator/config"
        await client.post(control, json={"queued_seconds": 0, "processing_seconds": 0})
        await one_request(client, ids)
        low, high = processing
        await client.post(control, json={"processing_seconds": low, "processing_seconds_max": high})

        async def one() -> None:
            async with gate:
                await one_request(client, ids)

        await asyncio.gather(*(one() for _ in range(n)))
    return ids


async def one_request(client: httpx.AsyncClient, ids: list[str]) -> None:
    resp = await client.post("/requests", json={"model": "kling-3.0-turbo-i2v", "payload": PAYLOAD})
    resp.raise_for_status()
    ids.append(resp.json()["request_id"])


Stall = tuple[float, float, int, float]

#: Statuses after which a request never changes (what a bare loop needs to know to stop).
BARE_TERMINAL = frozenset({"success", "failed", "cancelled"})


async def bare_wait(client: httpx.AsyncClient, request_id: str, poll_interval: float, end_time: float) -> str:
    """Baseline (c), the physical limit: a keep-alive GET and a JSON parse per poll, nothing else."""
    while time.time() < end_time:
        status = (await client.get(f"/requests/{request_id}")).json()["status"]
        if status in BARE_TERMINAL:
            return str(status)
        await asyncio.sleep(poll_interval)
    return "timeout"


async def watch_stalls(
    stop: asyncio.Event, out: list[Stall], callbacks: CallbackTimer, tick: float = 0.005
) -> None:
    """
    Each time the loop woke a task that asked to sleep ``tick`` seconds: (asked at, woken at, how
    many callbacks the loop ran meanwhile, and their CPU seconds, collector pauses excluded).
    """
    while not stop.is_set():
        before = time.monotonic()  # the clock asyncio's loop.time() uses
        count, cpu = callbacks.count, callbacks.cpu
        await asyncio.sleep(tick)
        out.append((before + tick, time.monotonic(), callbacks.count - count, callbacks.cpu - cpu))


def make_trigger(variant: str, request_id: str, poll_interval: float, end_time: float) -> KlingStatusTrigger:
    if variant == "provider":
        return KlingStatusTrigger(request_id=request_id, end_time=end_time, poll_interval=poll_interval)
    trigger = BaselineTrigger(request_id=request_id, end_time=end_time, poll_interval=poll_interval)
    trigger.variant = variant
    return trigger


class GcTimer:
    """Times the collector's pauses: in a process holding all of Airflow, a full collection is long."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[tuple[float, float]]] = {0: [], 1: [], 2: []}
        self.total = 0.0
        self.cpu_total = 0.0
        self._started = 0.0
        self._started_cpu = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started, self._started_cpu = time.monotonic(), time.thread_time()
        else:
            now = time.monotonic()
            self.pauses[info["generation"]].append((self._started, now))
            self.total += now - self._started
            self.cpu_total += time.thread_time() - self._started_cpu

    def longest(self, generation: int) -> float:
        return max((end - start for start, end in self.pauses[generation]), default=0.0)

    def overlaps_full_collection(self, start: float, end: float) -> bool:
        return any(s < end and start < e for s, e in self.pauses[2])


class CallbackTimer:
    """The most CPU the loop spent in one callback (a task step, a timer...), minus collector pauses.

    That is the code's own blocking: what the triggers, the hook and httpx did without yielding.
    CPU time, not wall-clock time, so that the process being descheduled on a busy machine (the
    simulator runs beside it) is not counted as the code's.
    """

    def __init__(self, gc_timer: GcTimer) -> None:
        self.gc_timer = gc_timer
        self.longest = 0.0
        self.longest_what = ""
        self.count = 0
        self.cpu = 0.0
        self._original = asyncio.events.Handle._run

    def __enter__(self) -> CallbackTimer:
        original, timer = self._original, self

        def timed(handle: asyncio.events.Handle) -> None:
            started, collected = time.thread_time(), timer.gc_timer.cpu_total
            original(handle)
            own = time.thread_time() - started - (timer.gc_timer.cpu_total - collected)
            timer.count += 1
            timer.cpu += own
            if own > timer.longest:
                timer.longest, timer.longest_what = own, repr(handle)[:300]

        asyncio.events.Handle._run = timed  # type: ignore[method-assign,assignment]
        return self

    def __exit__(self, *exc_info: object) -> None:
        asyncio.events.Handle._run = self._original  # type: ignore[method-assign]


async def main(
    variant: str, n: int, poll_interval: float, deadline: float, processing: tuple[float, float]
) -> dict[str, Any]:
    frozen = variant == "provider-frozen"
    variant = "provider" if frozen else variant
    sim = SimulatorProcess.from_connection_env()
    warmup, *ids = await submit_all(sim, n, processing)
    # Warm up imports and code paths on a finished request, so the figures are of N triggers, not the first.
    async for _ in make_trigger(
        "provider" if variant == "bare-httpx" else variant, warmup, 0.05, time.time() + 60
    ).run():
        pass
    # The bare loop shares one keep-alive client with as many connections as one of the provider's;
    # made before the measurement, as the provider's is made by the warm-up.
    limits = httpx.Limits(
        max_connections=CONNECTIONS_PER_SHARD, max_keepalive_connections=CONNECTIONS_PER_SHARD
    )
    headers = {"Authorization": f"Bearer {sim.api_key}"}
    bare = httpx.AsyncClient(base_url=sim.api_url, headers=headers, timeout=30, limits=limits)
    polls_before = (await asyncio.to_thread(sim.control, "stats"))["counts"].get(POLL_ROUTE, 0)
    gc.collect()
    if frozen:
        # What Airflow's LocalExecutor and DAG processor do after start-up: full collections then
        # skip the ~170,000 objects Airflow loads, and scan only what the triggers created.
        gc.freeze()
    rss_before = rss_kb()
    reset_peak_rss()
    cpu_before = time.process_time()
    gc_timer = GcTimer()
    gc.callbacks.append(gc_timer)
    stalls: list[Stall] = []
    callbacks = CallbackTimer(gc_timer)
    stop = asyncio.Event()
    watcher = asyncio.create_task(watch_stalls(stop, stalls, callbacks))
    started = time.time()
    events: dict[str, tuple[float, str]] = {}

    async def wait(trigger: KlingStatusTrigger) -> None:
        async for event in trigger.run():
            events[trigger.request_id] = (time.time(), event.payload["status"])

    async def wait_bare(client: httpx.AsyncClient, rid: str) -> None:
        status = await bare_wait(client, rid, poll_interval, started + deadline)
        events[rid] = (time.time(), status)

    try:
        with callbacks:
            tasks = []
            for rid in ids:
                # As Airflow's TriggerRunner.create_triggers does: yield to the loop between two triggers.
                await asyncio.sleep(0)
                if variant == "bare-httpx":
                    tasks.append(asyncio.create_task(wait_bare(bare, rid)))
                    continue
                trigger = make_trigger(variant, rid, poll_interval, started + deadline)
                tasks.append(asyncio.create_task(wait(trigger)))
            await asyncio.gather(*tasks)
    finally:
        await bare.aclose()
    cpu = time.process_time() - cpu_before
    gc.callbacks.remove(gc_timer)
    stop.set()
    await watcher
    late = sorted(woken - due for due, woken, _, _ in stalls)
    # The longest stall with no full collection in it, and what the loop was busy with meanwhile.
    no_gc = max(
        (
            (woken - due, ran, cpu)
            for due, woken, ran, cpu in stalls
            if not gc_timer.overlaps_full_collection(due, woken)
        ),
        default=(0.0, 0, 0.0),
    )
    return {
        "variant": variant,
        "n": n,
        "started": started,
        "cpu_seconds": cpu,
        "rss_before_kb": rss_before,
        "peak_growth_kb": peak_rss_kb() - rss_before,
        "stall_max": late[-1] if late else 0.0,
        "stall_p99": late[int(len(late) * 0.99)] if late else 0.0,
        "stall_max_outside_full_gc": no_gc[0],
        "stall_max_outside_full_gc_callbacks": no_gc[1],
        "stall_max_outside_full_gc_cpu": no_gc[2],
        "longest_callback": callbacks.longest,
        "longest_callback_what": callbacks.longest_what,
        "full_gc_count": len(gc_timer.pauses[2]),
        "full_gc_longest": gc_timer.longest(2),
        "objects": len(gc.get_objects()),
        "events": events,
        "warmup_id": warmup,
        "polls_before": polls_before,
    }


if __name__ == "__main__":
    variant, n, interval, deadline, low, high = sys.argv[1:7]
    with quiet_stdout():  # stdout carries only the result
        result = asyncio.run(
            main(variant, int(n), float(interval), float(deadline), (float(low), float(high)))
        )
    print(json.dumps(result), flush=True)

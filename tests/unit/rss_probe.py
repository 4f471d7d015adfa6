"""Poll a server with a hook in a fresh process and report the process's peak memory.

Run by ``test_answer_memory.py`` as ``python -m tests.unit.rss_probe '<json>'``; the JSON gives
``base`` (the server), ``hook`` (``sync`` or ``async``), ``polls`` in a row, each of
``concurrent`` polls at once (async only) with ``retries``, and optionally bounds to set
(``MAX_ANSWER_BYTES``, ``MAX_HELD_ANSWER_BYTES``). Prints the peak RSS before and after the
polls (KiB) and each poll's error.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
from typing import Any


def peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


async def poll(args: dict[str, Any]) -> list[str]:
    from airflow_provider_kling.hooks.kling import KlingAsyncHook, KlingHook

    hook_args = {"retry_limit": args["retries"], "retry_max_wait": 0.01}

    def sync_poll(request_id: str) -> str:
        try:
            KlingHook(**hook_args).get_request(request_id)
        except Exception as err:
            return str(err)
        return "read"

    if args["hook"] == "sync":
        return [sync_poll(args["request_id"]) for _ in range(args["polls"])]
    errors: list[str] = []
    async with KlingAsyncHook(**hook_args) as hook:
        for _ in range(args["polls"]):
            polls = [hook.get_request(args["request_id"]) for _ in range(args["concurrent"])]
            results = await asyncio.gather(*polls, return_exceptions=True)
            errors += [str(result) if isinstance(result, BaseException) else "read" for result in results]
    return errors


def main() -> None:
    args = json.loads(sys.argv[1])
    connection = {"conn_type": "kling", "host": args["base"], "password": "gmi-test-key-0123456789"}
    os.environ["AIRFLOW_CONN_KLING_DEFAULT"] = json.dumps(connection)
    from airflow_provider_kling.transport import bounds

    for name in ("MAX_ANSWER_BYTES", "MAX_HELD_ANSWER_BYTES"):
        if name in args:
            setattr(bounds, name, args[name])
    # A first small poll loads everything a poll needs: what follows is the answers' own cost.
    warm = asyncio.run(poll({**args, "request_id": "small", "polls": 1, "concurrent": 1}))
    before = peak_kib()
    errors = asyncio.run(poll({**args, "request_id": "huge"}))
    print(json.dumps({"before": before, "after": peak_kib(), "warm": warm, "errors": errors}))


if __name__ == "__main__":
    main()

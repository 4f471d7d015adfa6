"""The one way the testing tools wait for a server to come up: poll a check until a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(check: Callable[[], T], timeout: float, what: str, interval: float = 0.5) -> T:
    """Call ``check`` every ``interval`` seconds until it returns something truthy, and return that.

    ``check`` may raise to give up early (a server process that exited will never come up); after
    ``timeout`` seconds a :class:`TimeoutError` names ``what`` was being waited for.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)

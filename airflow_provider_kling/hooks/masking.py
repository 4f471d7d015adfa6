"""Handing the forms of the API key to Airflow's log masker, once per key and process.

The masker is process-wide, and in a triggerer it also tells the supervisor (one message,
which wakes its loop into a round of Postgres queries). Every wait of a triggerer enters a
hook, so handing the same ~40 forms over per hook cost a message per wait where once per
process masks them all.
"""

from __future__ import annotations

import hashlib
from typing import Any

#: The masks handed over in this process, per masking function, by digest (not the key itself).
_handed: set[tuple[object, str]] = set()


def _first_time(mask: object, masks: list[Any]) -> tuple[object, str] | None:
    handed = (mask, hashlib.sha256("\0".join(map(str, masks)).encode()).hexdigest())
    return None if handed in _handed else handed


def mask_once(masks: list[Any]) -> None:
    """Mask ``masks`` in this process's logs (and its supervisor's), unless already done."""
    from airflow.sdk.log import mask_secret

    if (handed := _first_time(mask_secret, masks)) is not None:
        mask_secret(masks)
        _handed.add(handed)


async def amask_once(masks: list[Any]) -> None:
    """:func:`mask_once` without blocking the event loop (``amask_secret``, Airflow 3.2+)."""
    import airflow.sdk.log

    amask = getattr(airflow.sdk.log, "amask_secret", None)
    if amask is None:
        mask_once(masks)
    elif (handed := _first_time(amask, masks)) is not None:
        await amask(masks)
        _handed.add(handed)

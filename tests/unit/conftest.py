from __future__ import annotations

import io

import pytest


@pytest.fixture(scope="session")
def png_bytes() -> bytes:
    """A real 320x320 PNG: large enough for GMI's published 300 px minimum."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (320, 320), (200, 120, 40)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def no_retry_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries without the backoff sleeps, so retry tests take milliseconds."""
    from airflow_provider_kling import retries

    monkeypatch.setattr(retries.wait_server_hint, "__call__", lambda self, state: 0.0)

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


@pytest.fixture(autouse=True)
def _no_settle(no_settle: None) -> None:
    """Unit tests never pause before listing GMI's requests again (see ``no_settle``)."""

"""Media the simulator serves: a real MP4 per request and a thumbnail.

With the optional ``simulator-video`` extra (PyAV and Pillow) the clip is encoded from the submitted
base64 first frame with a gentle zoom; otherwise, or when the first frame is a URL (the simulator never
goes online), the bundled ``data/sample.mp4`` is served.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import importlib.resources
import importlib.util
import io
import logging
import os
import struct
import tempfile
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache, partial
from typing import Any

from airflow_provider_kling.api import I2V_MODEL, MAX_DURATION, MODEL_SPECS

log = logging.getLogger(__name__)

FPS = 12
SECONDS = 2
MAX_SIDE = 480
# A clip made for a request: its duration, and its longer side by resolution, small enough to
# encode in a moment yet telling 720p from 1080p.
SIDE_BY_RESOLUTION = {"720p": 320, "1080p": 480}
# What GMI's model doc says a request without them gets.
_DEFAULTS = MODEL_SPECS[I2V_MODEL].defaults
DEFAULT_DURATION = int(_DEFAULTS["duration"])
THUMBNAIL_SIDE = 320


@cache
def video_support() -> bool:
    """Whether PyAV and Pillow are importable, so clips can be made from the first frame."""
    return importlib.util.find_spec("av") is not None and importlib.util.find_spec("PIL") is not None


@cache
def thumbnail_extension() -> str:
    """``jpg`` when Pillow can encode JPEG, else ``png`` (written without dependencies)."""
    return "jpg" if importlib.util.find_spec("PIL") is not None else "png"


@cache
def fallback_video() -> bytes:
    """The bundled sample clip."""
    return (
        importlib.resources.files("airflow_provider_kling.testing").joinpath("data/sample.mp4").read_bytes()
    )


def image_source(payload: dict[str, Any]) -> str | None:
    """The first-frame image of a payload, whatever the model calls it."""
    for key in ("first_frame", "image"):
        value = payload.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def decode_image(source: str | None) -> bytes | None:
    """Decode a base64 (optionally ``data:`` URI) image; ``None`` for URLs and undecodable text."""
    if source is None or source.startswith(("http://", "https://")):
        return None
    if source.startswith("data:"):
        source = source.partition(",")[2]
    try:
        return base64.b64decode(source, validate=False) or None
    except (binascii.Error, ValueError):
        return None


@dataclass(frozen=True)
class ClipSpec:
    """What a request asked for, as the simulator renders it: seconds and the longer side."""

    seconds: int = SECONDS
    max_side: int = MAX_SIDE

    @classmethod
    def of(cls, payload: dict[str, Any]) -> ClipSpec:
        """The request's ``duration`` and ``resolution``, or the model's defaults."""
        try:
            seconds = min(MAX_DURATION, max(1, int(str(payload.get("duration", DEFAULT_DURATION)))))
        except ValueError:
            seconds = DEFAULT_DURATION
        default_side = SIDE_BY_RESOLUTION[_DEFAULTS["resolution"]]
        side = SIDE_BY_RESOLUTION.get(str(payload.get("resolution", "")).lower(), default_side)
        return cls(seconds, side)


def _even(value: float) -> int:
    return max(16, int(value) // 2 * 2)


def render_video(image: bytes, spec: ClipSpec = ClipSpec()) -> bytes:
    """
    Encode a 12 fps H.264 yuv420p MP4 zooming slowly into ``image`` (needs PyAV and Pillow):
    ``spec.seconds`` long, the image's aspect ratio, ``spec.max_side`` pixels on its longer side.
    """
    from PIL import Image, ImageOps

    side = spec.max_side
    with Image.open(io.BytesIO(image)) as opened:
        opened.draft("RGB", (side * 2, side * 2))  # JPEG shortcut: decode big photos at lower scale
        picture = ImageOps.exif_transpose(opened).convert("RGB")
    width, height = picture.size
    scale = side / max(width, height)
    size = (_even(width * scale), _even(height * scale))
    frames = []
    count = FPS * spec.seconds
    for index in range(count):
        progress = index / (count - 1)
        zoom = 1.0 + 0.12 * progress
        crop_w, crop_h = width / zoom, height / zoom
        left = (width - crop_w) * (0.5 + 0.3 * (progress - 0.5))
        top = (height - crop_h) / 2
        frames.append(
            picture.resize(size, Image.Resampling.BILINEAR, box=(left, top, left + crop_w, top + crop_h))
        )
    return _encode(frames, size)


def render_sample_video() -> bytes:
    """The moving test pattern stored as ``data/sample.mp4`` (needs PyAV and Pillow).

    Regenerate with ``python -c "from airflow_provider_kling.testing.media import write_sample_video;
    write_sample_video()"``.
    """
    from PIL import Image, ImageDraw

    size = (192, 108)
    colors = [(235, 235, 235), (235, 235, 16), (16, 235, 235), (16, 235, 16), (235, 16, 235), (235, 16, 16)]
    frames = []
    for index in range(FPS * SECONDS):
        frame = Image.new("RGB", size)
        draw = ImageDraw.Draw(frame)
        for bar, color in enumerate(colors):
            draw.rectangle((bar * 32, 0, bar * 32 + 31, 80), fill=color)
        x = index * (size[0] - 16) // (FPS * SECONDS - 1)
        draw.rectangle((x, 84, x + 15, 103), fill=(255, 255, 255))
        frames.append(frame)
    return _encode(frames, size)


def write_sample_video() -> None:
    """Rewrite the bundled ``data/sample.mp4`` next to this module."""
    from pathlib import Path

    (Path(__file__).parent / "data" / "sample.mp4").write_bytes(render_sample_video())


def _encode(frames: list[Any], size: tuple[int, int]) -> bytes:
    import av

    h264 = "libx264" in av.codecs_available
    to_frame: Callable[[Any], Any] = av.VideoFrame.from_image  # untyped in PyAV
    # faststart (index first, so players can start while downloading) rewrites the file by name in a
    # second pass, so it needs a real file rather than a BytesIO.
    with tempfile.TemporaryDirectory(prefix="kling-sim-") as tmp:
        path = os.path.join(tmp, "clip.mp4")
        with av.open(path, mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
            # MPEG-4 Part 2 is the fallback for FFmpeg builds without x264; both play everywhere.
            stream = container.add_stream("libx264" if h264 else "mpeg4", rate=FPS)
            stream.width, stream.height = size
            stream.pix_fmt = "yuv420p"
            stream.options = {"preset": "veryfast", "crf": "30"} if h264 else {"qscale": "6"}
            for image in frames:
                for packet in stream.encode(to_frame(image)):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        with open(path, "rb") as clip:
            return clip.read()


def render_thumbnail(image: bytes | None) -> tuple[bytes, str]:
    """A small thumbnail of ``image`` (or a test pattern) and its content type."""
    if thumbnail_extension() == "png":
        return _pattern_png(THUMBNAIL_SIDE, THUMBNAIL_SIDE * 9 // 16), "image/png"
    from PIL import Image

    picture = None
    if image is not None:
        try:
            with Image.open(io.BytesIO(image)) as opened:
                picture = opened.convert("RGB")
        except Exception:  # any undecodable upload gets the pattern
            picture = None
    if picture is None:
        picture = Image.open(io.BytesIO(_pattern_png(THUMBNAIL_SIDE, THUMBNAIL_SIDE * 9 // 16))).convert(
            "RGB"
        )
    picture.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=80)
    return out.getvalue(), "image/jpeg"


def _pattern_png(width: int, height: int) -> bytes:
    rows = b"".join(
        b"\x00" + bytes(v for x in range(width) for v in (x * 255 // width, y * 255 // height, 128))
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


class MediaStore:
    """Makes media in worker threads, once per distinct first frame, and caches the result.

    Keyed by a digest of the image source rather than the request id: load tests submit the same
    image thousands of times and should pay for one encode.
    """

    def __init__(self, max_entries: int = 256, max_workers: int = 2) -> None:
        self._max_entries = max_entries
        self._max_workers = max_workers
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[str, str], Future[Any]] = OrderedDict()
        self._executor: ThreadPoolExecutor | None = None

    async def video(self, payload: dict[str, Any]) -> bytes:
        """MP4 bytes for a request's payload: its first frame, duration and resolution."""
        image = decode_image(image_source(payload))
        spec = ClipSpec.of(payload)
        if image is None or not video_support():
            why = (
                "the simulator-video extra (PyAV and Pillow) is not installed"
                if not video_support()
                else "the first frame is a URL, which the simulator never fetches"
            )
            log.info(
                "Serving the bundled %d s sample clip instead of a %d s clip of the image: %s",
                SECONDS,
                spec.seconds,
                why,
            )
            return fallback_video()
        make = partial(_video_or_fallback, spec=spec)
        result: bytes = await self._get(f"video-{spec.seconds}s-{spec.max_side}px", image, make)
        return result

    async def thumbnail(self, source: str | None) -> tuple[bytes, str]:
        """Thumbnail bytes and content type for a first-frame source."""
        result: tuple[bytes, str] = await self._get("thumbnail", decode_image(source), render_thumbnail)
        return result

    async def _get(self, kind: str, image: bytes | None, make: Any) -> Any:
        key = (kind, hashlib.sha256(image or b"").hexdigest())
        with self._lock:
            future = self._cache.get(key)
            if future is None:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(
                        self._max_workers, thread_name_prefix="kling-sim-media"
                    )
                future = self._executor.submit(make, image)
                self._cache[key] = future
                while len(self._cache) > self._max_entries:
                    self._cache.popitem(last=False)
            else:
                self._cache.move_to_end(key)
        return await asyncio.wrap_future(future)

    def clear(self) -> None:
        """Forget cached media."""
        with self._lock:
            self._cache.clear()

    def close(self) -> None:
        """Stop the worker threads without waiting for running encodes."""
        with self._lock:
            executor, self._executor = self._executor, None
            self._cache.clear()
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


def _video_or_fallback(image: bytes, spec: ClipSpec = ClipSpec()) -> bytes:
    try:
        return render_video(image, spec)
    except Exception as exc:  # a bad upload must still yield a playable answer
        log.warning("Could not encode a clip from the submitted image (%s); serving the sample clip", exc)
        return fallback_video()

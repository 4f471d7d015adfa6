"""Per-model payload specs, image size limits and the price table (Airflow-free API package)."""

from __future__ import annotations

import base64

import pytest

from airflow_provider_kling.api import (
    MODEL_SPECS,
    KlingValidationError,
    estimate_cost,
    prepare_first_frame,
    prepare_payload,
)
from airflow_provider_kling.api.dimensions import check_image_size, image_size
from tests.helpers import make_jpeg_header, make_png

# --- image size from the header ---------------------------------------------------------


@pytest.mark.parametrize(("width", "height"), [(300, 300), (1280, 720), (301, 750)])
def test_png_and_jpeg_sizes_are_read_from_the_header(width, height):
    assert image_size(make_png(width, height)) == (width, height)
    assert image_size(make_jpeg_header(width, height)) == (width, height)


def test_a_real_jpeg_size_is_read_past_its_other_segments():
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (640, 360)).save(buf, format="JPEG", quality=80, progressive=True, dpi=(72, 72))
    assert image_size(buf.getvalue()) == (640, 360)


@pytest.mark.parametrize("data", [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xd9", b"GIF89a"])
def test_an_unreadable_header_has_no_size(data):
    assert image_size(data) is None


@pytest.mark.parametrize(
    ("width", "height", "problem"),
    [
        (299, 600, "299x600 px"),
        (600, 299, "600x299 px"),
        (751, 300, "aspect ratio 2.50"),  # 2.503:1
        (300, 751, "aspect ratio 0.40"),
    ],
)
def test_images_outside_the_published_limits_are_refused(width, height, problem):
    with pytest.raises(
        KlingValidationError, match=f"Invalid first_frame: .*{problem}.*Allowed: an image at least 300"
    ):
        check_image_size(make_png(width, height), source="the image")


@pytest.mark.parametrize(("width", "height"), [(300, 300), (750, 300), (300, 750), (1920, 1080)])
def test_images_at_the_limits_are_accepted(width, height):
    assert check_image_size(make_png(width, height), source="the image") == (width, height)


def test_a_small_image_is_refused_in_every_form(tmp_path):
    small = make_png(2, 2)
    path = tmp_path / "small.png"
    path.write_bytes(small)
    for value in (small, base64.b64encode(small).decode(), str(path)):
        with pytest.raises(KlingValidationError, match="2x2 px"):
            prepare_first_frame(value)


def test_a_url_is_not_checked_because_gmi_fetches_it():
    assert prepare_first_frame("https://example.com/tiny.png")[0] == "https://example.com/tiny.png"


# --- per-model payload specs --------------------------------------------------------------


def test_i2v_payload_is_checked_and_normalised(png_bytes):
    prepared = prepare_payload(
        " kling-3.0-turbo-i2v ", {"first_frame": png_bytes, "duration": 7, "resolution": "1080P"}
    )
    assert prepared.validated
    assert prepared.model == "kling-3.0-turbo-i2v"
    assert prepared.payload == {
        "first_frame": base64.b64encode(png_bytes).decode(),
        "resolution": "1080p",
        "duration": "7",
    }
    assert "PNG image 320x320" in prepared.images["first_frame"]
    assert prepared.payload["first_frame"] not in prepared.log_line()


def test_t2v_needs_a_prompt_and_checks_the_aspect_ratio():
    with pytest.raises(KlingValidationError, match=r"Invalid prompt: kling-3\.0-turbo-t2v requires it"):
        prepare_payload("kling-3.0-turbo-t2v", {"duration": "5"})
    with pytest.raises(KlingValidationError, match="Invalid aspect_ratio: '4:3' is not supported"):
        prepare_payload("kling-3.0-turbo-t2v", {"prompt": "a fox", "aspect_ratio": "4:3"})
    prepared = prepare_payload("kling-3.0-turbo-t2v", {"prompt": "a fox", "aspect_ratio": "9:16"})
    assert prepared.payload == {"prompt": "a fox", "aspect_ratio": "9:16"}


@pytest.mark.parametrize(
    ("field", "value", "suggestion"),
    [("aspect_ratio", "16x9", "'16:9'"), ("aspect_ratio", "9/16", "'9:16'"), ("sound", "of", "'off'")],
)
def test_a_near_miss_option_gets_a_suggestion(field, value, suggestion):
    if field == "aspect_ratio":
        model, payload = "kling-3.0-turbo-t2v", {"prompt": "a fox", field: value}
    else:
        model, payload = "kling-v3-image-to-video", {"image": "https://example.com/a.png", field: value}
    with pytest.raises(KlingValidationError, match=f"Invalid {field}: .* Did you mean {suggestion}\\?$"):
        prepare_payload(model, payload)


def test_v3_image_to_video_takes_a_tail_frame_negative_prompt_and_sound(png_bytes, tmp_path):
    tail = tmp_path / "tail.png"
    tail.write_bytes(png_bytes)
    prepared = prepare_payload(
        "kling-v3-image-to-video",
        {
            "prompt": "the mug turns",
            "image": png_bytes,
            "image_tail": str(tail),
            "negative_prompt": "blur",
            "sound": True,
            "duration": "10",
        },
    )
    assert prepared.payload["sound"] == "on"
    assert prepared.payload["image_tail"] == base64.b64encode(png_bytes).decode()
    assert set(prepared.images) == {"image", "image_tail"}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"prompt": "x"}, "Invalid image: kling-v3-image-to-video requires it"),
        ({"prompt": "x", "image": "https://e.x/a.png", "sound": "loud"}, "Invalid sound: 'loud'"),
        (
            {"prompt": "x", "image": "https://e.x/a.png", "negative_prompt": "n" * 2501},
            "Invalid negative_prompt",
        ),
        (
            {"prompt": "x", "image": "https://e.x/a.png", "image_tail": "ftp://e.x/b.png"},
            "Invalid image_tail",
        ),
        (
            {"prompt": "x", "image": "https://e.x/a.png", "resolution": "720p"},
            "resolution is not a parameter",
        ),
        ({"prompt": "x", "image": make_png(10, 10)}, "Invalid image: .*10x10 px"),
    ],
)
def test_v3_image_to_video_refuses_bad_payloads(payload, message):
    with pytest.raises(KlingValidationError, match=message):
        prepare_payload("kling-v3-image-to-video", payload)


def test_an_unknown_model_is_sent_as_given():
    payload = {"prompt": "x", "mode": "pro", "cfg_scale": 0.5}
    prepared = prepare_payload("kling-v2-6", payload)
    assert not prepared.validated
    assert prepared.payload == payload


def test_a_payload_must_be_a_mapping():
    with pytest.raises(KlingValidationError, match="Invalid payload: expected a mapping"):
        prepare_payload("kling-v2-6", ["prompt"])


def test_every_spec_is_documented():
    assert set(MODEL_SPECS) == {"kling-3.0-turbo-i2v", "kling-3.0-turbo-t2v", "kling-v3-image-to-video"}
    assert all(spec.description for spec in MODEL_SPECS.values())


# --- prices -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "payload", "cost"),
    [
        ("kling-3.0-turbo-i2v", {"resolution": "720p", "duration": "5"}, 0.56),
        ("kling-3.0-turbo-i2v", {"resolution": "1080p", "duration": "15"}, 2.1),
        ("kling-3.0-turbo-t2v", {"resolution": "1080p", "duration": 10}, 1.4),
        ("kling-3.0-turbo-t2v", {}, 0.56),  # GMI's defaults: 720p, 5 s
        ("kling-v3-image-to-video", {"duration": "5"}, None),
        ("kling-3.0-turbo-i2v", {"duration": "five"}, None),
        # Read as the duration check reads it, so the cap and the records agree.
        ("kling-3.0-turbo-i2v", {"duration": 5.0}, 0.56),
        ("kling-3.0-turbo-i2v", {"duration": " 5 "}, 0.56),
        ("kling-3.0-turbo-i2v", {"duration": 5.5}, None),
    ],
)
def test_estimate_cost_from_the_price_table(model, payload, cost):
    assert estimate_cost(model, payload) == (pytest.approx(cost) if cost is not None else None)

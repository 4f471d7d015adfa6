"""The Airflow-free core: record parsing, input validation, images and connection settings."""

from __future__ import annotations

import base64
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from airflow_provider_kling.api import (
    KlingAPIError,
    KlingRequest,
    KlingValidationError,
    classify_first_frame,
    connection_settings,
    estimate_cost,
    prepare_first_frame,
    validate_duration,
    validate_model,
    validate_prompt,
    validate_resolution,
)
from airflow_provider_kling.api.records import classify_status

VIDEO = "https://storage.googleapis.com/bucket/sample_0.mp4"
THUMB = "https://storage.googleapis.com/bucket/thumb.jpg"
SECRET = "sk-very-SECRET-key-42"


def record(**fields):
    return {"request_id": "req-1", "status": "success", **fields}


# --------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "outcome",
    [
        pytest.param({"media_urls": [{"id": "0", "url": VIDEO}], "thumbnail_image_url": THUMB}, id="objects"),
        pytest.param({"media_urls": [VIDEO]}, id="strings"),
        pytest.param({"video_url": VIDEO, "thumbnail_image_url": THUMB}, id="video_url"),
        pytest.param({"url": VIDEO}, id="flat-url"),
    ],
)
def test_every_documented_outcome_shape_gives_the_video_url(outcome):
    req = KlingRequest.from_record(record(outcome=outcome))
    assert req.media_urls == [VIDEO]
    assert req.verdict == "success"
    assert req.is_terminal
    assert req.error is None
    assert req.thumbnail_url == outcome.get("thumbnail_image_url")


def test_several_media_urls_keep_their_order_and_a_repeated_video_url_is_not_doubled():
    other = "https://storage.googleapis.com/bucket/sample_1.mp4"
    outcome = {"media_urls": [{"id": "0", "url": VIDEO}, other], "video_url": VIDEO}
    assert KlingRequest.from_record(record(outcome=outcome)).media_urls == [VIDEO, other]


def test_a_terminal_submit_answer_is_parsed_as_finished():
    submit_answer = {
        "request_id": "550e8400-e29b-41d4-a716-446655440000",
        "model": "kling-3.0-turbo-i2v",
        "status": "success",
        "outcome": {"media_urls": [VIDEO]},
        "created_at": 1750442925,
    }
    req = KlingRequest.from_record(submit_answer)
    assert req.is_terminal
    assert req.verdict == "success"
    assert req.model == "kling-3.0-turbo-i2v"
    assert req.media_urls == [VIDEO]
    assert req.raw == submit_answer


def test_the_documented_submit_and_get_answers_are_running():
    submit_answer = {
        "request_id": "550e8400-e29b-41d4-a716-446655440000",
        "model": "kling-3.0-turbo-i2v",
        "status": "queued",
        "created_at": 1750442925,
        "updated_at": 1750442925,
        "queued_at": 1750442925,
    }
    req = KlingRequest.from_record(submit_answer)
    assert req.verdict == "running"
    assert not req.is_terminal
    assert req.media_urls == []
    get_answer = {**submit_answer, "status": "processing", "payload": {}, "outcome": None}
    req = KlingRequest.from_record(get_answer)
    assert (req.verdict, req.media_urls, req.error) == ("running", [], None)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ("created", "running"),
        ("queued", "running"),
        ("dispatched", "running"),
        ("processing", "running"),
        ("success", "success"),
        ("failed", "failed"),
        ("cancelled", "failed"),
        ("SUCCESS", "success"),
        (" Failed ", "failed"),
        ("some-new-state", "running"),
    ],
)
def test_statuses_are_classified(status, outcome):
    assert classify_status(status) == outcome
    req = KlingRequest.from_record({"request_id": "r", "status": status})
    assert req.verdict == outcome
    assert req.is_terminal is (outcome != "running")


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        pytest.param({"outcome": {"error": "NSFW content"}}, "NSFW content", id="outcome-object-error"),
        pytest.param({"outcome": {"message": "GPU lost"}}, "GPU lost", id="outcome-object-message"),
        pytest.param({"outcome": "model crashed"}, "model crashed", id="outcome-string"),
        pytest.param({"error": "bad image"}, "bad image", id="top-level-error"),
        pytest.param({"reason": "timed out in queue"}, "timed out in queue", id="reason"),
    ],
)
def test_the_failure_text_is_found_wherever_the_record_keeps_it(fields, error):
    req = KlingRequest.from_record({"request_id": "r", "status": "failed", **fields})
    assert req.verdict == "failed"
    assert req.error == error
    assert req.media_urls == []


def test_an_unknown_outcome_object_on_failure_is_kept_as_text():
    req = KlingRequest.from_record({"request_id": "r", "status": "failed", "outcome": {"code": 42}})
    assert req.error is not None
    assert "42" in req.error


def test_seconds_and_milliseconds_timestamps_give_the_same_time():
    expected = datetime(2025, 6, 20, 18, 8, 45, tzinfo=timezone.utc)
    in_seconds = KlingRequest.from_record(record(created_at=1750442925))
    in_ms = KlingRequest.from_record(record(created_at=1750442925000, updated_at=1750442925500))
    assert in_seconds.created_at == expected
    assert in_ms.created_at == expected
    assert in_ms.updated_at == datetime(2025, 6, 20, 18, 8, 45, 500000, tzinfo=timezone.utc)
    assert in_seconds.created_at.tzinfo is not None


def test_unusable_timestamps_are_none_not_errors():
    req = KlingRequest.from_record(record(created_at="yesterday", updated_at=True, queued_at=1e300))
    assert (req.created_at, req.updated_at, req.queued_at) == (None, None, None)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        pytest.param(["not", "a", "dict"], "Expected a JSON object", id="list"),
        pytest.param("oops", "Expected a JSON object", id="string"),
        pytest.param(None, "Expected a JSON object", id="none"),
        pytest.param({"status": "queued"}, "without a request_id", id="no-request-id"),
        pytest.param({"request_id": "", "status": "queued"}, "without a request_id", id="blank-request-id"),
        pytest.param({"request_id": "r-9"}, "without a status for request r-9", id="no-status"),
        pytest.param({"request_id": "r-9", "status": 3}, "without a status", id="status-not-text"),
    ],
)
def test_malformed_records_raise_a_clear_api_error_never_key_error(body, words):
    with pytest.raises(KlingAPIError, match=words) as info:
        KlingRequest.from_record(body)
    assert not isinstance(info.value, KeyError | TypeError)


def test_the_result_of_a_success_is_json_safe():
    from airflow_provider_kling.api.events import event_from_record, result_of

    req = KlingRequest.from_record(record(outcome={"media_urls": [VIDEO]}))
    assert result_of(event_from_record(req)) == {
        "request_id": "req-1",
        "status": "success",
        "media_urls": [VIDEO],
        "outcome": {"media_urls": [VIDEO]},
    }


# --------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------


def test_a_prompt_of_2500_characters_is_accepted_and_2501_is_not():
    assert validate_prompt("x" * 2500) == "x" * 2500
    with pytest.raises(KlingValidationError, match="prompt") as info:
        validate_prompt("x" * 2501)
    assert info.value.field == "prompt"
    assert "2500" in str(info.value)


def test_a_blank_or_missing_prompt_is_none_and_a_non_text_prompt_is_refused():
    assert validate_prompt(None) is None
    assert validate_prompt("   ") is None
    with pytest.raises(KlingValidationError, match="prompt"):
        validate_prompt(42)


@pytest.mark.parametrize(("value", "expected"), [("720p", "720p"), ("1080p", "1080p"), (" 1080P ", "1080p")])
def test_supported_resolutions(value, expected):
    assert validate_resolution(value) == expected


@pytest.mark.parametrize("value", ["480p", "4k", "", 720, None])
def test_unsupported_resolutions_name_the_field_and_the_choices(value):
    with pytest.raises(KlingValidationError) as info:
        validate_resolution(value)
    assert info.value.field == "resolution"
    assert "'720p'" in str(info.value)
    assert "'1080p'" in str(info.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(5, "5"), (3, "3"), (15, "15"), ("10", "10"), (" 7 ", "7"), (5.0, "5")],
)
def test_valid_durations_become_the_string_the_api_wants(value, expected):
    assert validate_duration(value) == expected


@pytest.mark.parametrize("value", [True, False, 5.5, "abc", "5.5", "", 2, 16, "16", -5, None, [5]])
def test_invalid_durations_name_the_field_and_the_allowed_range(value):
    with pytest.raises(KlingValidationError) as info:
        validate_duration(value)
    message = str(info.value)
    assert info.value.field == "duration"
    assert message.startswith("Invalid duration:")
    assert "from 3 to 15" in message


def test_model_ids_keep_their_case_and_lose_surrounding_blanks():
    assert validate_model(" kling-3.0-turbo-i2v ") == "kling-3.0-turbo-i2v"
    assert validate_model("Kling-3.0-Turbo-I2V") == "Kling-3.0-Turbo-I2V"


@pytest.mark.parametrize("value", ["", "   ", "kling 3", None, 3])
def test_invalid_model_ids_are_refused(value):
    with pytest.raises(KlingValidationError, match="model") as info:
        validate_model(value)
    assert info.value.field == "model"


@pytest.mark.parametrize(
    ("model", "payload", "cost"),
    [
        ("kling-3.0-turbo-i2v", {"duration": "5", "resolution": "720p"}, 0.56),
        ("kling-3.0-turbo-i2v", {"duration": "10", "resolution": "1080p"}, 1.40),
        ("kling-3.0-turbo-i2v", {}, 0.56),  # the API's defaults: 5 s at 720p
        ("kling-3.0-turbo-t2v", {"duration": 15, "resolution": "1080p"}, 2.10),
        ("some-other-model", {"duration": "5"}, None),
    ],
)
def test_estimate_cost(model, payload, cost):
    result = estimate_cost(model, payload)
    if cost is None:
        assert result is None
    else:
        assert result == pytest.approx(cost)


# --------------------------------------------------------------------------------------
# first_frame
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("https://example.com/start_frame.jpg", "url"),
        ("HTTP://127.0.0.1:8000/a.png", "url"),
        ("data:image/png;base64,iVBORw0KGgo=", "data_uri"),
        ("/9j/4AAQSkZJRg==", "base64"),
        ("iVBORw0KGgoAAAANSUhEUg==", "base64"),
        ("A" * 300, "base64"),
        ("/tmp/frame.png", "path"),
        ("frames/first.jpg", "path"),
        ("~/frame.jpeg", "path"),
    ],
)
def test_classify_first_frame(value, kind):
    assert classify_first_frame(value) == kind


@pytest.mark.parametrize(
    ("value", "scheme"),
    [("file:///tmp/frame.png", "file"), ("ftp://example.com/frame.png", "ftp"), ("s3://b/k.png", "s3")],
)
def test_schemes_gmi_cannot_fetch_are_refused(value, scheme):
    with pytest.raises(KlingValidationError, match=f"the {scheme}:// scheme cannot be fetched") as info:
        classify_first_frame(value)
    assert info.value.field == "first_frame"
    assert "ObjectStoragePath" in str(info.value)
    with pytest.raises(KlingValidationError):
        prepare_first_frame(value)


@pytest.mark.parametrize("value", ["", "   ", "https://"])
def test_empty_first_frame_and_url_without_host_are_refused(value):
    with pytest.raises(KlingValidationError, match="first_frame"):
        classify_first_frame(value)


def test_a_url_is_sent_as_it_is():
    sent, description = prepare_first_frame(" https://example.com/a.jpg ")
    assert sent == "https://example.com/a.jpg"
    assert description == "URL https://example.com/a.jpg"


def assert_safe_description(description: str, b64: str) -> None:
    assert b64 not in description
    assert b64[:16] not in description
    assert len(description) < 300


@pytest.mark.parametrize("mime", ["image/jpeg", "image/png", "image/jpg", "IMAGE/PNG"])
def test_jpeg_and_png_data_uris_are_sent_as_raw_base64(mime, png_bytes, jpeg_bytes):
    data = png_bytes if "png" in mime.lower() else jpeg_bytes
    b64 = base64.b64encode(data).decode()
    sent, description = prepare_first_frame(f"data:{mime};base64,{b64}")
    assert sent == b64
    assert not sent.startswith("data:")
    assert ("PNG" if "png" in mime.lower() else "JPEG") in description
    assert_safe_description(description, b64)


def test_a_data_uri_with_another_image_type_is_refused(png_bytes):
    b64 = base64.b64encode(b"GIF89a" + b"\x00" * 20).decode()
    with pytest.raises(KlingValidationError, match="image/gif") as info:
        prepare_first_frame(f"data:image/gif;base64,{b64}")
    assert b64 not in str(info.value)


def test_a_data_uri_that_is_not_base64_is_refused():
    with pytest.raises(KlingValidationError, match="not base64-encoded"):
        prepare_first_frame("data:image/png,%89PNG%0D%0A")


def test_a_png_data_uri_holding_a_jpeg_is_sent_as_what_it_really_is(jpeg_bytes):
    b64 = base64.b64encode(jpeg_bytes).decode()
    _, description = prepare_first_frame(f"data:image/png;base64,{b64}")
    assert description.startswith("JPEG image")


@pytest.mark.parametrize("kind", ["png", "jpeg"])
def test_raw_base64_is_checked_and_sent(kind, png_bytes, jpeg_bytes):
    data = png_bytes if kind == "png" else jpeg_bytes
    b64 = base64.b64encode(data).decode()
    sent, description = prepare_first_frame(b64)
    assert sent == b64
    assert base64.b64decode(sent) == data
    assert description.startswith(f"{kind.upper()} image 320x320, {len(data):,} bytes, sha256 ")
    assert_safe_description(description, b64)


def test_base64_with_line_breaks_is_accepted(png_bytes):
    b64 = base64.encodebytes(png_bytes).decode()  # wrapped at 76 characters
    assert "\n" in b64.strip()
    sent, _ = prepare_first_frame(b64)
    assert sent == base64.b64encode(png_bytes).decode()


def test_broken_base64_is_refused_without_echoing_it():
    broken = "/9j/4AAQSkZJRg*&^%not-base64"
    with pytest.raises(KlingValidationError, match="not valid base64") as info:
        prepare_first_frame(broken)
    assert info.value.field == "first_frame"
    assert broken not in str(info.value)


def test_base64_of_something_that_is_not_an_image_is_refused():
    b64 = base64.b64encode(b"%PDF-1.7 " * 40).decode()
    assert classify_first_frame(b64) == "base64"
    with pytest.raises(KlingValidationError, match="not a JPEG or PNG"):
        prepare_first_frame(b64)


@pytest.mark.parametrize("as_type", [str, Path])
def test_a_local_file_is_read_and_sent_as_base64(tmp_path, png_bytes, as_type):
    path = tmp_path / "frame.png"
    path.write_bytes(png_bytes)
    sent, description = prepare_first_frame(as_type(path))
    assert base64.b64decode(sent) == png_bytes
    assert description.startswith("PNG image")
    assert str(path) in description
    assert_safe_description(description, sent)


def test_the_image_type_comes_from_the_content_not_the_name(tmp_path, jpeg_bytes):
    path = tmp_path / "frame.png"  # a JPEG under a PNG name
    path.write_bytes(jpeg_bytes)
    _, description = prepare_first_frame(str(path))
    assert description.startswith("JPEG image")


def test_a_plain_os_pathlike_is_read(tmp_path, png_bytes):
    path = tmp_path / "frame.png"
    path.write_bytes(png_bytes)

    class Located:  # os.PathLike without pathlib's methods, like os.DirEntry
        def __fspath__(self) -> str:
            return str(path)

    sent, _ = prepare_first_frame(Located())
    assert base64.b64decode(sent) == png_bytes


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(KlingValidationError, match="does not exist") as info:
        prepare_first_frame(str(tmp_path / "nope.png"))
    assert info.value.field == "first_frame"


def test_a_directory_is_refused(tmp_path):
    with pytest.raises(KlingValidationError, match="is a directory"):
        prepare_first_frame(str(tmp_path))


def test_an_empty_file_is_refused(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(KlingValidationError, match="is empty"):
        prepare_first_frame(path)


def test_a_file_that_is_not_an_image_is_refused(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("just some text, not a picture")
    with pytest.raises(KlingValidationError, match="not a JPEG or PNG image"):
        prepare_first_frame(path)


@pytest.mark.parametrize(
    ("header", "name"),
    [
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "WebP"),
        (b"GIF89a\x01\x00\x01\x00", "GIF"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", "HEIC"),
    ],
)
def test_an_image_of_another_format_is_named_by_its_format_not_its_file_name(tmp_path, header, name):
    path = tmp_path / "product.jpg"
    path.write_bytes(header + bytes(64))
    with pytest.raises(KlingValidationError) as caught:
        prepare_first_frame(path)
    assert f"product.jpg is a {name} image (by content), whatever its name says" in str(caught.value)
    assert f"convert the {name} file to PNG or JPEG first" in str(caught.value)


@pytest.mark.parametrize(
    ("call", "value", "suggestion"),
    [
        (validate_resolution, "1080", "Did you mean '1080p'?"),
        (validate_resolution, "720", "Did you mean '720p'?"),
        (validate_resolution, "1080P0", "Did you mean '1080p'?"),
        (validate_duration, "10s", "Did you mean 10?"),
        (validate_duration, "5 seconds", "Did you mean 5?"),
    ],
)
def test_a_near_miss_gets_a_suggestion(call, value, suggestion):
    with pytest.raises(KlingValidationError) as caught:
        call(value)
    assert str(caught.value).endswith(suggestion)


@pytest.mark.parametrize(("call", "value"), [(validate_resolution, "4k"), (validate_duration, "ten")])
def test_a_value_far_from_every_allowed_one_gets_no_guess(call, value):
    with pytest.raises(KlingValidationError) as caught:
        call(value)
    assert "Did you mean" not in str(caught.value)


def test_an_oversized_file_is_refused_before_it_is_read(tmp_path, monkeypatch, png_bytes):
    path = tmp_path / "huge.png"
    with path.open("wb") as out:  # sparse: 10 MB + 1 byte that take no disk space
        out.write(png_bytes)
        out.truncate(10 * 1024 * 1024 + 1)

    def no_reading(self):
        raise AssertionError("the file was read before its size was checked")

    monkeypatch.setattr(Path, "read_bytes", no_reading)
    with pytest.raises(KlingValidationError, match="10,485,761 bytes") as info:
        prepare_first_frame(path)
    assert "10 MB" in str(info.value)


def test_a_file_of_exactly_10_mb_is_accepted(tmp_path, png_bytes):
    path = tmp_path / "big.png"
    with path.open("wb") as out:
        out.write(png_bytes)
        out.truncate(10 * 1024 * 1024)
    _, description = prepare_first_frame(path)
    assert "10,485,760 bytes" in description


def test_an_unreadable_file_is_refused(tmp_path, png_bytes, monkeypatch):
    path = tmp_path / "locked.png"
    path.write_bytes(png_bytes)

    def denied(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(KlingValidationError, match=r"cannot be read \(Permission denied\)"):
        prepare_first_frame(path)


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview])
def test_bytes_are_accepted(wrap, png_bytes):
    sent, description = prepare_first_frame(wrap(png_bytes))
    assert base64.b64decode(sent) == png_bytes
    assert description.startswith("PNG image")


def test_oversized_bytes_are_refused(png_bytes):
    with pytest.raises(KlingValidationError, match="10 MB"):
        prepare_first_frame(png_bytes + b"\x00" * (10 * 1024 * 1024))


def test_an_object_storage_path_is_read(tmp_path, jpeg_bytes):
    from airflow.sdk import ObjectStoragePath

    path = tmp_path / "frame.jpg"
    path.write_bytes(jpeg_bytes)
    sent, description = prepare_first_frame(ObjectStoragePath(f"file://{path}"))
    assert base64.b64decode(sent) == jpeg_bytes
    assert description.startswith("JPEG image")
    assert_safe_description(description, sent)


def test_any_object_with_read_bytes_is_read(png_bytes):
    class Blob:
        def exists(self):
            return True

        def is_dir(self):
            return False

        def stat(self):
            return os.stat_result((0, 0, 0, 0, 0, 0, len(png_bytes), 0, 0, 0))

        def read_bytes(self):
            return png_bytes

    sent, _ = prepare_first_frame(Blob())
    assert base64.b64decode(sent) == png_bytes


@pytest.mark.parametrize("value", [42, None, ["a.png"]])
def test_unsupported_types_are_refused(value):
    with pytest.raises(KlingValidationError, match="is not supported"):
        prepare_first_frame(value)


# --------------------------------------------------------------------------------------
# Connection settings
# --------------------------------------------------------------------------------------


def settings(**fields):
    return connection_settings(conn_id="kling_default", **{"password": SECRET, "host": None, **fields})


@pytest.mark.parametrize("password", [None, "", "   "])
def test_a_missing_api_key_is_refused_with_a_pointer_to_the_password_field(password):
    with pytest.raises(KlingValidationError) as info:
        connection_settings(conn_id="kling_default", password=password, host="https://gmi.test")
    message = str(info.value)
    assert "kling_default" in message
    assert "Password field" in message
    assert "API key is missing" in message


def test_errors_about_other_fields_never_contain_the_key():
    for fields in (
        {"host": "http://gmi.example.com"},
        {"host": "ftp://gmi.test"},
        {"extra": {"timeout": "soon"}},
        {"extra": {"organization_id": 7}},
    ):
        with pytest.raises(KlingValidationError) as info:
            settings(**fields)
        assert SECRET not in str(info.value)
        assert SECRET not in repr(info.value)


def test_the_default_base_url_is_gmi_cloud():
    s = settings()
    assert s.base_url == "https://console.gmicloud.ai"
    assert s.api_url == "https://console.gmicloud.ai/api/v1/ie/requestqueue/apikey"
    assert s.api_key == SECRET
    assert s.timeout == 30.0
    assert s.organization_id is None


@pytest.mark.parametrize(
    ("host", "port", "base_url"),
    [
        ("gmi.test", None, "https://gmi.test"),
        ("https://gmi.test", None, "https://gmi.test"),
        ("https://gmi.test/", None, "https://gmi.test"),
        ("gmi.test", 8443, "https://gmi.test:8443"),
        ("https://gmi.test:9000", 9000, "https://gmi.test:9000"),
        ("https://gmi.test", 443, "https://gmi.test"),
        (None, 443, "https://console.gmicloud.ai"),
        ("http://127.0.0.1:8765", 8765, "http://127.0.0.1:8765"),
        ("https://gmi.test/api/v1/ie/requestqueue/apikey", None, "https://gmi.test"),
        ("https://gmi.test/api/v1/ie/requestqueue/apikey/", None, "https://gmi.test"),
        ("  https://gmi.test  ", None, "https://gmi.test"),
        ("http://127.0.0.1:8765", None, "http://127.0.0.1:8765"),
        ("http://localhost", 8765, "http://localhost:8765"),
        ("http://[::1]:8765", None, "http://[::1]:8765"),
    ],
)
def test_host_forms(host, port, base_url):
    s = settings(host=host, port=port)
    assert s.base_url == base_url
    assert s.api_url == base_url + "/api/v1/ie/requestqueue/apikey"


@pytest.mark.parametrize(
    ("host", "port", "problem"),
    [
        ("https://gmi.test:9000", 8443, "8443 differs from the port in the Base URL (9000)"),
        (None, 8443, "8443 differs from the port in the Base URL (443)"),
        ("gmi.test", 70000, "70000 is not a TCP port"),
    ],
)
def test_a_port_that_contradicts_the_base_url_is_refused(host, port, problem):
    # Port is on the form only so Airflow 3.3.2's Test button works; it must never
    # silently point the key somewhere the Base URL does not say.
    with pytest.raises(KlingValidationError) as info:
        settings(host=host, port=port)
    assert info.value.field == "connection 'kling_default' port"
    assert problem in str(info.value)


@pytest.mark.parametrize("host", ["http://gmi.test", "http://10.0.0.5:8765", "http://console.gmicloud.ai"])
def test_plain_http_is_refused_for_a_remote_host(host):
    with pytest.raises(KlingValidationError, match="unencrypted") as info:
        settings(host=host)
    assert "host" in info.value.field


def test_plain_http_from_the_schema_field_is_refused_too():
    with pytest.raises(KlingValidationError, match="unencrypted"):
        settings(host="gmi.test", schema="http")


@pytest.mark.parametrize("host", ["ftp://gmi.test", "https://"])
def test_hosts_that_are_not_http_urls_are_refused(host):
    with pytest.raises(KlingValidationError, match="not an http"):
        settings(host=host)


def test_extras_organization_and_timeout():
    s = settings(extra={"organization_id": " org-7 ", "timeout": "45"})
    assert s.organization_id == "org-7"
    assert s.timeout == 45.0
    assert settings(extra={"organization_id": "  "}).organization_id is None


@pytest.mark.parametrize("blank", [None, ""])
def test_a_timeout_left_blank_in_the_connection_form_means_the_default(blank):
    assert settings(extra={"timeout": blank}).timeout == 30.0


@pytest.mark.parametrize("timeout", ["soon", 0, -1, 3601, [30]])
def test_a_bad_timeout_is_refused(timeout):
    with pytest.raises(KlingValidationError, match="timeout") as info:
        settings(extra={"timeout": timeout})
    assert "up to 3600" in str(info.value)


def test_the_key_never_shows_in_the_settings_repr():
    s = settings(extra={"organization_id": "org-7"})
    assert SECRET not in repr(s)
    assert SECRET not in str(s)
    assert "org-7" in repr(s)


def test_headers():
    headers = settings().headers("airflow-provider-kling/9.9")
    assert headers["Authorization"] == f"Bearer {SECRET}"
    assert headers["User-Agent"] == "airflow-provider-kling/9.9"
    assert headers["Content-Type"] == "application/json"
    assert "X-Organization-ID" not in headers
    with_org = settings(extra={"organization_id": "org-7"}).headers("ua")
    assert with_org["X-Organization-ID"] == "org-7"


@pytest.mark.parametrize(
    ("brands", "name"),
    [
        (b"heic\x00\x00\x00\x00mif1heic", "HEIC"),
        (b"mif1\x00\x00\x00\x00mif1heic", "HEIC"),  # a major brand the old check knew...
        (b"isom\x00\x00\x00\x00mif1miaf", "HEIC"),  # ...and one it did not: an image brand decides
        (b"avif\x00\x00\x00\x00avifmif1miafMA1B", "AVIF"),
        (b"msf1\x00\x00\x00\x00msf1iso8avis", "AVIF"),
    ],
)
def test_a_heif_photo_is_named_by_any_of_its_brands_as_the_videos_view_reads_them(tmp_path, brands, name):
    path = tmp_path / "frame.png"
    path.write_bytes((8 + len(brands)).to_bytes(4, "big") + b"ftyp" + brands + bytes(64))
    with pytest.raises(KlingValidationError, match=f"frame.png is a {name} image"):
        prepare_first_frame(path)

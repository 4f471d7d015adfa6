"""No form of the API key reaches an error, its causes or a log line, whatever a server echoes.

A server (or whatever answers in its place) knows the key: it was sent the key. These tests make a
raw loopback server echo it in each form it could take (a case-folded redirect host, base64 of a
Basic or Bearer header, %-encoded, upper-cased, inside a broken chunk header) through real calls.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import socket
from typing import Any
from urllib.parse import quote

import pytest

from airflow_provider_kling.api import KlingValidationError, connection_settings
from airflow_provider_kling.api.redaction import key_forms, redact
from airflow_provider_kling.exceptions import KlingAPIError, KlingDownloadError, KlingTransportError
from airflow_provider_kling.hooks.kling import KlingAsyncHook, KlingHook
from tests.unit.hostile import answer, raw_server

KEY = "gmi-Secret+Key/8f3a1cZ9"


def echoes(key: str) -> dict[str, str]:
    """Each form a server could echo the key in."""
    raw = key.encode()
    return {
        "as is": key,
        "lower-cased": key.lower(),
        "upper-cased": key.upper(),
        "base64": base64.b64encode(raw).decode(),
        "base64 urlsafe": base64.urlsafe_b64encode(raw).decode(),
        "base64 of :key": base64.b64encode(b":" + raw).decode(),
        "base64 of user:key (Basic auth)": base64.b64encode(b"api-user:" + raw).decode(),
        "base64 of ab:key": base64.b64encode(b"ab:" + raw).decode(),
        "base64 of Bearer key": base64.b64encode(b"Bearer " + raw).decode(),
        "urlsafe base64 of Bearer key, no padding": base64.urlsafe_b64encode(b"Bearer " + raw)
        .decode()
        .rstrip("="),
        "%-encoded": quote(key, safe=""),
        "%-encoded, lower-case hex": quote(key, safe="").replace("%2B", "%2b").replace("%2F", "%2f"),
        "JSON-escaped": json.dumps(key)[1:-1],
    }


FORMS = echoes(KEY)


def leaks(text: str) -> list[str]:
    """The forms of the key ``text`` holds, including 8 bytes of it in any base64 run."""
    found = [name for name, form in FORMS.items() if form.lower() in text.lower()]
    for run in re.findall(r"[A-Za-z0-9+/_=-]{8,}", text):
        run = run.replace("=", "")
        for start in range(4):
            chunk = run[start:][: (len(run) - start) // 4 * 4]
            for alphabet in (b"+/", b"-_"):
                try:
                    decoded = base64.b64decode(chunk, altchars=alphabet)
                except binascii.Error:  # characters of the other alphabet: not this one
                    continue
                raw = KEY.encode()
                if any(raw[i : i + 8] in decoded for i in range(len(raw) - 7)):
                    found.append(f"base64 run {run!r}")
    return found


def everything_said(err: BaseException) -> str:
    """The exception's str and repr, and those of every exception chained to it."""
    parts: list[str] = []
    seen: set[int] = set()
    stack: list[BaseException | None] = [err]
    while stack:
        item = stack.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        parts += [str(item), repr(item), *getattr(item, "__notes__", [])]
        stack += [item.__cause__, item.__context__]
        stack += [a for a in item.args if isinstance(a, BaseException)]
    return "\n".join(parts)


@pytest.fixture
def connect(monkeypatch: pytest.MonkeyPatch) -> Any:
    def to(host: str, password: str = KEY) -> None:
        connection = {"conn_type": "kling", "host": host, "password": password}
        monkeypatch.setenv("AIRFLOW_CONN_KLING_DEFAULT", json.dumps(connection))

    return to


@pytest.mark.parametrize("form", list(FORMS))
def test_every_form_of_the_key_in_an_error_answer_is_redacted(form, connect, caplog, retry_sleeps):
    body = json.dumps({"error": f"bad credentials: {FORMS[form]} (see logs)"}).encode()
    with raw_server(answer("503 Service Unavailable", body, {"Content-Type": "application/json"})) as (
        url,
        _,
    ):
        connect(url)
        with caplog.at_level(logging.DEBUG), pytest.raises(KlingAPIError) as err:
            KlingHook(retry_limit=1).get_request("req-1")  # one retry: its log line quotes the error
    assert "***" in str(err.value)
    assert leaks(everything_said(err.value)) == []
    assert leaks(caplog.text) == []


def test_a_redirect_to_a_host_named_after_the_key_does_not_show_it_case_folded(connect):
    key = "Gmi-SECRET-key-8f3a1c"  # a host is case-folded: the message would show it lower-cased
    location = f"https://{key}.evil.example/requests"
    with raw_server(answer("302 Found", b"", {"Location": location})) as (url, _):
        connect(url, key)
        with pytest.raises(KlingAPIError, match="a redirect to") as err:
            KlingHook().get_request("req-1")
    said = everything_said(err.value)
    assert key.lower() not in said.lower()
    assert ".evil.example" in said  # where it pointed is still told


async def test_the_async_hook_redacts_a_redirect_and_an_echo_too(connect):
    location = f"https://{KEY.lower().replace('+', '-').replace('/', '-')}.evil.example/"
    with raw_server(answer("302 Found", b"", {"Location": location}), max_connections=40) as (url, _):
        connect(url, KEY.replace("+", "-").replace("/", "-"))
        async with KlingAsyncHook(retry_limit=0) as hook:
            with pytest.raises(KlingAPIError) as err:
                await hook.get_request("req-1")
    said = everything_said(err.value)
    assert KEY.lower().replace("+", "-").replace("/", "-") not in said.lower()


def _chunk_header_echo(key: str) -> Any:
    def script(conn: socket.socket, line: str) -> None:
        # A broken chunked body whose size line is the key: the HTTP library quotes it.
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + key.encode() + b"\r\n")

    return script


def test_a_broken_answer_quoting_the_key_is_redacted_in_the_error_and_its_causes(connect, retry_sleeps):
    b64 = base64.b64encode(b"Bearer " + KEY.encode()).decode()
    with raw_server(_chunk_header_echo(b64)) as (url, _):
        connect(url)
        with pytest.raises(KlingTransportError) as err:
            KlingHook(retry_limit=0).get_request("req-1")
    assert leaks(everything_said(err.value)) == []


async def test_a_broken_answer_quoting_the_key_is_redacted_for_the_async_hook(connect):
    with raw_server(_chunk_header_echo(KEY.upper()), max_connections=40) as (url, _):
        connect(url)
        async with KlingAsyncHook(retry_limit=0) as hook:
            with pytest.raises(KlingTransportError) as err:
                await hook.get_request("req-1")
    assert leaks(everything_said(err.value)) == []


def test_a_download_redirected_to_a_host_named_after_the_key_does_not_show_it(connect, tmp_path):
    key = "Gmi-SECRET-key-8f3a1c"
    location = f"https://{key}.invalid/v.mp4"
    with raw_server(answer("302 Found", b"", {"Location": location})) as (url, _):
        connect(url, key)
        with pytest.raises(KlingDownloadError) as err:
            KlingHook().download(f"{url}/v.mp4", tmp_path / "v.mp4")
    said = everything_said(err.value)
    assert "Refused to download https://***.invalid/v.mp4" in said
    assert key.lower() not in said.lower()


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("gmi-key part2", "a space or other blank (character 8 of 13)"),
        ("gmi-key\tpart2", "a control character (character 8 of 13)"),
        ("gmi-key\u00a0part2", "a space or other blank"),
        ("gmi-key\u200bpart2", "a non-ASCII character"),
        ("gmi-kéy-part2", "a non-ASCII character (character 6 of 13)"),
        ("gmi-key\x00part2", "a control character"),
    ],
)
def test_a_key_with_a_blank_control_or_non_ascii_character_inside_is_refused_unquoted(password, problem):
    with pytest.raises(KlingValidationError) as err:
        connection_settings(conn_id="kling_default", password=f"  {password}\n", host=None)
    message = str(err.value)
    assert message.startswith(f"Invalid connection 'kling_default' password: the API key contains {problem}")
    assert "Password field" in message
    assert "part2" not in message
    assert "gmi-k" not in message


def test_surrounding_blanks_are_still_forgiven_and_every_form_of_the_stored_key_is_redacted():
    settings = connection_settings(conn_id="c", password=f"  {KEY}\n", host=None)
    assert settings.api_key == KEY
    text = " | ".join(FORMS.values()) + " | " + json.dumps(f"  {KEY}\n")
    assert leaks(redact(text, settings.secrets)) == []
    assert redact("nothing secret here", settings.secrets) == "nothing secret here"


def test_a_key_too_short_to_redact_safely_is_left_alone():
    assert key_forms(["abc"]) == ()

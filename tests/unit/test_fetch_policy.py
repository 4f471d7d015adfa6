"""The host a download checks is the host it connects to, however the URL is spelled."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import urllib3

from airflow_provider_kling.exceptions import KlingDownloadError
from airflow_provider_kling.hooks.kling import KlingHook
from airflow_provider_kling.operators.download import KlingDownloadVideoOperator
from airflow_provider_kling.transport.fetch import FetchPolicy
from airflow_provider_kling.transport.pinning import Pins, pinned_session
from airflow_provider_kling.transport.urls import parse_fetch_url
from tests.helpers import RUN_ID, FakeTI
from tests.unit.hostile import answer, raw_server

DEFAULT = {"http": 80, "https": 443}

# 1. One reading of a URL, whatever parser reads it

# (URL, what the model reads: (host, port), or words of the refusal)
CASES: list[tuple[str, tuple[str, int] | str]] = [
    (r"http://127.0.0.1:8000\@allowed.example/v.mp4", "backslash"),
    (r"http://allowed.example\@127.0.0.1/v.mp4", "backslash"),
    (r"http:/\allowed.example/v.mp4", "backslash"),
    (r"http:\\allowed.example/v.mp4", "backslash"),
    (r"http://allowed.example/\..\v.mp4", "backslash"),
    ("http://user:pass@allowed.example/v.mp4", "user name or password"),
    ("http://allowed.example@127.0.0.1/v.mp4", "user name or password"),
    ("http://127.0.0.1:80@allowed.example/v.mp4", "user name or password"),
    ("http://allowed.example:80@127.0.0.1:80/v.mp4", "user name or password"),
    ("http://[::1]:80@allowed.example/v.mp4", "user name or password"),
    ("http://allowed.example/v.mp4?next=@127.0.0.1", ("allowed.example", 80)),
    ("http://allowed.example/@127.0.0.1/v.mp4", ("allowed.example", 80)),
    ("http://allowed.example?@127.0.0.1/v.mp4", ("allowed.example", 80)),
    ("http://allowed.example#@127.0.0.1/v.mp4", ("allowed.example", 80)),
    ("http://127.0.0.1\t.allowed.example/v.mp4", "control character"),
    ("http://allowed.exa\nmple/v.mp4", "control character"),
    ("http://allowed.example\r\n127.0.0.1/v.mp4", "control character"),
    ("http://allowed.example\x00.127.0.0.1/", "control character"),
    ("http://allowed.example/v 1.mp4", "space"),
    ("  https://allowed.example/v.mp4\n", ("allowed.example", 443)),
    ("http://127%2e0%2e0%2e1/v.mp4", "%-encoded"),
    ("http://allowed.example%2f@127.0.0.1/v.mp4", "user name"),
    ("http://ex%61mple.com/v.mp4", "%-encoded"),
    ("http://bücher.example/v.mp4", "non-ASCII"),
    ("http://allowed.example\u3002127.0.0.1/v.mp4", "non-ASCII"),
    ("http://\uff11\uff12\uff17.0.0.1/v.mp4", "non-ASCII"),
    ("http://xn--bcher-kva.example/v.mp4", ("xn--bcher-kva.example", 80)),
    ("http://[::1]/v.mp4", ("::1", 80)),
    # Python 3.13 spells an IPv4-mapped address ::ffff:127.0.0.1, earlier ones ::ffff:7f00:1.
    ("http://[::ffff:127.0.0.1]:8000/v.mp4", (str(ipaddress.IPv6Address("::ffff:7f00:1")), 8000)),
    ("http://[::1%25eth0]/v.mp4", "zone id"),
    ("http://[::1/v.mp4", "closing"),
    ("http://[v1.fe]/v.mp4", "not an IPv6 address"),
    ("http://[::1]x/v.mp4", "follows its IPv6 address"),
    ("http://allowed.example./v.mp4", "ends in a dot"),
    ("http://localhost./v.mp4", "ends in a dot"),
    ("http://2130706433/v.mp4", "not a dotted IPv4"),
    ("http://0x7f000001/v.mp4", "not a dotted IPv4"),
    ("http://0x7f.0.0.1/v.mp4", "not a dotted IPv4"),
    ("http://0177.0.0.1/v.mp4", "not a dotted IPv4"),
    ("http://127.1/v.mp4", "not a dotted IPv4"),
    ("http://127.0.0.01/v.mp4", "not a dotted IPv4"),
    ("http://allowed.example.0x10/v.mp4", "not a dotted IPv4"),
    ("http://127.0.0.1/v.mp4", ("127.0.0.1", 80)),
    ("http://allowed.example:0/v.mp4", "port"),
    ("http://allowed.example:65536/v.mp4", "port"),
    ("http://allowed.example:+80/v.mp4", "port"),
    ("http://allowed.example:8o/v.mp4", "port"),
    ("http://allowed.example:/v.mp4", "port"),
    ("http://allowed.example:80:81/v.mp4", "port"),
    ("http://allowed.example:080/v.mp4", ("allowed.example", 80)),
    ("HTTP://ALLOWED.Example:8080/v.mp4", ("allowed.example", 8080)),
    ("hTTpS://allowed.example:443/v.mp4", ("allowed.example", 443)),
    ("https://a_b.example/v.mp4", ("a_b.example", 443)),
    ("http:allowed.example/v.mp4", "'//' must follow"),
    ("http:///allowed.example/v.mp4", "no host"),
    ("http://a..example/v.mp4", "not a host name"),
    ("http://allowed.example;127.0.0.1/v.mp4", "not a host name"),
    ("//allowed.example/v.mp4", "not an http(s) URL"),
    ("ftp://allowed.example/v.mp4", "not an http(s) URL"),
    ("file:///etc/passwd", "not an http(s) URL"),
    ("javascript:alert(1)", "not an http(s) URL"),
]


def _host(host: str | None) -> str | None:
    if not host:
        return None
    host = host.strip("[]").lower()
    with contextlib.suppress(ValueError):
        host = str(ipaddress.ip_address(host))
    return host


def urllib3_reads(url: str) -> tuple[str, int] | None:
    """Where urllib3 connects for ``url``, or ``None`` when it cannot connect anywhere."""
    try:
        parts = urllib3.util.parse_url(url)
    except ValueError:
        return None
    host = _host(parts.host)
    if parts.scheme not in DEFAULT or host is None:
        return None
    return host, parts.port or DEFAULT[parts.scheme]


def requests_reads(url: str) -> tuple[str, int] | None:
    """Where requests connects: its prepared URL, as its urllib3 pool manager reads it."""
    try:
        prepared = requests.Request("GET", url).prepare().url
    except (requests.exceptions.RequestException, ValueError):
        return None
    return urllib3_reads(prepared or "")


def httpx_reads(url: str) -> tuple[str, int] | None:
    try:
        parts = httpx.URL(url)
    except (httpx.InvalidURL, ValueError):
        return None
    host = _host(parts.raw_host.decode("ascii"))
    if parts.scheme not in DEFAULT or host is None:
        return None
    return host, parts.port or DEFAULT[parts.scheme]


PARSERS = [urllib3_reads, requests_reads, httpx_reads]


@pytest.mark.parametrize(("url", "expected"), CASES)
def test_a_url_is_refused_or_read_as_every_http_client_reads_it(url, expected):
    if isinstance(expected, str):
        with pytest.raises(ValueError, match=re.escape(expected)):
            parse_fetch_url(url)
        return
    model = parse_fetch_url(url)
    assert (model.host, model.port) == expected
    for reads in PARSERS:
        # What the client is given (the URL rebuilt from the model) reads the same everywhere...
        assert reads(model.url) == expected, reads.__name__
        # ...and so does the URL as it came, wherever a parser accepts it at all.
        assert reads(url) in (expected, None), reads.__name__


def test_the_confusing_urls_really_confuse_the_parsers():
    # Without the model, the check (urlsplit) and the client (urllib3) read another host.
    from urllib.parse import urlsplit

    url = r"http://127.0.0.1:8000\@allowed.example/v.mp4"
    assert urlsplit(url).hostname == "allowed.example"
    assert urllib3_reads(url) == ("127.0.0.1", 8000)


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("/v2.mp4", "https://media.example/v2.mp4"),
        ("v2.mp4?x=1", "https://media.example/a/v2.mp4?x=1"),
        ("//cdn.example:8443/v.mp4", "https://cdn.example:8443/v.mp4"),
        ("HTTP://CDN.example/v.mp4", "http://cdn.example/v.mp4"),
        ("https://cdn.example/v.mp4#t=1", "https://cdn.example/v.mp4"),
    ],
)
def test_a_redirect_is_resolved_against_the_parsed_url(location, expected):
    assert parse_fetch_url("https://media.example/a/v.mp4").join(location).url == expected


@pytest.mark.parametrize(
    ("location", "why"),
    [
        (r"/\127.0.0.1/v.mp4", "backslash"),
        (r"\\127.0.0.1\v.mp4", "backslash"),
        ("//127.0.0.1\t/v.mp4", "control character"),
        ("/v\n.mp4", "control character"),
        ("//u@127.0.0.1/", "user name"),
        ("//0x7f000001/", "dotted IPv4"),
    ],
)
def test_a_confusing_redirect_is_refused(location, why):
    with pytest.raises(ValueError, match=why):
        parse_fetch_url("https://media.example/a/v.mp4").join(location)


@contextlib.contextmanager
def listen(host: str, port: int) -> Iterator[tuple[int, list[str]]]:
    """Accept (and count) connections on ``host:port`` until the block ends."""
    listener = socket.create_server((host, port))
    listener.settimeout(0.1)
    accepted: list[str] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, peer = listener.accept()
            except TimeoutError:
                continue
            accepted.append(f"{peer[0]}:{peer[1]}")
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], accepted
    finally:
        stop.set()
        thread.join(5)
        listener.close()


# 2. End to end: an internal server no URL may reach


@pytest.fixture
def internal() -> Iterator[tuple[int, list[str]]]:
    """A loopback server standing for the worker's network: its port and each connection it took."""
    with listen("127.0.0.1", 0) as server:
        yield server


def connect(monkeypatch: pytest.MonkeyPatch, simulator: Any, **extra: Any) -> None:
    connection = {
        "conn_type": "kling",
        "host": simulator.base_url,
        "password": simulator.api_key,
        "extra": json.dumps(extra),
    }
    monkeypatch.setenv("AIRFLOW_CONN_KLING_DEFAULT", json.dumps(connection))


def download(tmp_path: Path, url: str) -> dict[str, Any]:
    task = KlingDownloadVideoOperator(task_id="download", download_to=str(tmp_path), media_urls=[url])
    return task.execute({"ti": FakeTI(), "run_id": RUN_ID})


def sim_port(simulator: Any) -> int:
    return int(simulator.base_url.rsplit(":", 1)[1])


def test_a_url_naming_the_api_origin_after_a_backslash_reaches_nothing(
    kling_simulator, monkeypatch, tmp_path, internal
):
    port, connections = internal
    connect(monkeypatch, kling_simulator)
    url = rf"http://127.0.0.1:{port}\@127.0.0.1:{sim_port(kling_simulator)}/v.mp4"
    with pytest.raises(KlingDownloadError) as info:
        download(tmp_path, url)
    message = str(info.value)
    assert url in message
    assert "backslash" in message
    assert "Allowed: http(s)://host[:port]/path" in message
    assert connections == []
    assert list(tmp_path.iterdir()) == []


def test_a_url_naming_an_allowed_host_after_a_backslash_reaches_nothing(
    kling_simulator, monkeypatch, tmp_path, internal
):
    port, connections = internal
    connect(monkeypatch, kling_simulator, allowed_media_hosts=["media.example"])
    url = rf"http://127.0.0.1:{port}\@media.example/v.mp4"
    with pytest.raises(KlingDownloadError, match="backslash") as info:
        download(tmp_path, url)
    assert url in str(info.value)
    assert connections == []


def test_a_redirect_hop_to_a_confusing_url_reaches_nothing(kling_simulator, monkeypatch, tmp_path, internal):
    port, connections = internal
    hop = rf"http://127.0.0.1:{port}\@127.0.0.1:{sim_port(kling_simulator)}/v.mp4"
    with raw_server(answer("302 Found", headers={"Location": hop})) as (base, seen):
        connect(monkeypatch, kling_simulator, allowed_media_hosts=[base.removeprefix("http://")])
        with pytest.raises(KlingDownloadError) as info:
            download(tmp_path, f"{base}/v.mp4")
    message = str(info.value)
    assert f"redirect from {base}/v.mp4" in message
    assert "backslash" in message
    assert len(seen) == 1
    assert connections == []


def test_a_scheme_relative_redirect_to_an_internal_port_is_checked_as_that_origin(
    kling_simulator, monkeypatch, tmp_path, internal
):
    port, connections = internal
    with raw_server(answer("302 Found", headers={"Location": f"//127.0.0.1:{port}/v.mp4"})) as (base, _):
        connect(monkeypatch, kling_simulator, allowed_media_hosts=[base.removeprefix("http://")])
        with pytest.raises(KlingDownloadError, match="only https") as info:
            download(tmp_path, f"{base}/v.mp4")
    assert f"http://127.0.0.1:{port}/v.mp4" in str(info.value)
    assert "allowed_media_hosts" in str(info.value)
    assert connections == []


def test_an_allowed_entry_matches_its_host_in_any_spelling_the_model_accepts(
    kling_simulator, kling_connection_env, monkeypatch, tmp_path
):
    hook = KlingHook()
    record = hook.submit("kling-3.0-turbo-i2v", {"first_frame": "https://e.x/a.png", "prompt": "p"})
    deadline = time.monotonic() + 10
    while not (current := hook.get_request(record.request_id)).media_urls:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    url = current.media_urls[0].replace("http://127.0.0.1", "HTTP://LOCALHOST")
    connect(monkeypatch, kling_simulator, allowed_media_hosts=f"Localhost:{sim_port(kling_simulator)}")
    result = download(tmp_path, url)
    assert Path(result["uris"][0]).read_bytes()[4:8] == b"ftyp"


# 3. The address checked is the address connected to


def test_a_host_that_rebinds_after_the_check_is_still_fetched_from_the_checked_address(
    kling_simulator, kling_connection_env, monkeypatch, tmp_path
):
    # The simulator stands on 127.0.0.1; "internal" on 127.0.0.2, same port. media.test answers
    # the simulator's address once, then the internal one: the client must not ask again.
    port = sim_port(kling_simulator)
    with listen("127.0.0.2", port) as (_, internal):
        real = socket.getaddrinfo
        answers = iter(["127.0.0.1"])
        lookups: list[str] = []

        def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
            if host == "media.test":
                lookups.append(host)
                host = next(answers, "127.0.0.2")
            return real(host, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        hook = KlingHook()
        record = hook.submit("kling-3.0-turbo-i2v", {"first_frame": "https://e.x/a.png", "prompt": "p"})
        deadline = time.monotonic() + 10
        while not (current := hook.get_request(record.request_id)).media_urls:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        url = current.media_urls[0].replace("127.0.0.1", "media.test")
        connect(monkeypatch, kling_simulator, allowed_media_hosts=[f"media.test:{port}"])
        result = download(tmp_path, url)
    assert Path(result["uris"][0]).read_bytes()[4:8] == b"ftyp"
    assert lookups == ["media.test"]
    assert internal == []


def test_a_public_check_pins_the_connection_to_the_public_address(monkeypatch):
    import urllib3.util.connection

    answers = iter([["93.184.215.14"]])
    calls: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return next(answers, ["127.0.0.1"])

    connected: list[tuple[str, int]] = []

    def create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> Any:
        connected.append(address)
        raise ConnectionRefusedError("no network in the test")

    monkeypatch.setattr(urllib3.util.connection, "create_connection", create_connection)
    policy = FetchPolicy("https://api.gmi.example", resolve=resolve)
    checked = policy.check("https://rebind.example/v.mp4")
    pins = Pins()
    pins.add(checked)
    with pinned_session(pins) as session, pytest.raises(requests.exceptions.ConnectionError) as info:
        session.get(checked.url.url, timeout=2)
    assert calls == ["rebind.example"]
    assert connected == [("93.184.215.14", 443)]
    assert "93.184.215.14" in str(info.value)


def test_a_connection_to_a_host_no_check_pinned_is_refused(internal):
    port, connections = internal
    with pinned_session(Pins()) as session, pytest.raises(KlingDownloadError, match="did not check"):
        session.get(f"http://127.0.0.1:{port}/v.mp4", timeout=2)
    assert connections == []


def _certificate(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for ``name`` and its key, as PEM files."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


@contextlib.contextmanager
def tls_server(cert: Path, key: Path) -> Iterator[tuple[int, list[str], list[bytes]]]:
    """An https server on 127.0.0.1: its port, the SNI names it was sent and the requests' heads."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    names: list[str] = []

    def record_sni(_sock: Any, name: str | None, _context: Any) -> None:
        names.append(name or "")

    context.sni_callback = record_sni
    heads: list[bytes] = []
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except TimeoutError:
                continue
            with contextlib.suppress(OSError), context.wrap_socket(raw, server_side=True) as conn:
                conn.settimeout(5)
                heads.append(conn.recv(65536))
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], names, heads
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def test_a_pinned_https_connection_keeps_the_host_name_for_sni_the_certificate_and_host(tmp_path):
    from airflow_provider_kling.transport.fetch import CheckedURL

    cert, key = _certificate(tmp_path, "media.test")
    with tls_server(cert, key) as (port, names, heads):
        pins = Pins()
        pins.add(CheckedURL(parse_fetch_url(f"https://media.test:{port}/v.mp4"), ("127.0.0.1",)))
        pins.add(CheckedURL(parse_fetch_url(f"https://other.test:{port}/v.mp4"), ("127.0.0.1",)))
        with pinned_session(pins) as session:
            resp = session.get(f"https://media.test:{port}/v.mp4", verify=str(cert), timeout=5)
            # The same address under another name: the certificate is checked against the name.
            with pytest.raises(requests.exceptions.SSLError, match=r"(?i)hostname mismatch"):
                session.get(f"https://other.test:{port}/v.mp4", verify=str(cert), timeout=5)
    assert resp.text == "ok"
    assert names[0] == "media.test"
    assert f"Host: media.test:{port}\r\n".encode() in heads[0]

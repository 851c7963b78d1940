"""TLS policy (fetchmail 6.4 rules), context building and handshakes on loopback."""

from __future__ import annotations

import hashlib
import logging
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import trustme

from pyfetchmail.config.model import Query, Server, User
from pyfetchmail.errors import SocketError
from pyfetchmail.net.tls import (
    INSECURE_WARNING,
    StartTls,
    expected_server_name,
    format_fingerprint,
    make_ssl_context,
    tls_policy,
    wrap,
)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, StartTls.MUST),  # sslcertck is on by default in 6.4
        ({"sslcertck": False}, StartTls.MAY),
        ({"sslcertck": False, "sslproto": "tls1.2+"}, StartTls.MUST),
        ({"sslcertck": False, "sslfingerprint": "AA:BB"}, StartTls.MUST),
        ({"sslproto": ""}, StartTls.NEVER),
        ({"sslproto": "", "sslfingerprint": "AA"}, StartTls.NEVER),
        ({"ssl": True}, StartTls.NEVER),
    ],
)
def test_tls_policy_follows_fetchmail_64(fields: dict[str, object], expected: StartTls) -> None:
    user = replace(User(remote="joe"), **fields)  # type: ignore[arg-type]
    assert tls_policy(user) is expected


def test_expected_server_name_order() -> None:
    server = Server(pollname="poll.example")
    assert expected_server_name(Query(server, User("u"))) == "poll.example"
    via = replace(server, via="via.example")
    assert expected_server_name(Query(via, User("u"))) == "via.example"
    cn = User("u", sslcommonname="cn.example")
    assert expected_server_name(Query(via, cn)) == "cn.example"


@pytest.mark.parametrize(
    ("proto", "minimum", "maximum"),
    [
        ("tls1.2+", ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.MAXIMUM_SUPPORTED),
        ("TLS1.3+", ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.MAXIMUM_SUPPORTED),
        ("tls1.2", ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2),
        ("tls1.3", ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_3),
        ("auto", ssl.TLSVersion.TLSv1, ssl.TLSVersion.MAXIMUM_SUPPORTED),
        (None, ssl.TLSVersion.TLSv1, ssl.TLSVersion.MAXIMUM_SUPPORTED),
    ],
)
def test_sslproto_versions(
    proto: str | None, minimum: ssl.TLSVersion, maximum: ssl.TLSVersion
) -> None:
    ctx = make_ssl_context(User("u", sslproto=proto))
    assert ctx.minimum_version == minimum
    assert ctx.maximum_version == maximum
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.check_hostname


def test_sslproto_ssl3_is_an_error() -> None:
    with pytest.raises(SocketError, match="SSLv3"):
        make_ssl_context(User("u", sslproto="ssl3"))


def test_sslproto_unknown_warns_and_uses_auto(caplog: pytest.LogCaptureFixture) -> None:
    ctx = make_ssl_context(User("u", sslproto="tls9"))
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1
    assert "Invalid SSL protocol 'tls9' specified" in caplog.text


def test_nosslcertck_disables_verification() -> None:
    ctx = make_ssl_context(User("u", sslcertck=False))
    assert ctx.verify_mode == ssl.CERT_NONE
    assert not ctx.check_hostname


def test_missing_cafile_is_socket_error(tmp_path: Path) -> None:
    with pytest.raises(SocketError, match="cannot load trusted certificates"):
        make_ssl_context(User("u", sslcertfile=str(tmp_path / "nope.pem")), "h")


def test_cafile_replaces_default_store_unless_env(tmp_path: Path) -> None:
    ca = trustme.CA()
    pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    only = make_ssl_context(User("u", sslcertfile=str(pem)), environ={})
    assert only.cert_store_stats()["x509_ca"] == 1
    both = make_ssl_context(
        User("u", sslcertfile=str(pem)),
        environ={"FETCHMAIL_INCLUDE_DEFAULT_X509_CA_CERTS": "1"},
    )
    default = ssl.create_default_context()
    expected = default.cert_store_stats()["x509_ca"] + 1
    assert both.cert_store_stats()["x509_ca"] == expected


# --- handshakes against a loopback TLS server --------------------------------


class _TlsServer:
    """Accepts one connection, completes the handshake, sends a line, closes."""

    def __init__(self, ctx: ssl.SSLContext) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(10)
        self.port = self.listener.getsockname()[1]
        self.ctx = ctx
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(10)
            try:
                with self.ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"hello\r\n")
                    tls.recv(10)
            except (OSError, ssl.SSLError):
                pass

    def close(self) -> None:
        self.listener.close()
        self.thread.join(10)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def server(ca: trustme.CA) -> Iterator[tuple[_TlsServer, bytes]]:
    cert = ca.issue_cert("localhost", "127.0.0.1")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    srv = _TlsServer(ctx)
    der = ssl.PEM_cert_to_DER_cert(cert.cert_chain_pems[0].bytes().decode())
    yield srv, der
    srv.close()


@pytest.fixture
def cafile(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def _query(user: User, pollname: str = "127.0.0.1") -> Query:
    return Query(Server(pollname=pollname), user)


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


@pytest.mark.timeout(30)
def test_wrap_verifies_against_cafile(server: tuple[_TlsServer, bytes], cafile: str) -> None:
    srv, _ = server
    user = User("u", sslcertfile=cafile, sslcommonname="localhost")
    with wrap(_connect(srv.port), user, _query(user), 10) as tls:
        assert tls.recv(7) == b"hello\r\n"


@pytest.mark.timeout(30)
def test_wrap_unknown_ca_fails_closed(server: tuple[_TlsServer, bytes], tmp_path: Path) -> None:
    srv, _ = server
    other = tmp_path / "other.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    user = User("u", sslcertfile=str(other), sslcommonname="localhost")
    with pytest.raises(SocketError, match="certificate verification error"):
        wrap(_connect(srv.port), user, _query(user), 10)


@pytest.mark.timeout(30)
def test_wrap_wrong_hostname_fails(server: tuple[_TlsServer, bytes], cafile: str) -> None:
    srv, _ = server
    user = User("u", sslcertfile=cafile, sslcommonname="mail.example.org")
    with pytest.raises(SocketError, match=r"mail\.example\.org"):
        wrap(_connect(srv.port), user, _query(user), 10)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("algo", ["md5", "sha256"])
@pytest.mark.parametrize("lower", [False, True])
def test_fingerprint_match(
    server: tuple[_TlsServer, bytes], cafile: str, algo: str, lower: bool
) -> None:
    srv, der = server
    pin = format_fingerprint(hashlib.new(algo, der).digest())
    user = User(
        "u",
        sslcertfile=cafile,
        sslcommonname="localhost",
        sslfingerprint=pin.lower() if lower else pin,
    )
    with wrap(_connect(srv.port), user, _query(user), 10) as tls:
        assert tls.recv(7) == b"hello\r\n"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("certck", [True, False])
def test_fingerprint_mismatch_aborts_regardless_of_certck(
    server: tuple[_TlsServer, bytes], cafile: str, certck: bool
) -> None:
    srv, _ = server
    user = User(
        "u",
        sslcertfile=cafile,
        sslcommonname="localhost",
        sslcertck=certck,
        sslfingerprint=format_fingerprint(bytes(32)),
    )
    with pytest.raises(SocketError, match=r"^127\.0\.0\.1 fingerprints do not match!$"):
        wrap(_connect(srv.port), user, _query(user), 10)


@pytest.mark.timeout(30)
def test_nosslcertck_continues_with_warning(
    server: tuple[_TlsServer, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    srv, _ = server
    user = User("u", sslcertck=False)
    with caplog.at_level(logging.WARNING), wrap(_connect(srv.port), user, _query(user), 10) as tls:
        assert tls.recv(7) == b"hello\r\n"
    assert INSECURE_WARNING in caplog.text


@pytest.mark.timeout(30)
def test_handshake_times_out() -> None:
    # A server that accepts and never speaks TLS: the handshake must not hang.
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        user = User("u")
        sock = _connect(port)
        conn, _ = listener.accept()
        with conn, pytest.raises(SocketError, match=r"timeout after 0\.5 seconds"):
            wrap(sock, user, _query(user), 0.5)

"""TLS policy and the one place where SSL contexts are built.

Responsibilities:

- :func:`tls_policy` decides whether a plaintext connection must, may or must
  not be upgraded with STARTTLS/STLS, by fetchmail 6.4's rules.
- :func:`make_ssl_context` builds every :class:`ssl.SSLContext` of the program
  (STYLE.md principle 6), on top of :func:`ssl.create_default_context`.
- :func:`wrap` performs the handshake (implicit TLS or after STARTTLS) under
  the server timeout, checks the fingerprint pin and turns every failure into
  a :class:`~pyfetchmail.errors.SocketError` with a readable reason.

Invariants:

- Verification is on unless the user turned ``sslcertck`` off, and then a
  warning is logged for each connection (unless a fingerprint pins the cert).
- A fingerprint mismatch aborts the connection whatever ``sslcertck`` says.
- A TLS requirement never silently degrades to plaintext: callers consult
  :func:`tls_policy` and fail when ``MUST`` cannot be honoured.

``sslproto`` versions.  fetchmail's ``auto`` (also ``ssl23``, ``tls1+`` and
unset) means "TLS 1.0 or newer".  We set exactly that minimum, but note that
OpenSSL 3 refuses TLS 1.0 and 1.1 at its default security level (they need
SHA-1/MD5), and Python's default context already prefers 1.2+: in practice
``auto`` negotiates TLS 1.2 or 1.3, which is what fetchmail 6.5 will require.
The exact-version values ``tls1`` and ``tls1.1`` therefore fail the handshake
on such systems; the error names the protocol problem.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import os
import socket
import ssl
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

from pyfetchmail.config.model import Query, User
from pyfetchmail.errors import ConnectTimeout, SocketError

__all__ = [
    "INSECURE_WARNING",
    "StartTls",
    "check_fingerprint",
    "expected_server_name",
    "format_fingerprint",
    "make_ssl_context",
    "tls_policy",
    "wrap",
]

log = logging.getLogger(__name__)

INSECURE_WARNING = (
    "Warning: the connection is insecure, continuing anyways. (Better use --sslcertck!)"
)

_INCLUDE_DEFAULT_CA_ENV = "FETCHMAIL_INCLUDE_DEFAULT_X509_CA_CERTS"


class StartTls(enum.Enum):
    """What to do about STARTTLS/STLS on a plaintext connection."""

    NEVER = "never"  # sslproto '' (or implicit TLS already in use)
    MAY = "may"  # upgrade if the server offers it
    MUST = "must"  # upgrade or abort; never log in in plaintext


def tls_policy(user: User) -> StartTls:
    """Return the STARTTLS policy for a connection of *user* without ``ssl``.

    fetchmail 6.4: *maybe* = ``sslproto`` unset or non-empty; *must* = maybe
    and (``sslfingerprint`` or ``sslcertck`` or non-empty ``sslproto``).  As
    ``sslcertck`` is on by default, STARTTLS is mandatory unless the user
    wrote ``sslproto ''``.  With ``ssl`` the connection is already TLS, so
    the answer is :attr:`StartTls.NEVER`.
    """
    if user.ssl:
        return StartTls.NEVER
    if user.sslproto == "":
        return StartTls.NEVER
    if user.sslfingerprint or user.sslcertck or user.sslproto:
        return StartTls.MUST
    return StartTls.MAY


def expected_server_name(query: Query) -> str:
    """Name the certificate must carry (and sent as SNI).

    ``sslcommonname``, else ``via``, else the poll name, as fetchmail 6.4.
    """
    if query.user.sslcommonname:
        return query.user.sslcommonname
    return query.server.queryname


@dataclass(frozen=True, slots=True)
class _VersionRange:
    minimum: ssl.TLSVersion | None
    maximum: ssl.TLSVersion | None


_TLS1 = ssl.TLSVersion.TLSv1
_TLS11 = ssl.TLSVersion.TLSv1_1
_TLS12 = ssl.TLSVersion.TLSv1_2
_TLS13 = ssl.TLSVersion.TLSv1_3

_AUTO = _VersionRange(_TLS1, None)

_SSLPROTO: dict[str, _VersionRange] = {
    "auto": _AUTO,
    "ssl23": _AUTO,
    "tls1+": _AUTO,
    "tls1.1+": _VersionRange(_TLS11, None),
    "tls1.2+": _VersionRange(_TLS12, None),
    "tls1.3+": _VersionRange(_TLS13, None),
    "tls1": _VersionRange(_TLS1, _TLS1),
    "tls1.1": _VersionRange(_TLS11, _TLS11),
    "tls1.2": _VersionRange(_TLS12, _TLS12),
    "tls1.3": _VersionRange(_TLS13, _TLS13),
}


def _version_range(user: User) -> _VersionRange:
    """Map ``sslproto`` (case-insensitive) to a TLS version range."""
    if user.sslproto is None:
        return _AUTO
    proto = user.sslproto.lower()
    if proto == "":
        # Only reachable with ``ssl``: fetchmail reports it and uses auto.
        log.warning("sslproto '' with ssl makes no sense, using default autoselect (auto).")
        return _AUTO
    if proto in ("ssl3", "ssl3+"):
        raise SocketError("Your OpenSSL version does not support SSLv3.")
    try:
        return _SSLPROTO[proto]
    except KeyError:
        log.warning(
            "Invalid SSL protocol '%s' specified, using default autoselect (auto).",
            user.sslproto,
        )
        return _AUTO


def _set_versions(ctx: ssl.SSLContext, versions: _VersionRange) -> None:
    # Python deprecates naming TLS 1.0/1.1 at all; we only do it because the
    # user (or fetchmail's ``auto``) asked for it.  OpenSSL still decides.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if versions.minimum is not None:
            ctx.minimum_version = versions.minimum
        if versions.maximum is not None:
            ctx.maximum_version = versions.maximum


def make_ssl_context(
    user: User,
    server_name: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> ssl.SSLContext:
    """Build the client :class:`ssl.SSLContext` for *user*'s options.

    Built on :func:`ssl.create_default_context` (certificate and host name
    verification on).  ``sslcertfile``/``sslcertpath`` replace the default
    trust store, unless the environment variable
    ``FETCHMAIL_INCLUDE_DEFAULT_X509_CA_CERTS`` is non-empty, in which case
    they are added to it.  ``sslproto`` sets the version range, ``sslcert``
    and ``sslkey`` a client certificate, and ``no sslcertck`` turns
    verification off (the caller logs the insecurity warning per connection).

    *server_name* is only used in error texts.  Raises
    :class:`~pyfetchmail.errors.SocketError` when a file cannot be loaded.
    """
    env = os.environ if environ is None else environ
    where = f"{server_name}: " if server_name else ""
    versions = _version_range(user)
    cafile, capath = user.sslcertfile, user.sslcertpath
    try:
        if (cafile or capath) and not env.get(_INCLUDE_DEFAULT_CA_ENV):
            ctx = ssl.create_default_context(cafile=cafile, capath=capath)
        else:
            ctx = ssl.create_default_context()
            if cafile or capath:
                ctx.load_verify_locations(cafile=cafile, capath=capath)
    except (OSError, ssl.SSLError) as exc:
        raise SocketError(
            f"{where}cannot load trusted certificates from {cafile or capath}: {_reason(exc)}"
        ) from None
    _set_versions(ctx, versions)
    if user.sslcert or user.sslkey:
        certfile = user.sslcert or user.sslkey
        assert certfile is not None
        try:
            ctx.load_cert_chain(certfile, user.sslkey)
        except (OSError, ssl.SSLError) as exc:
            raise SocketError(
                f"{where}cannot load client certificate {certfile}: {_reason(exc)}"
            ) from None
    if not user.sslcertck:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def format_fingerprint(digest: bytes) -> str:
    """Format *digest* as fetchmail prints it: ``AB:CD:...``."""
    return ":".join(f"{b:02X}" for b in digest)


def _parse_fingerprint(text: str) -> bytes | None:
    hexdigits = text.replace(":", "").strip()
    try:
        raw = bytes.fromhex(hexdigits)
    except ValueError:
        return None
    return raw if len(raw) in (16, 32) else None


def check_fingerprint(sock: ssl.SSLSocket, user: User, host: str) -> None:
    """Compare the peer certificate with ``sslfingerprint`` (if set).

    16 bytes are an MD5 pin (fetchmail's format), 32 bytes a SHA-256 pin (our
    addition); hex digits compare case-insensitively.  A mismatch or an
    unparsable pin raises ``SocketError("<host> fingerprints do not match!")``
    regardless of ``sslcertck``.
    """
    der = sock.getpeercert(binary_form=True)
    if der is None:
        raise SocketError(f"{host}: server did not present a certificate.")
    log.debug("%s key fingerprint: %s", host, format_fingerprint(hashlib.md5(der).digest()))
    log.debug(
        "%s key SHA-256 fingerprint: %s", host, format_fingerprint(hashlib.sha256(der).digest())
    )
    if not user.sslfingerprint:
        return
    pin = _parse_fingerprint(user.sslfingerprint)
    if pin is None:
        log.error("%s: sslfingerprint is neither an MD5 nor a SHA-256 digest.", host)
        raise SocketError(f"{host} fingerprints do not match!")
    actual = hashlib.md5(der).digest() if len(pin) == 16 else hashlib.sha256(der).digest()
    if actual != pin:
        raise SocketError(f"{host} fingerprints do not match!")
    log.debug("%s fingerprints match.", host)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return str(exc.verify_message or exc.reason or exc)
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def wrap(sock: socket.socket, user: User, query: Query, timeout: float | None) -> ssl.SSLSocket:
    """Run the TLS handshake on *sock* and return the TLS socket.

    Used for implicit TLS (``ssl``) and after a successful STARTTLS/STLS.
    The handshake runs under *timeout* (CVE-2011-1947: never hang in TLS
    negotiation).  SNI and the host name check use
    :func:`expected_server_name`.  Any failure closes *sock* and raises
    :class:`~pyfetchmail.errors.SocketError`.
    """
    host = query.server.pollname
    name = expected_server_name(query)
    try:
        ctx = make_ssl_context(user, host)
    except SocketError:
        sock.close()
        raise
    sock.settimeout(timeout)
    try:
        tls = ctx.wrap_socket(sock, server_hostname=name)
    except ssl.SSLCertVerificationError as exc:
        sock.close()
        raise SocketError(
            f"Server certificate verification error: {_reason(exc)}; {host}: SSL connection failed."
        ) from None
    except TimeoutError:
        sock.close()
        raise ConnectTimeout(
            f"timeout after {_seconds(timeout)} seconds waiting for server {host}."
        ) from None
    except (OSError, ValueError) as exc:
        sock.close()
        raise SocketError(f"{host}: SSL connection failed: {_reason(exc)}.") from None
    try:
        check_fingerprint(tls, user, host)
    except SocketError:
        tls.close()
        raise
    cipher = tls.cipher()
    if cipher is not None:
        log.debug(
            "SSL/TLS: using protocol %s, cipher %s, %s secret bits",
            tls.version(),
            cipher[0],
            cipher[2],
        )
    if not user.sslcertck and not user.sslfingerprint:
        log.warning("%s: %s", host, INSECURE_WARNING)
    return tls


def _seconds(timeout: float | None) -> str:
    if timeout is None:
        return "?"
    return str(int(timeout)) if float(timeout).is_integer() else str(timeout)

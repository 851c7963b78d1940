"""IMAP connection set-up: connect, TLS (implicit or STARTTLS) and authentication.

Responsibility: turn a :class:`~pyfetchmail.config.model.Query` into an
authenticated :class:`imapclient.IMAPClient`, following fetchmail 6.4's rules
(RFC 3501 §6.2; fetchmail(1), USER AUTHENTICATION AND ENCRYPTION), through
imapclient's public API only.

Invariants:
- A TLS requirement (:func:`~pyfetchmail.net.tls.tls_policy` is ``MUST``)
  is never silently dropped: STARTTLS not offered, refused or failing, or a
  ``PREAUTH`` greeting (which makes STARTTLS impossible, CVE-2021-39272),
  aborts with :class:`~pyfetchmail.errors.SocketError` before any credential
  is sent.
- Every SSL context comes from :func:`~pyfetchmail.net.tls.make_ssl_context`;
  the peer certificate's fingerprint is checked after every handshake.
- ``auth any`` tries, in fetchmail's order, EXTERNAL, CRAM-MD5, then LOGIN;
  AUTHENTICATE PLAIN is our addition, used when LOGIN cannot carry the
  password (non-ASCII characters) or is disabled.  A forced method is final.
- Passwords never appear in logs or exception texts.
- ``plugin``: the command is reached through a loopback relay
  (:class:`~pyfetchmail.net.relay.PluginRelay`), so imapclient keeps its read
  timeouts and TLS is verified against the server's name, not 127.0.0.1.
"""

from __future__ import annotations

import enum
import imaplib
import logging
import socket
import ssl
from collections.abc import Iterable

from pyfetchmail.config.model import Auth, Query, User
from pyfetchmail.errors import AuthError, SocketError
from pyfetchmail.net.relay import PluginRelay
from pyfetchmail.net.tls import (
    INSECURE_WARNING,
    StartTls,
    check_fingerprint,
    expected_server_name,
    make_ssl_context,
    tls_policy,
)
from pyfetchmail.protocols import sasl
from pyfetchmail.protocols.imap_client import ImapClientLike, capabilities, drop, open_client
from pyfetchmail.protocols.imap_wire import NamedContext, guard, install_transcript, transcript

__all__ = ["Mechanism", "choose_mechanisms", "connect"]

log = logging.getLogger(__name__)


class Mechanism(enum.Enum):
    """An authentication exchange we can perform."""

    EXTERNAL = "EXTERNAL"
    CRAM_MD5 = "CRAM-MD5"
    LOGIN = "LOGIN"  # the IMAP LOGIN command, not SASL LOGIN
    PLAIN = "PLAIN"


def _is_ascii(text: str | None) -> bool:
    return text is None or text.isascii()


def _password_mechanism(
    auth: Auth, caps: frozenset[str], password: str | None, host: str
) -> Mechanism | None:
    """LOGIN, or PLAIN where LOGIN cannot be used; None if neither applies."""
    disabled = "LOGINDISABLED" in caps
    if auth is Auth.PASSWORD and disabled:
        raise AuthError(f"{host}: --auth password requested but server forbids it (LOGINDISABLED).")
    # RFC 3501 quoted strings are 7-bit; imaplib cannot send a literal LOGIN,
    # so a non-ASCII password goes through SASL PLAIN (UTF-8, RFC 4616).
    if not disabled and _is_ascii(password):
        return Mechanism.LOGIN
    if "AUTH=PLAIN" in caps:
        return Mechanism.PLAIN
    if not disabled:
        raise AuthError(
            f"{host}: the password contains non-ASCII characters, which IMAP LOGIN "
            "cannot carry, and the server does not offer AUTH=PLAIN."
        )
    return None


def choose_mechanisms(
    auth: Auth, caps: Iterable[str], password: str | None, *, host: str
) -> list[Mechanism]:
    """Return the exchanges to try, in order, for *auth* given the server *caps*.

    *caps* are upper-case capability names.  Raises
    :class:`~pyfetchmail.errors.AuthError` when a forced method cannot be
    used, or when nothing is left (fetchmail's messages).  ``auth ssh``
    returns an empty list: the connection is pre-authenticated.

    >>> choose_mechanisms(Auth.ANY, ["IMAP4REV1", "AUTH=CRAM-MD5"], "pw", host="h")
    [<Mechanism.CRAM_MD5: 'CRAM-MD5'>, <Mechanism.LOGIN: 'LOGIN'>]
    """
    caps = frozenset(c.upper() for c in caps)
    if auth is Auth.SSH:
        return []
    if auth is Auth.EXTERNAL:
        if "AUTH=EXTERNAL" not in caps:
            raise AuthError(f"{host}: --auth external requested but server does not advertise it.")
        if "SASL-IR" not in caps:
            raise AuthError(_NO_SASL_IR)
        return [Mechanism.EXTERNAL]
    if auth is Auth.CRAM_MD5:
        return [Mechanism.CRAM_MD5]
    if auth is Auth.PASSWORD:
        mech = _password_mechanism(auth, caps, password, host)
        return [mech] if mech else []
    if auth is not Auth.ANY:
        raise AuthError(f"{host}: auth {auth.value} is not supported for IMAP by pyfetchmail.")
    found: list[Mechanism] = []
    if "AUTH=EXTERNAL" in caps:
        if "SASL-IR" in caps:
            found.append(Mechanism.EXTERNAL)
        else:
            log.debug("%s: %s", host, _NO_SASL_IR)
    for name in ("GSSAPI", "NTLM"):
        if f"AUTH={name}" in caps:
            log.debug("%s: skipping AUTH=%s (not implemented)", host, name)
    if password is not None:
        if "AUTH=CRAM-MD5" in caps:
            found.append(Mechanism.CRAM_MD5)
        mech = _password_mechanism(auth, caps, password, host)
        if mech is not None:
            found.append(mech)
    if not found:
        raise AuthError(f"{host}: we've run out of authentication methods and cannot log in.")
    return found


_NO_SASL_IR = (
    "server did not advertise SASL-IR extension but fetchmail's implementation "
    "requires it for AUTHENTICATE EXTERNAL"
)


def _run_mechanism(
    client: ImapClientLike, mech: Mechanism, user: str, password: str | None
) -> None:
    """Perform one exchange; imapclient raises LoginError on NO/BAD."""
    secret = password or ""
    if mech is Mechanism.LOGIN:
        client.login(user, secret)
    elif mech is Mechanism.PLAIN:
        client.plain_login(user, secret)
    elif mech is Mechanism.CRAM_MD5:

        def respond(challenge: bytes) -> bytes:
            return sasl.cram_md5(challenge, user, secret)

        client.sasl_login("CRAM-MD5", respond)
    else:
        client.sasl_login("EXTERNAL", lambda _challenge: sasl.external(user))


def _authenticate(
    client: ImapClientLike, query: Query, password: str | None, caps: frozenset[str], host: str
) -> None:
    user = query.user.remote
    mechanisms = choose_mechanisms(query.server.auth, caps, password, host=host)
    last: AuthError | None = None
    for mech in mechanisms:
        log.debug("%s: authenticating %s with %s", host, user, mech.value)
        try:
            with guard(host, query.server.timeout):
                try:
                    _run_mechanism(client, mech, user, password)
                except imaplib.IMAP4.abort:
                    raise
                except imaplib.IMAP4.error:
                    # The server's reply text may echo what we sent: not quoted.
                    raise AuthError(
                        f"Authorization failure on {user}@{host} ({mech.value} refused)"
                    ) from None
        except AuthError as exc:
            last = exc
            continue
        log.debug("%s: authenticated %s with %s", host, user, mech.value)
        return
    if last is None:
        raise AuthError(f"{host}: we've run out of authentication methods and cannot log in.")
    raise last


def _port(service: str | None, use_ssl: bool, host: str) -> int:
    if service is None:
        return 993 if use_ssl else 143
    if service.isdigit():
        return int(service)
    try:
        return socket.getservbyname(service, "tcp")
    except OSError:
        raise SocketError(f"{host}: unknown service {service!r}.") from None


def _after_handshake(client: ImapClientLike, user: User, host: str) -> None:
    """Pin check and insecurity warning after every TLS handshake."""
    check_fingerprint(client.socket(), user, host)
    if not user.sslcertck and not user.sslfingerprint:
        log.warning("%s: %s", host, INSECURE_WARNING)


def _preauth_abort(host: str) -> SocketError:
    return SocketError(
        f"{host}: configuration requires TLS, but STARTTLS is not permitted because of "
        "authenticated state (PREAUTH). Aborting connection.  Server permitting, try "
        "--ssl instead (see manual)."
    )


def _starttls(
    client: ImapClientLike,
    context: ssl.SSLContext | NamedContext | None,
    policy: StartTls,
    user: User,
    host: str,
) -> bool:
    """Upgrade with STARTTLS; return True when the connection is now TLS."""
    try:
        client.starttls(context)
    except imaplib.IMAP4.abort:
        raise
    except imaplib.IMAP4.error:
        # Tagged NO/BAD: the connection is still plaintext and usable.
        if policy is StartTls.MUST:
            raise SocketError(f"{host}: upgrade to TLS failed.") from None
        log.warning("%s: STARTTLS refused, continuing without TLS.", host)
        return False
    _after_handshake(client, user, host)
    return True


def connect(query: Query, password: str | None, timeout: float | None) -> ImapClientLike:
    """Connect, secure and authenticate; return the logged-in ``IMAPClient``.

    *timeout* bounds the connect, the TLS handshake and every later read.
    """
    server, user = query.server, query.user
    host = server.pollname
    port = _port(server.service, user.ssl, host)
    address = (server.queryname, port)
    relay = None
    if server.plugin:
        # %p is the service as configured, else the port number (fetchmail(1), ``--plugin``).
        relay = PluginRelay(server.plugin, server.queryname, server.service or port, timeout or 300)
        address = relay.address
    policy = tls_policy(user)
    context: ssl.SSLContext | NamedContext | None = None
    if user.ssl or policy is not StartTls.NEVER:
        real = make_ssl_context(user, host)
        name = expected_server_name(query)
        context = real if name == address[0] else NamedContext(real, name)
    install_transcript()
    log.debug("Trying to connect to %s/%d...", server.queryname, port)
    try:
        with guard(host, timeout, connecting=True):
            client = open_client(
                address[0], address[1], use_ssl=user.ssl, ssl_context=context, timeout=timeout
            )
    except BaseException:
        if relay is not None:
            relay.close()
        raise
    try:
        with guard(host, timeout):
            welcome = bytes(client.welcome or b"")
            transcript("<", welcome.decode("utf-8", "replace"))
            if user.ssl:
                _after_handshake(client, user, host)
            preauth = welcome.upper().startswith(b"* PREAUTH")
            caps = capabilities(client)
            if not user.ssl:
                if preauth and policy is StartTls.MUST:
                    raise _preauth_abort(host)
                if policy is StartTls.NEVER:
                    if "STARTTLS" in caps:
                        log.debug(
                            "%s: WARNING: server offered STARTTLS, but sslproto '' given.", host
                        )
                elif preauth:
                    log.debug("%s: PREAUTH greeting, STARTTLS not possible.", host)
                elif "STARTTLS" in caps:
                    if _starttls(client, context, policy, user, host):
                        caps = capabilities(client)
                elif policy is StartTls.MUST:
                    # fetchmail sends STARTTLS anyway and fails; we fail before it.
                    raise SocketError(f"{host}: upgrade to TLS failed.")
            # RFC 3501 §7.1.4: PREAUTH, or ``auth ssh`` (a pre-authenticated
            # tunnel), means we are logged in already.
            if not preauth and server.auth is not Auth.SSH:
                _authenticate(client, query, password, caps, host)
        return client
    except BaseException:
        drop(client)
        raise

"""POP3 capabilities and authentication (RFC 2449 CAPA, RFC 5034 AUTH; fetchmail(1), ``--auth``).

:func:`authenticate` logs in on an established (and, where required,
encrypted) :class:`~pyfetchmail.protocols.pop3_channel.Pop3Channel`.

Order for ``auth any`` (first that the server advertises, weaker ones are
tried when a stronger one fails): GSSAPI and NTLM are not implemented and are
skipped with a debug line; then CRAM-MD5 (RFC 2195); then SASL PLAIN
(RFC 4616, our addition, only over TLS); then SASL LOGIN
(draft-murchison-sasl-login, our addition, only over TLS and only when
PLAIN is not advertised: it sends the same cleartext password in two steps,
so it is worth a round trip only for servers that lack PLAIN); then
USER/PASS (RFC 1939).  fetchmail 6.4 tries neither PLAIN nor LOGIN.  A forced
``auth`` type is tried alone.  ``proto apop`` and ``proto rpop`` replace the
whole choice.

``-ERR`` texts during authentication are classified as fetchmail does:
``lock``/``Lock``/``LOCK``/``wait``/``[IN-USE]``/``[LOGIN-DELAY]`` mean the
mailbox is busy (exit 9, never retried with another method); ``Service`` or
``service`` together with ``unavailable`` mean the server is busy (exit 14);
anything else is an authentication failure (exit 3).

Invariants: a failed SASL exchange is cancelled with ``*`` (RFC 5034 §4) so
the session stays in step; the password never reaches a log line or an
exception text (replies are scrubbed before they are logged).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pyfetchmail.config.model import Auth, MailProtocol, Query
from pyfetchmail.errors import (
    AuthError,
    FetchmailError,
    RemoteProtocolError,
    ServerBusy,
    ServerError,
    ServerLockBusy,
)
from pyfetchmail.protocols import sasl
from pyfetchmail.protocols.pop3 import Continuation, Err, Ok
from pyfetchmail.protocols.pop3_channel import Pop3Channel

__all__ = ["Capabilities", "apop_digest", "apop_timestamp", "authenticate", "classify_auth_err"]

log = logging.getLogger(__name__)

_MAX_SASL_ROUNDS = 8
_LOCK_MARKERS = ("lock", "Lock", "LOCK", "wait", "[IN-USE]", "[LOGIN-DELAY]")


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a CAPA listing advertised (RFC 2449); empty when CAPA failed."""

    lines: tuple[str, ...] = ()

    @classmethod
    def parse(cls, lines: Iterable[str]) -> Capabilities:
        """Keep the listing lines, upper-cased as fetchmail compares them."""
        return cls(tuple(line.strip().upper() for line in lines if line.strip()))

    def has(self, tag: str) -> bool:
        """True when a capability line starts with the keyword *tag* (``STLS``)."""
        return any(line.split()[0] == tag for line in self.lines)

    @property
    def sasl(self) -> frozenset[str]:
        """Mechanisms of the ``SASL`` capability line."""
        mechs: set[str] = set()
        for line in self.lines:
            words = line.split()
            if words[0] == "SASL":
                mechs.update(words[1:])
        return frozenset(mechs)

    def offers(self, mech: str) -> bool:
        """True when *mech* is advertised (the SASL line, or fetchmail's substring match)."""
        return mech in self.sasl or any(mech in line for line in self.lines)


def classify_auth_err(text: str, label: str) -> FetchmailError:
    """Map an ``-ERR`` text received while logging in to fetchmail's exit classes."""
    if any(marker in text for marker in _LOCK_MARKERS):
        return ServerLockBusy(f"Lock-busy error on {label}")
    if ("Service" in text or "service" in text) and "unavailable" in text:
        return ServerBusy(f"Server busy error on {label}")
    return AuthError(f"Authorization failure on {label}")


_TIMESTAMP = re.compile(r"<[^<>]*>")
_MSG_ID = re.compile(r"<[!-;=?-~]+@[!-;=?-~]+>")  # printable ASCII except < >


def apop_timestamp(greeting: str) -> str:
    """Return the RFC 1939 §7 APOP timestamp of *greeting*, validated as a msg-id.

    Raises :class:`AuthError` with fetchmail's texts when it is missing or
    malformed (CVE-2007-1558: never hash an unvalidated challenge).
    """
    if "<" not in greeting:
        raise AuthError("Required APOP timestamp not found in greeting")
    found = _TIMESTAMP.search(greeting)
    if found is None:
        raise AuthError("Timestamp syntax error in greeting")
    stamp = found.group(0)
    if not _MSG_ID.fullmatch(stamp):
        raise AuthError("Invalid APOP timestamp.")
    return stamp


def apop_digest(timestamp: str, password: str) -> str:
    """RFC 1939 §7: hex MD5 of timestamp followed by the shared secret."""
    return hashlib.md5((timestamp + password).encode("utf-8")).hexdigest()


class _Login:
    """One authentication attempt sequence on a channel."""

    def __init__(self, chan: Pop3Channel, query: Query, password: str | None) -> None:
        self.chan = chan
        self.user = query.user.remote
        self.password = password
        self.label = f"{query.user.remote}@{query.server.pollname}"

    def _secret(self) -> str:
        if self.password is None:
            raise AuthError(f"can't find a password for {self.label}.")
        return self.password

    def _scrub(self, text: str) -> str:
        return text.replace(self.password, "*") if self.password else text

    def _refused(self, err: Err) -> FetchmailError:
        log.info("%s", self._scrub(err.text))
        return classify_auth_err(err.text, self.label)

    def command(self, verb: str, *args: str) -> Ok | Err:
        self.chan.send([(verb, args)])
        return self.chan.reply()

    def user_pass(self, second: str = "PASS") -> Err | None:
        reply = self.command("USER", self.user)
        if isinstance(reply, Err):
            return reply
        reply = self.command(second, self._secret())
        return reply if isinstance(reply, Err) else None

    def apop(self, greeting: str) -> Err | None:
        stamp = apop_timestamp(greeting)
        reply = self.command("APOP", self.user, apop_digest(stamp, self._secret()))
        return reply if isinstance(reply, Err) else None

    def sasl_exchange(self, mech: str, respond: Callable[[bytes], bytes]) -> Err | None:
        """``AUTH mech``; answer challenges with *respond*; cancel with ``*`` on trouble."""
        self.chan.send([("AUTH", (mech,))])
        rounds = 0
        cancelled = False
        while True:
            event = self.chan.next_event()
            if isinstance(event, Ok):
                if cancelled:
                    raise RemoteProtocolError(f"{self.label}: server accepted a cancelled AUTH")
                return None
            if isinstance(event, Err):
                return event
            if not isinstance(event, Continuation):
                raise ServerError(f"{self.label}: client and server out of step")
            rounds += 1
            if cancelled or rounds > _MAX_SASL_ROUNDS:
                raise RemoteProtocolError(f"{self.label}: endless {mech} exchange")
            try:
                answer = sasl.b64(respond(sasl.decode_challenge(event.text)))
            except RemoteProtocolError as exc:
                log.info("%s: cancelling AUTH %s: %s", self.label, mech, exc)
                cancelled = True
                answer = sasl.CANCEL
            self.chan.send_sasl(answer)

    def cram_md5(self) -> Err | None:
        secret = self._secret()
        return self.sasl_exchange("CRAM-MD5", lambda ch: sasl.cram_md5(ch, self.user, secret))

    def plain(self) -> Err | None:
        secret = self._secret()
        return self.sasl_exchange("PLAIN", lambda _ch: sasl.plain(self.user, secret))

    def login(self) -> Err | None:
        secret = self._secret()
        rounds = 0

        def respond(challenge: bytes) -> bytes:
            # Servers prompt "Username:" then "Password:"; some send empty
            # prompts, so an unlabelled first prompt gets the user name.
            nonlocal rounds
            rounds += 1
            if not challenge.strip():
                challenge = b"Username:" if rounds == 1 else b"Password:"
            return sasl.login_step(challenge, self.user, secret)

        return self.sasl_exchange("LOGIN", respond)

    def external(self) -> Err | None:
        return self.sasl_exchange("EXTERNAL", lambda _ch: sasl.external())


def authenticate(
    chan: Pop3Channel,
    query: Query,
    password: str | None,
    caps: Capabilities,
    greeting: str,
    *,
    tls_active: bool,
) -> None:
    """Log in as ``query.user.remote``; raise AuthError/ServerLockBusy/ServerBusy."""
    login = _Login(chan, query, password)
    chan.secrets = (password,) if password else ()
    auth = query.server.auth
    proto = query.server.protocol
    if auth is Auth.SSH:
        return  # pre-authenticated tunnel or plugin
    if proto is MailProtocol.APOP:
        err = login.apop(greeting)
    elif proto is MailProtocol.RPOP:
        err = login.user_pass("RPOP")
    elif proto is MailProtocol.KPOP:
        raise AuthError(f"KPOP (Kerberos) is not supported; cannot log in {login.label}")
    elif auth is Auth.PASSWORD:
        err = login.user_pass()
    elif auth is Auth.CRAM_MD5:
        err = login.cram_md5()
    elif auth is Auth.EXTERNAL:
        err = login.external()
    elif auth is Auth.ANY:
        err = _any(login, caps, tls_active)
    else:
        raise AuthError(f"auth {auth.value} is not supported with POP3 for {login.label}")
    if err is not None:
        raise login._refused(err)


def _any(login: _Login, caps: Capabilities, tls_active: bool) -> Err | None:
    for mech in ("GSSAPI", "NTLM"):
        if caps.offers(mech):
            log.debug("%s: server offers %s, not implemented; skipped", login.label, mech)
    attempts: list[Callable[[], Err | None]] = []
    if caps.offers("CRAM-MD5"):
        attempts.append(login.cram_md5)
    if tls_active and "PLAIN" in caps.sasl:
        attempts.append(login.plain)
    elif tls_active and "LOGIN" in caps.sasl:
        attempts.append(login.login)
    attempts.append(login.user_pass)
    err: Err | None = None
    for attempt in attempts:
        err = attempt()
        if err is None:
            return None
        refusal = classify_auth_err(err.text, login.label)
        if not isinstance(refusal, AuthError):
            return err  # busy/locked: another method will not help
    return err

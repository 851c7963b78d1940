"""SMTP and LMTP sinks: forward a prepared message to the local listener.

Responsibility: the ``smtphost`` hunt list, the per-query connection
(reused, reopened after ``batchlimit`` messages or ``timeout`` seconds of
silence), the envelope dialogue and the mapping of reply codes to an
:class:`~pyfetchmail.delivery.base.Outcome` (RFC 5321 §4.2; fetchmail(1), RETRIEVAL FAILURE MODES).
With the server's ``plugout``, a TCP hunt entry is reached through that
command instead (``%h``/``%p`` = host/port; UNIX socket paths are not).

Invariants:
- ACCEPTED only after a 2xx end-of-data reply (SMTP), or when no accepted
  recipient got a 4xx and at least one got 2xx at end of data (LMTP,
  RFC 2033 §4.2); see :func:`_lmtp_outcome` for the partial case.
- A recipient rejected with 5xx at RCPT is reported, never silently
  dropped; when nobody is accepted the postmaster is tried, as fetchmail does.
- Any 4xx, 530, lost connection or garbled reply is TEMPFAIL: the message
  stays on the server.  After a failed transaction we send RSET (or drop the
  connection if the listener is gone).
- If no host of the hunt list answers, :class:`SmtpConnectError` is raised
  (exit 10): that is "cannot work at all", not a per-message result.
- Reply codes in the user's ``antispam`` list give PERMFAIL with ``spam``.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pyfetchmail.config.model import Query, RunControl
from pyfetchmail.delivery.base import DeliveryResult, Envelope, Outcome, RecipientResult
from pyfetchmail.delivery.smtpwire import Reply, SmtpClient, SmtpWireError
from pyfetchmail.errors import SmtpConnectError
from pyfetchmail.mail.headers import BodyType, body_type, rcpt_address, split_fields
from pyfetchmail.mail.message import SpooledMessage

__all__ = [
    "SmtpDelivery",
    "SmtpTimeouts",
    "classify_reply",
    "parse_hunt_entry",
]

log = logging.getLogger(__name__)

#: Seconds of silence after which a reused connection is probed with NOOP.
_PROBE_AFTER = 5.0


@dataclass(frozen=True, slots=True)
class SmtpTimeouts:
    """Client timeouts in seconds (RFC 5321 §4.5.3.2 minimums by default)."""

    connect: float = 300.0
    greeting: float = 300.0
    hello: float = 300.0
    mail: float = 300.0
    rcpt: float = 300.0
    data: float = 120.0
    end_of_data: float = 600.0
    other: float = 300.0

    @classmethod
    def for_server(cls, timeout: int) -> SmtpTimeouts:
        """RFC 5321 §4.5.3.2 minimums, raised to the server ``timeout`` where that is larger."""
        base = cls()
        return cls(*(max(float(getattr(base, f)), float(timeout)) for f in cls.__slots__))


def parse_hunt_entry(entry: str) -> tuple[str, int | None, str | None]:
    """Split an ``smtphost`` entry into (host, port, unix_path).

    ``/path`` is a UNIX socket; ``host/port`` splits at the *last* ``/``
    (the port may be a service name); ``host`` alone means port 25.
    """
    if entry.startswith("/"):
        return "localhost", None, entry
    host, sep, service = entry.rpartition("/")
    if not sep:
        return entry, 25, None
    if service.isdigit():
        return host, int(service), None
    try:
        return host, socket.getservbyname(service, "tcp"), None
    except OSError:
        return host, 25, None


def classify_reply(code: int, antispam: Iterable[int]) -> tuple[Outcome, bool]:
    """(outcome, spam) for a failing reply *code* (fetchmail(1), ``--antispam``)."""
    if code in tuple(antispam):
        return Outcome.PERMFAIL, True
    if code == 530:  # RFC 3207: STARTTLS required; we never do it, so keep the mail
        return Outcome.TEMPFAIL, False
    if 500 <= code < 600:
        return Outcome.PERMFAIL, False
    return Outcome.TEMPFAIL, False


def _insert_warning(message: SpooledMessage, warning: bytes) -> Iterator[bytes]:
    """The message with *warning* added as the last header line, streamed."""
    header = message.header_bytes()
    lines = header.splitlines(keepends=True)
    if lines and lines[-1] in (b"\r\n", b"\n"):
        yield b"".join(lines[:-1]) + warning + lines[-1]
    else:
        yield header + warning
    yield from message.iter_chunks_from(len(header))


class SmtpDelivery:
    """Deliver by SMTP (or LMTP with *lmtp*) to the query's ``smtphost`` list.

    *timeouts* defaults to :meth:`SmtpTimeouts.for_server` of the server's
    ``timeout``.  One instance serves all messages of one query; call
    :meth:`close` at the end (QUIT).
    """

    def __init__(
        self,
        query: Query,
        run: RunControl,
        fetchmailhost: str,
        *,
        server_truename: str,
        lmtp: bool | None = None,
        timeouts: SmtpTimeouts | None = None,
    ) -> None:
        self.query = query
        self.run = run
        self.lmtp = query.user.lmtp if lmtp is None else lmtp
        self.hello_name = server_truename if run.invisible else fetchmailhost
        self.timeouts = timeouts or SmtpTimeouts.for_server(query.server.timeout)
        self._client: SmtpClient | None = None
        self._domain = "localhost"
        self._sent_on_connection = 0
        self._last_response = 0.0

    # -- connection ------------------------------------------------------------------

    @property
    def proto(self) -> str:
        return "LMTP" if self.lmtp else "SMTP"

    def _open_one(self, entry: str) -> SmtpClient | None:
        host, port, path = parse_hunt_entry(entry)
        t = self.timeouts
        lmtp = self.lmtp or path is not None
        proto = "LMTP" if lmtp else "SMTP"
        for verb in ("LHLO",) if lmtp else ("EHLO", "HELO"):
            try:
                if path is not None:
                    client = SmtpClient.connect_unix(path, t.connect, proto)
                else:
                    assert port is not None
                    # "[::1]/2525": brackets delimit an IPv6 literal, not the name
                    name = host.strip("[]")
                    plugout = self.query.server.plugout
                    if plugout:  # replaces the TCP connection (fetchmail(1), ``--plugout``)
                        client = SmtpClient.connect_plugout(plugout, name, port, t.connect, proto)
                    else:
                        client = SmtpClient.connect(name, port, t.connect, proto)
            except OSError as exc:
                log.debug("%s connect to %s failed: %s", proto, entry, exc)
                return None
            try:
                greeting = client.read_reply(t.greeting)
                if 200 <= greeting.code < 300:
                    reply = client.hello(verb, self.hello_name, t.hello)
                    if 200 <= reply.code < 300:
                        self.lmtp = lmtp
                        self._domain = self.query.user.smtpaddress or (
                            "localhost" if path is not None else host
                        )
                        return client
                client.quit(t.other)
            except SmtpWireError as exc:
                log.debug("%s greeting from %s failed: %s", proto, entry, exc)
                client.abort()
        return None

    def _authenticate(self, client: SmtpClient) -> None:
        server = self.query.server
        password = server.esmtppassword
        name = server.esmtpname or self.query.user.remote
        if not password or "AUTH" not in client.features:
            return
        reply = client.authenticate(name, password, self.timeouts.other)
        # fetchmail does not check the AUTH result either; the listener
        # decides at MAIL/RCPT whether it relays for us.
        if reply is not None and not 200 <= reply.code < 300:
            log.warning("%s AUTH as %s failed: %s", self.proto, name, reply.text)

    def _connection(self) -> SmtpClient:
        client = self._client
        user = self.query.user
        if client is not None and not client.closed:
            idle = time.monotonic() - self._last_response
            if user.batchlimit and self._sent_on_connection >= user.batchlimit:
                log.debug("batchlimit %d reached, reconnecting", user.batchlimit)
                client.quit(self.timeouts.other)
            elif idle > self.query.server.timeout:
                client.quit(self.timeouts.other)
            else:
                return client
        self._client = None
        last = "localhost"
        for entry in user.smtphunt or ("localhost",):
            last = entry
            opened = self._open_one(entry)
            if opened is not None:
                self._authenticate(opened)
                self._client = opened
                self._sent_on_connection = 0
                self._last_response = time.monotonic()
                return opened
        raise SmtpConnectError(f"{self.proto} connect to {last} failed")

    def close(self) -> None:
        """QUIT the listener connection (idempotent)."""
        client, self._client = self._client, None
        if client is not None:
            client.quit(self.timeouts.other)

    # -- delivery --------------------------------------------------------------------

    def _mail_from(self, client: SmtpClient, message: SpooledMessage, sender: str) -> str:
        line = f"MAIL FROM:<{sender}>"
        if "8BITMIME" in client.features:
            kind = body_type(split_fields(message.header_bytes()))
            if self.query.user.pass8bits or kind is BodyType.EIGHT_BIT:
                line += " BODY=8BITMIME"
            elif kind is BodyType.SEVEN_BIT:
                line += " BODY=7BIT"
        size = message.announced_size if message.announced_size else message.size
        if "SIZE" in client.features and size > 0:
            line += f" SIZE={size}"
        return line

    def _fail(
        self, client: SmtpClient, reply: Reply, recipients: tuple[RecipientResult, ...] = ()
    ) -> DeliveryResult:
        outcome, spam = classify_reply(reply.code, self.query.user.antispam)
        if not spam:
            log.warning("%s error: %s", self.proto, reply.text)
        if reply.code == 530:
            log.warning("SMTP server requires STARTTLS, keeping message.")
        self._reset(client)
        return DeliveryResult(outcome, reply.code, reply.text, recipients, spam, where=client.label)

    def _reset(self, client: SmtpClient) -> None:
        if client.closed:
            return
        try:
            reply = client.command("RSET", self.timeouts.other)
            self._last_response = time.monotonic()
            if not 200 <= reply.code < 300:
                client.abort()
        except SmtpWireError:
            client.abort()

    def deliver(self, message: SpooledMessage, envelope: Envelope) -> DeliveryResult:
        """Forward *message*; see the module docstring for the outcome rules."""
        client = self._connection()
        try:
            if time.monotonic() - self._last_response > _PROBE_AFTER:
                # A connection idle for a while may have been dropped by the
                # listener (RFC 5321 §4.5.3.2 server timeouts): probe with NOOP
                # and reconnect once, before any mail is sent.
                try:
                    probe = client.command("NOOP", self.timeouts.other)
                    stale = probe.code == 421
                except SmtpWireError:
                    stale = True
                if stale:
                    client.abort()
                    client = self._connection()
            return self._transaction(client, message, envelope)
        except SmtpWireError as exc:
            log.warning("%s: %s", self.proto, exc)
            client.abort()
            return DeliveryResult(Outcome.TEMPFAIL, 0, str(exc), where=client.label)
        finally:
            self._sent_on_connection += 1
            self._last_response = time.monotonic()

    def _transaction(
        self, client: SmtpClient, message: SpooledMessage, envelope: Envelope
    ) -> DeliveryResult:
        t = self.timeouts
        user = self.query.user
        reply = client.command(self._mail_from(client, message, envelope.sender), t.mail)
        if not 200 <= reply.code < 300:
            return self._fail(client, reply)

        results: list[RecipientResult] = []
        accepted: list[str] = []
        for address in dict.fromkeys(
            rcpt_address(r, user.smtpname, self._domain) for r in envelope.recipients
        ):
            reply = client.command(f"RCPT TO:<{address}>", t.rcpt)
            results.append(RecipientResult(address, reply.code, reply.text))
            if 200 <= reply.code < 300:
                accepted.append(address)
                continue
            outcome, spam = classify_reply(reply.code, user.antispam)
            if spam or outcome is Outcome.TEMPFAIL:
                return self._fail(client, reply, tuple(results))
            log.warning("%s error: %s", self.proto, reply.text)
        rejected = [r.recipient for r in results if not r.accepted]
        if not accepted:
            postmaster = self.run.postmaster
            if not postmaster:
                self._reset(client)
                return DeliveryResult(
                    Outcome.PERMFAIL,
                    results[-1].code if results else 0,
                    "no address matches; no postmaster set.",
                    tuple(results),
                    where=client.label,
                )
            address = rcpt_address(postmaster, None, self._domain)
            reply = client.command(f"RCPT TO:<{address}>", t.rcpt)
            if not 200 <= reply.code < 300:
                log.warning("can't even send to %s!", address)
                return self._fail(client, reply, tuple(results))
            accepted.append(address)

        reply = client.command("DATA", t.data)
        if reply.code != 354:
            return self._fail(client, reply, tuple(results))
        chunks: Iterable[bytes]
        if rejected:
            warning = "SMTP listener rejected local recipient addresses: " + ", ".join(rejected)
            chunks = _insert_warning(message, f"X-Fetchmail-Warning: {warning}\r\n".encode())
        else:
            chunks = message.iter_chunks()
        client.send_data(chunks, t.data)
        if self.lmtp:
            return self._lmtp_end(client, accepted, results)
        reply = client.read_reply(t.end_of_data)
        if not 200 <= reply.code < 300:
            return self._fail(client, reply, tuple(results))
        return DeliveryResult(
            Outcome.ACCEPTED, reply.code, reply.text, tuple(results), where=client.label
        )

    def _lmtp_end(
        self, client: SmtpClient, accepted: list[str], results: list[RecipientResult]
    ) -> DeliveryResult:
        """Read one end-of-data reply per accepted recipient (RFC 2033 §4.2)."""
        final = [r for r in results if not r.accepted]
        replies: list[Reply] = []
        for address in accepted:
            reply = client.read_reply(self.timeouts.end_of_data)
            replies.append(reply)
            final.append(RecipientResult(address, reply.code, reply.text))
        return _lmtp_outcome(replies, tuple(final), self.query.user.antispam, client.label)


def _lmtp_outcome(
    replies: list[Reply],
    recipients: tuple[RecipientResult, ...],
    antispam: Iterable[int],
    where: str,
) -> DeliveryResult:
    """Combine LMTP per-recipient replies into one result.

    Any 4xx keeps the message (TEMPFAIL: the 2xx recipients may get it
    twice, which is the at-most-one-duplicate rule).  Otherwise, when at
    least one recipient got 2xx, the message is ACCEPTED and the 5xx ones are
    reported as rejected recipients (fetchmail: "LMTP partial delivery
    failure", bounced for them); all 5xx gives PERMFAIL.
    """
    spam_codes = tuple(antispam)
    for reply in replies:
        if not 200 <= reply.code < 300:
            log.warning("LMTP error: %s", reply.text)
    temp = [r for r in replies if not 200 <= r.code < 300 and r.code < 500]
    if temp:
        return DeliveryResult(Outcome.TEMPFAIL, temp[0].code, temp[0].text, recipients, where=where)
    good = [r for r in replies if 200 <= r.code < 300]
    if good:
        return DeliveryResult(Outcome.ACCEPTED, good[0].code, good[0].text, recipients, where=where)
    first = replies[0] if replies else Reply(451, ("LMTP delivery error on EOM",))
    outcome, spam = classify_reply(first.code, spam_codes)
    return DeliveryResult(outcome, first.code, first.text, recipients, spam, where=where)

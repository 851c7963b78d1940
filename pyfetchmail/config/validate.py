"""Checks fetchmail 6.4 performs on a merged configuration (spec section 1.8).

Invariants:
- Only queries that will be polled are checked, or every query when
  ``--configdump`` is given (as fetchmail does).
- Fatal problems raise :class:`~pyfetchmail.errors.ConfigError` (exit 5)
  whose text is fetchmail's complete stderr output for the problem, one line
  per message; warnings are returned as lines, in fetchmail's order.
- Nothing here touches files; service names are resolved with the system's
  services database (as fetchmail's ``servport`` does).
"""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Iterable

from pyfetchmail.config.model import Auth, MailProtocol, Query, RunControl
from pyfetchmail.errors import ConfigError

__all__ = ["check_interface", "service_port", "validate_queries"]

log = logging.getLogger(__name__)

_C_SPACE = " \t\n\r\f\v"
_STRTOUL = re.compile(r"[ \t\n\r\f\v]*([+-]?)([0-9]+)[ \t\n\r\f\v]*")
_POP3_LIKE = frozenset({MailProtocol.POP3, MailProtocol.APOP, MailProtocol.SDPS, MailProtocol.KPOP})


def check_interface(value: str) -> None:
    """Reject an ``interface`` value fetchmail cannot parse (``iface/ip[/mask]``)."""
    _iface, slash, rest = value.partition("/")
    if not slash:
        raise ConfigError("fetchmail: missing IP interface address")
    address, has_mask, mask = rest.partition("/")
    if not _inet_aton(address):
        raise ConfigError("fetchmail: invalid IP interface address")
    if has_mask and not _inet_aton(mask):
        raise ConfigError("fetchmail: invalid IP interface mask")


def _inet_aton(text: str) -> bool:
    try:
        socket.inet_aton(text)
    except (OSError, ValueError):
        return False
    return True


def service_port(service: str, messages: list[str]) -> int:
    """Port number of *service* as fetchmail's ``servport``; -1 (with messages) if invalid.

    A decimal number (C ``strtoul``: leading blanks and a sign allowed,
    trailing blanks ignored) must be 1..65535; anything else is looked up in
    the services database for TCP.  Messages are appended to *messages*.
    """
    number = _STRTOUL.fullmatch(service)
    if number is not None:
        value = int(number[2])
        if number[1] == "-" and value:
            value = 2**64 - value  # strtoul negates in unsigned arithmetic
        if value < 2**64:
            if 0 < value <= 65535:
                return value
            return _bad_service(service, messages)
    if not service.strip(_C_SPACE):
        return _bad_service(service, messages)
    if service == "kpop":
        return 1109  # not IANA-registered; fetchmail hard-codes it
    try:
        infos = socket.getaddrinfo(None, service, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        return int(infos[0][4][1])
    except socket.gaierror as exc:
        reason = exc.strerror
    except (OSError, UnicodeError, ValueError) as exc:
        reason = str(exc)
    messages.append(f'fetchmail: getaddrinfo(NULL, "{service}") error: {reason}')
    return _bad_service(service, messages)


def _bad_service(service: str, messages: list[str]) -> int:
    messages.append(f"fetchmail: Cannot resolve service {service} to port number.")
    messages.append("fetchmail: Please specify the service as decimal port number.")
    return -1


def _check_ports(query: Query, warnings: list[str]) -> None:
    server, user = query.server, query.user
    if server.service is None:
        return
    messages: list[str] = []
    port = service_port(server.service, messages)
    if port < 0:
        messages.append(
            f"fetchmail: {server.pollname} configuration invalid, "
            "specify positive port number for service or port"
        )
        raise ConfigError("\n".join(messages))
    prefix = f"fetchmail: WARNING: {server.pollname} configuration invalid, you normally need"
    if server.protocol in _POP3_LIKE:
        if port == 995 and not user.ssl:
            warnings.append(f"{prefix} --ssl for port 995/service pop3s.")
        if port == 110 and user.ssl:
            warnings.append(f"{prefix} port 995/service pop3s for --ssl.")
    elif server.protocol is MailProtocol.IMAP:
        if port == 993 and not user.ssl:
            warnings.append(f"{prefix} --ssl for port 993/service imaps.")
        if port == 143 and user.ssl:
            warnings.append(f"{prefix} port 993/service imaps for --ssl.")
    if server.protocol is MailProtocol.RPOP and port >= 1024:
        raise ConfigError(
            f"fetchmail: {server.pollname} configuration invalid, RPOP requires a privileged port"
        )


def _check_lmtp(query: Query, warnings: list[str]) -> None:
    for host in query.user.smtphunt:
        if host.startswith("/"):
            continue  # UNIX socket paths have no port
        _, slash, port = host.rpartition("/")
        if not slash or port == "smtp" or service_port(port, warnings) == 25:
            raise ConfigError(
                f"{query.server.pollname} configuration invalid, LMTP can't use default SMTP port"
            )


def validate_queries(
    queries: Iterable[Query], run: RunControl, *, configdump: bool, nodetach: bool
) -> list[str]:
    """Check every query fetchmail would check; return the warning lines in order.

    A fatal problem raises :class:`ConfigError` whose text starts with the
    warnings printed before it (fetchmail prints them as it goes).
    """
    warnings: list[str] = []
    try:
        _validate(queries, run, warnings, configdump=configdump, nodetach=nodetach)
    except ConfigError as exc:
        raise ConfigError("\n".join([*warnings, exc.message])) from None
    return warnings


def _validate(
    queries: Iterable[Query],
    run: RunControl,
    warnings: list[str],
    *,
    configdump: bool,
    nodetach: bool,
) -> None:
    idle_count = mailbox_count = 0
    for query in queries:
        if not (configdump or query.server.active):
            continue
        server, user = query.server, query.user
        if server.auth is Auth.KERBEROS_V4:
            raise ConfigError("fetchmail: KERBEROS v4 support is configured, but not compiled in.")
        if user.multidrop and not server.envelope_explicit:
            warnings.append(
                f"fetchmail: warning: multidrop for {server.pollname} requires envelope option!"
            )
            warnings.append(
                "fetchmail: warning: Do not ask for support if all mail goes to postmaster!"
            )
        _check_ports(query, warnings)
        if user.lmtp:
            _check_lmtp(query, warnings)
        if (
            user.fetchall
            and user.keep
            and (run.poll_interval or user.idle)
            and not nodetach
            and not configdump
        ):
            warnings.append("Both fetchall and keep on in daemon or idle mode is a mistake!")
        idle_count += user.idle
        mailbox_count += max(1, len(user.mailboxes))
    if idle_count and mailbox_count > 1:
        raise ConfigError(
            "fetchmail: Error: idle mode does not work for multiple folders or accounts!"
        )

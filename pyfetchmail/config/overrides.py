"""Command-line options as data, and their merge onto the rc model (pure).

:class:`CommandLineOptions` is filled by :mod:`pyfetchmail.cli`; ``None`` (or
an empty tuple) means "not given on the command line".  Values are already
converted (numbers parsed, paths made absolute against the working directory,
comma lists split) so that this module stays free of I/O.

:func:`apply_overrides` and :func:`apply_run_overrides` work on the *raw*
option mappings of :mod:`pyfetchmail.config.rcgrammar` (only what was set;
model field names as keys), before built-in defaults are filled in, because
fetchmail merges the command line at that point (``-S host`` therefore
replaces the built-in ``localhost`` instead of joining it).

Invariants (fetchmail 6.4, spec section 1.3):
- Command-line options override *every* query, including ``skip`` entries.
- List options (``-r``, ``-S``, ``--fetchdomains``, ``-Z``) are *appended* to
  the rc lists, not substituted.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pyfetchmail.config.model import Auth, BadHeader, MailProtocol

__all__ = ["CommandLineOptions", "apply_overrides", "apply_run_overrides"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CommandLineOptions:
    """Everything fetchmail's command line can say.  ``None`` = not given."""

    # Run mode / output
    version: bool = False  # -V
    check: bool = False  # -c
    silent: bool = False  # -s
    verbose: int = 0  # -v count (2 = -vv)
    daemon: int | None = None  # -d N
    nodetach: bool = False  # -N
    quit: bool = False  # -q
    quit_is_last: bool = False  # -q was the last argument (exit after killing)
    configdump: bool = False
    yydebug: bool = False
    # Files
    fetchmailrc: str | None = None  # -f (absolute, or "-")
    idfile: str | None = None  # -i
    pidfile: str | None = None
    logfile: str | None = None  # -L
    # Globals
    invisible: bool = False
    showdots: bool = False
    syslog: bool | None = None  # --syslog / --nosyslog
    postmaster: str | None = None
    nobounce: bool = False
    softbounce: bool | None = None  # --softbounce / --nosoftbounce
    tracepolls: bool = False
    # Server options
    protocol: MailProtocol | None = None
    uidl: bool = False
    service: str | None = None  # -P / --service / --port
    auth: Auth | None = None
    timeout: int | None = None
    envelope: str | None = None
    qvirtual: str | None = None
    bad_header: BadHeader | None = None
    principal: str | None = None
    interface: str | None = None
    monitor: str | None = None
    plugin: str | None = None
    plugout: str | None = None
    # User options
    username: str | None = None  # -u
    fetchall: bool = False
    keep: bool | None = None  # -k True / -K False
    flush: bool = False
    limitflush: bool = False
    norewrite: bool = False
    idle: bool = False
    limit: int | None = None
    warnings: int | None = None
    batchlimit: int | None = None
    fetchlimit: int | None = None
    fetchsizelimit: int | None = None
    fastuidl: int | None = None
    expunge: int | None = None
    folders: tuple[str, ...] = ()  # -r, appended
    smtphosts: tuple[str, ...] = ()  # -S, appended
    fetchdomains: tuple[str, ...] = ()  # appended
    antispam: tuple[int, ...] = ()  # -Z, appended
    smtpaddress: str | None = None  # -D
    smtpname: str | None = None
    mda: str | None = None  # -m
    bsmtp: str | None = None
    lmtp: bool = False
    ssl: bool = False
    sslkey: str | None = None
    sslcert: str | None = None
    sslproto: str | None = None
    sslcertck: bool | None = None  # --sslcertck / --nosslcertck
    sslcertfile: str | None = None
    sslcertpath: str | None = None
    sslcommonname: str | None = None
    sslfingerprint: str | None = None
    # Positional server names
    servers: tuple[str, ...] = ()
    # The raw argument vector (for the "can't accept options" report and re-exec)
    argv: tuple[str, ...] = ()


# CLI option -> raw rc key, for plain "replace if given" scalars.
_SERVER_SCALARS = {
    "protocol": "protocol",
    "service": "service",
    "envelope": "envelope",
    "qvirtual": "qvirtual",
    "principal": "principal",
    "interface": "interface",
    "monitor": "monitor",
    "plugin": "plugin",
    "plugout": "plugout",
}
_USER_SCALARS = {
    "username": "remote",
    "keep": "keep",
    "limit": "limit",
    "warnings": "warnings",
    "batchlimit": "batchlimit",
    "fetchlimit": "fetchlimit",
    "fetchsizelimit": "fetchsizelimit",
    "fastuidl": "fastuidl",
    "expunge": "expunge",
    "smtpaddress": "smtpaddress",
    "smtpname": "smtpname",
    "mda": "mda",
    "bsmtp": "bsmtp",
    "sslkey": "sslkey",
    "sslcert": "sslcert",
    "sslproto": "sslproto",
    "sslcertck": "sslcertck",
    "sslcertfile": "sslcertfile",
    "sslcertpath": "sslcertpath",
    "sslcommonname": "sslcommonname",
    "sslfingerprint": "sslfingerprint",
}
# Switches that can only turn something on (fetchmail: force-merge of non-zero).
_USER_SWITCHES = {
    "fetchall": "fetchall",
    "flush": "flush",
    "limitflush": "limitflush",
    "idle": "idle",
    "lmtp": "lmtp",
    "ssl": "ssl",
}
_USER_LISTS = {
    "folders": "mailboxes",
    "smtphosts": "smtphunt",
    "fetchdomains": "fetchdomains",
    "antispam": "antispam",
}


def apply_overrides(
    server: Mapping[str, Any], user: Mapping[str, Any], options: CommandLineOptions
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return copies of one query's raw *server* and *user* options with *options* forced.

    The mappings hold only what the rc file set (keys are model field names);
    a key present from the command line wins over everything.  List options
    are appended to the rc lists.  ``--auth any`` and ``--bad-header reject``
    are fetchmail's "zero" values and therefore do not override (as in 6.4);
    ``-t 0`` forces the default timeout.
    """
    srv = dict(server)
    usr = {k: list(v) if isinstance(v, list) else v for k, v in user.items()}
    for opt, key in _SERVER_SCALARS.items():
        value = getattr(options, opt)
        if value is not None:
            srv[key] = value
    if options.uidl:
        srv["uidl"] = True
    if options.tracepolls:
        srv["tracepolls"] = True
    if options.auth is not None and options.auth is not Auth.ANY:
        srv["auth"] = options.auth
    if options.bad_header is BadHeader.ACCEPT:
        srv["badheader"] = BadHeader.ACCEPT
    if options.timeout is not None:
        srv["timeout"] = options.timeout if options.timeout > 0 else -1
    for opt, key in _USER_SCALARS.items():
        value = getattr(options, opt)
        if value is not None:
            usr[key] = value
    for opt, key in _USER_SWITCHES.items():
        if getattr(options, opt):
            usr[key] = True
    if options.norewrite:
        usr["rewrite"] = False
    for opt, key in _USER_LISTS.items():
        values = getattr(options, opt)
        if values:
            usr[key] = [*usr.get(key, []), *values]
    return srv, usr


def apply_run_overrides(run: Mapping[str, Any], options: CommandLineOptions) -> dict[str, Any]:
    """Return a copy of the raw ``set`` globals *run* with the command-line globals forced."""
    out = dict(run)
    for opt in ("logfile", "idfile", "pidfile", "postmaster", "syslog", "softbounce"):
        value = getattr(options, opt)
        if value is not None:
            out[opt] = value
    if options.daemon is not None and options.daemon >= 0:
        out["poll_interval"] = options.daemon
    if options.invisible:
        out["invisible"] = True
    if options.showdots:
        out["showdots"] = True
    if options.nobounce:
        out["bouncemail"] = False
    if options.check:
        out["poll_interval"] = 0  # -c and daemon mode do not mix
    return out

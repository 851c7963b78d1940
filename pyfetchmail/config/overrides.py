"""Command-line options as data, and their merge onto the rc model (pure).

:class:`CommandLineOptions` is filled by :mod:`pyfetchmail.cli`; ``None`` (or
an empty tuple) means "not given on the command line".  Values are already
converted (numbers parsed, paths made absolute against the working directory,
comma lists split) so that this module stays free of I/O.

Invariants (fetchmail 6.4, spec section 1.3):
- Command-line options override *every* query, including ``skip`` entries.
- List options (``-r``, ``-S``, ``--fetchdomains``, ``-Z``) are *appended* to
  the rc lists, not substituted.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyfetchmail.config.model import Auth, BadHeader, Protocol

__all__ = ["CommandLineOptions"]


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
    protocol: Protocol | None = None
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

"""Logging setup (stderr, logfile, syslog) and the secret-redacting filter.

Destinations, as fetchmail 6.4 chooses them (spec section 7.4):

- default: progress (INFO and below) on stdout, warnings and errors on
  stderr, as fetchmail splits them; every line prefixed ``pyfetchmail: `` (fetchmail's
  ``fetchmail: ``);
- ``--logfile F`` / ``set logfile``: the file must already exist (else a
  notice and stderr is kept) and be writable (else exit 23).  ``-N`` ignores
  it.  It wins over ``--syslog``.  **Improvements over 6.4**: lines carry a
  ``%b %d %H:%M:%S`` timestamp (as fetchmail 6.5 does), and the file is
  reopened when logrotate renames or removes it (``WatchedFileHandler``), so
  no ``copytruncate`` or restart is needed;
- ``--syslog`` / ``set syslog``: facility LOG_MAIL, ident ``pyfetchmail``
  with the PID (LOG_PID), to ``/dev/log`` or to the address in the
  environment variable ``PYFETCHMAIL_SYSLOG_ADDRESS`` (a socket path or
  ``host:port`` for UDP; used by the tests).

Levels (STYLE.md section 4): ``-s`` WARNING, default INFO, ``-v`` DEBUG,
``-vv`` additionally enables the protocol transcript logger
``pyfetchmail.transcript`` (it is silenced below ``-vv``).

The ``pyfetchmail`` logger keeps propagating to the root logger, which has
no handler in the program (so nothing is printed twice) and lets pytest's
``caplog`` see every record.

Invariant: every handler installed here carries :class:`SecretRedactingFilter`,
so no password, SASL payload or token registered with :func:`register_secret`
reaches any destination, whichever module logged it and whether it sits in
the message, its arguments or a traceback.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
import socket
import sys
import threading
from typing import Protocol, TextIO

from pyfetchmail.errors import FetchmailError

__all__ = [
    "SYSLOG_ADDRESS_ENV",
    "TRANSCRIPT_LOGGER",
    "LogOptions",
    "LogTargets",
    "SecretRedactingFilter",
    "redact",
    "register_secret",
    "reset_logging",
    "setup_logging",
]

log = logging.getLogger(__name__)

TRANSCRIPT_LOGGER = "pyfetchmail.transcript"
SYSLOG_ADDRESS_ENV = "PYFETCHMAIL_SYSLOG_ADDRESS"
_ROOT = "pyfetchmail"
_PREFIX = "pyfetchmail: "
_LOGFILE_DATEFMT = "%b %d %H:%M:%S"
# Registered secrets shorter than this are not masked in free text (masking
# every "ab" would make logs unreadable); the keyword patterns below still
# hide them in PASS/LOGIN/AUTH lines, which is where a password is sent.
_MIN_FREE_SECRET = 4

_secrets: set[str] = set()
_secrets_lock = threading.Lock()

# Keyword patterns: the command and what must stay visible are group 1; the
# rest of the line is replaced by "*" as fetchmail prints "POP3> PASS *".
_QUOTED_OR_ATOM = r'(?:"(?:[^"\\]|\\.)*"|\{\d+\+?\}|\S+)'
_PATTERNS = (
    # POP3 PASS, RPOP; SMTP/IMAP-style "A0001 LOGIN user pass" (tag optional).
    # Case-sensitive on purpose: clients send the verbs in upper case, and
    # prose such as "login failed for joe" must stay readable.
    re.compile(r"(\b(?:PASS|RPOP)\s+)\S.*"),
    re.compile(rf"(\bLOGIN\s+{_QUOTED_OR_ATOM}\s+)\S.*"),
    # APOP user digest (RFC 1939 section 7).
    re.compile(r"(\bAPOP\s+\S+\s+)\S.*"),
    # AUTH / AUTHENTICATE mechanism initial-response (RFC 4954, RFC 9051).
    re.compile(r"(\bAUTH(?:ENTICATE)?\s+[A-Za-z0-9_-]+\s+)\S.*"),
    # OAuth2 bearer tokens wherever they show up (RFC 6750, XOAUTH2).
    re.compile(r"(\b[Bb]earer[\s=]+)[A-Za-z0-9._~+/=-]+"),
    re.compile(r"((?:access|refresh)_token[\"']?\s*[:=]\s*[\"']?)[^\"'\s,&}]+"),
)


class LogOptions(Protocol):
    """The command-line switches logging depends on (``CommandLineOptions`` has them).

    Structural, so that this leaf module needs nothing from :mod:`pyfetchmail.config`.
    """

    @property
    def verbose(self) -> int: ...
    @property
    def silent(self) -> bool: ...
    @property
    def nodetach(self) -> bool: ...


class LogTargets(Protocol):
    """Where log lines go, from the rc file merged with ``-L`` (``RunControl`` has them)."""

    @property
    def logfile(self) -> str | None: ...
    @property
    def syslog(self) -> bool: ...


def register_secret(secret: str | None) -> None:
    """Mask *secret* (a password or token) in everything logged from now on."""
    if secret:
        with _secrets_lock:
            _secrets.add(secret)


def redact(text: str) -> str:
    """Return *text* with registered secrets and credential arguments masked."""
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if len(secret) >= _MIN_FREE_SECRET and secret in text:
            text = text.replace(secret, "*")
    if not any(k in text for k in ("PASS", "RPOP", "LOGIN", "APOP", "AUTH", "earer", "_token")):
        return text
    lines = text.split("\n")
    for i, line in enumerate(lines):
        for pattern in _PATTERNS:
            line = pattern.sub(r"\1*", line)
        lines[i] = line
    return "\n".join(lines)


class SecretRedactingFilter(logging.Filter):
    """Rewrite each record so that it carries no credential (see :func:`redact`).

    Attach it to *handlers* (a logger's filter does not see records
    propagated from child loggers).  The formatted message replaces
    ``msg``/``args``, and a traceback is formatted and redacted up front.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact *record* in place; never drops it."""
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def _level(options: LogOptions) -> int:
    if options.silent:
        return logging.WARNING
    if options.verbose >= 1:
        return logging.DEBUG
    return logging.INFO


def _syslog_handler() -> logging.Handler:
    """A LOG_MAIL syslog handler for ``/dev/log`` or ``$PYFETCHMAIL_SYSLOG_ADDRESS``."""
    spec = os.environ.get(SYSLOG_ADDRESS_ENV, "/dev/log")
    address: str | tuple[str, int] = spec
    socktype = socket.SOCK_DGRAM
    if ":" in spec and not spec.startswith("/"):
        host, _, port = spec.rpartition(":")
        address = (host, int(port))
    handler = logging.handlers.SysLogHandler(
        address=address, facility=logging.handlers.SysLogHandler.LOG_MAIL, socktype=socktype
    )
    # LOG_PID: the PID is looked up per record, so it is right after detaching.
    handler.setFormatter(logging.Formatter("pyfetchmail[%(process)d]: %(message)s"))
    return handler


def _logfile_handler(path: str) -> logging.Handler | None:
    """The logfile handler, ``None`` if the file does not exist (fetchmail's notice)."""
    if not os.path.exists(path):
        log.warning('Logfile "%s" does not exist, ignoring logfile option.', path)
        return None
    if not os.access(path, os.W_OK):
        raise FetchmailError(f'Logfile "{path}" is not writable, aborting.')
    try:
        handler = logging.handlers.WatchedFileHandler(path, encoding="utf-8", errors="replace")
    except OSError as exc:
        raise FetchmailError(f'Logfile "{path}" is not writable, aborting.') from exc
    handler.setFormatter(logging.Formatter(f"%(asctime)s {_PREFIX}%(message)s", _LOGFILE_DATEFMT))
    return handler


def setup_logging(options: LogOptions, run: LogTargets) -> None:
    """Configure the ``pyfetchmail`` logger tree for this run.

    Replaces any handlers installed earlier (the function is called again
    after an rc reload), so it is idempotent.

    :param options: the command line (``-s``, ``-v``, ``-N``, ``-L``, ``--syslog``).
    :param run: global settings already merged with the command line
        (``logfile``, ``syslog``).
    :raises FetchmailError: the logfile exists but is not writable (exit 23).
    """
    root = logging.getLogger(_ROOT)
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.setLevel(_level(options))
    transcript = logging.getLogger(TRANSCRIPT_LOGGER)
    transcript.setLevel(logging.DEBUG if options.verbose >= 2 else logging.CRITICAL + 1)

    # fetchmail's split: progress on stdout, warnings and errors on stderr.
    console = [_ConsoleHandler("stdout", below=logging.WARNING), _ConsoleHandler("stderr")]
    for handler in console:
        handler.setFormatter(logging.Formatter(f"{_PREFIX}%(message)s"))
        _install(root, handler)  # until a better destination is known

    chosen: logging.Handler | None = None
    logfile = run.logfile  # already merged with -L by the configuration loader
    if logfile and options.nodetach:
        log.warning("The nodetach option is in effect, ignoring logfile option.")
    elif logfile:
        chosen = _logfile_handler(logfile)
    if run.syslog:
        try:
            sysh = _syslog_handler()
        except OSError as exc:
            log.warning("cannot open syslog (%s), logging to stderr", exc.strerror or exc)
        else:
            if chosen is None:
                chosen = sysh
            else:
                sysh.addFilter(SecretRedactingFilter())
                sysh.handle(
                    logging.makeLogRecord(
                        {
                            "name": _ROOT,
                            "levelno": logging.WARNING,
                            "levelname": "WARNING",
                            "msg": "syslog and logfile options are both set, ignoring "
                            f"syslog, and logging to {logfile}",
                        }
                    )
                )
                sysh.close()
    if chosen is not None:
        for handler in console:
            root.removeHandler(handler)
        _install(root, chosen)


class _ConsoleHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stdout``/``sys.stderr`` is *now* (they are
    replaced by tests and by detaching), like the stdlib's last-resort handler.

    With *below*, only records under that level are written (the stdout half
    of fetchmail's progress/diagnostics split); otherwise records from WARNING up.
    """

    def __init__(self, name: str, *, below: int | None = None) -> None:
        super().__init__()
        self._name = name
        if below is None:
            self.setLevel(logging.WARNING)
        else:
            self.addFilter(lambda record: record.levelno < below)

    @property
    def stream(self) -> TextIO:
        stream: TextIO = getattr(sys, self._name)
        return stream

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def reset_logging() -> None:
    """Undo :func:`setup_logging`: close our handlers, restore the levels.

    :func:`pyfetchmail.service.daemon.run` calls it on the way out, so a program (or a
    test) that calls ``cli.main`` twice in one process starts afresh.
    """
    root = logging.getLogger(_ROOT)
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.setLevel(logging.NOTSET)
    logging.getLogger(TRANSCRIPT_LOGGER).setLevel(logging.NOTSET)


def _install(root: logging.Logger, handler: logging.Handler) -> None:
    handler.addFilter(SecretRedactingFilter())
    root.addHandler(handler)

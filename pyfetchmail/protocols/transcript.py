"""Protocol transcripts (``-vv``): ``POP3> cmd`` / ``POP3< reply`` with secrets masked.

All transcript lines go to the logger ``pyfetchmail.transcript`` at DEBUG, so
:mod:`pyfetchmail.log` can switch them on for ``-vv`` only.

Invariant: the masking happens *here*, before a line is formatted, from the
command verb alone; callers never pass a password to a log call.  ``PASS x``
becomes ``PASS *``, ``APOP user digest`` becomes ``APOP user *``, ``RPOP x``
becomes ``RPOP *``, an ``AUTH`` initial response and every SASL response
become ``*`` (a cancellation shows as ``* (cancel)``); fetchmail prints
``PASS *`` the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

__all__ = ["TRANSCRIPT_LOGGER", "log_command", "log_reply", "log_sasl_response", "redact"]

log = logging.getLogger(__name__)

TRANSCRIPT_LOGGER = "pyfetchmail.transcript"
_transcript = logging.getLogger(TRANSCRIPT_LOGGER)

# verb -> number of leading arguments shown before the rest is masked
_SHOWN_ARGS = {"PASS": 0, "RPOP": 0, "APOP": 1, "AUTH": 1, "LOGIN": 1, "AUTHENTICATE": 1}


def redact(verb: str, args: Sequence[str]) -> str:
    """Return ``verb args`` as it may appear in a log, secrets replaced by ``*``."""
    shown = _SHOWN_ARGS.get(verb.upper())
    if shown is None or len(args) <= shown:
        return " ".join((verb, *args))
    return " ".join((verb, *args[:shown], "*"))


def log_command(proto: str, verb: str, args: Sequence[str]) -> None:
    """Log a command we send (``POP3> STAT``)."""
    if _transcript.isEnabledFor(logging.DEBUG):
        _transcript.debug("%s> %s", proto, redact(verb, args))


def log_sasl_response(proto: str, *, cancel: bool = False) -> None:
    """Log that a SASL response (or the ``*`` cancellation) was sent, never its content."""
    _transcript.debug("%s> %s", proto, "* (cancel)" if cancel else "*")


def log_reply(proto: str, text: str) -> None:
    """Log a line received from the server (``POP3< +OK``)."""
    if _transcript.isEnabledFor(logging.DEBUG):
        _transcript.debug("%s< %s", proto, text)

"""fetchmail's process exit codes (fetchmail 6.4 man page, EXIT CODES).

Invariant: the numeric values are part of the user-visible contract (cron
wrappers and systemd units test them) and must never change.
"""

from __future__ import annotations

import enum

__all__ = ["ExitCode", "aggregate", "query_status_name"]


class ExitCode(enum.IntEnum):
    """Exit status of a run, and status of a single query inside a run."""

    SUCCESS = 0  # at least one message retrieved (with -c: mail is waiting)
    NOMAIL = 1  # nothing retrieved
    SOCKET = 2  # connect, socket or TLS failure
    AUTHFAIL = 3  # authentication failed, no password available, all wedged
    PROTOCOL = 4  # protocol violation by the server
    SYNTAX = 5  # command-line or rc syntax error, invalid configuration
    IOERR = 6  # rc/idfile permission or ownership problem
    ERROR = 7  # server reported an error, client/server out of step
    EXCLUDE = 8  # another instance running, lock problems
    LOCKBUSY = 9  # server said the mailbox is locked
    SMTP = 10  # no SMTP/LMTP listener could be reached
    DNS = 11  # fatal name-resolution error
    BSMTP = 12  # BSMTP file could not be opened
    MAXFETCH = 13  # poll stopped because fetchlimit was reached
    SERVBUSY = 14  # server said the service is unavailable
    UNDEFINED = 23  # internal error


# Names fetchmail prints in "Query status=N (NAME)"; codes above 13 are printed bare.
_NAMED = {code for code in ExitCode if code <= ExitCode.MAXFETCH}


def query_status_name(code: int) -> str:
    """Return ``"N (NAME)"`` or ``"N"`` as fetchmail logs a query status.

    >>> query_status_name(2)
    '2 (SOCKET)'
    >>> query_status_name(14)
    '14'
    """
    if code in _NAMED:
        return f"{code} ({ExitCode(code).name})"
    return str(code)


def aggregate(statuses: list[int]) -> int:
    """Combine per-query statuses into the run's exit status.

    fetchmail's rule: 0 if *any* query succeeded, otherwise the status of the
    *last* query polled, and 1 (NOMAIL) when nothing was polled at all.
    """
    if not statuses:
        return int(ExitCode.NOMAIL)
    if any(s == ExitCode.SUCCESS for s in statuses):
        return int(ExitCode.SUCCESS)
    return statuses[-1]

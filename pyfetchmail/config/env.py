"""Who am I and where are my files: fetchmail's env.c rules (spec section 4.1).

Invariants:
- The user name comes from the first of ``FETCHMAILUSER``, ``LOGNAME``,
  ``USER`` that is set (even if empty), and is used only if the passwd entry
  of that name has the real uid; otherwise the real uid's passwd name wins.
- ``home`` is ``$HOME_ETC``, else ``$HOME``, else the passwd home, resolved
  with ``realpath`` (it must exist).  ``fmhome`` is ``$FETCHMAILHOME`` (must
  exist) or ``home``.  With ``FETCHMAILHOME`` set the rc file and pid file
  lose their leading dot; the id file keeps it.  Root's pid file is
  ``/var/run/fetchmail.pid``.  ``.netrc`` is always in ``home``.
- Failures raise :class:`~pyfetchmail.errors.FetchmailError` (exit 23) whose
  text is exactly what fetchmail prints.
"""

from __future__ import annotations

import logging
import os
import pwd
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from pyfetchmail.errors import FetchmailError

__all__ = ["Identity", "current_identity", "local_hostname", "qualify_hostname"]

log = logging.getLogger(__name__)

ROOT_PIDFILE = "/var/run/fetchmail.pid"


@dataclass(frozen=True, slots=True)
class Identity:
    """The invoking user and the default file locations derived from it."""

    user: str
    uid: int
    home: str
    fmhome: str
    rcfile: str
    idfile: str
    pidfile: str
    netrc: str
    fetchmailhost: str
    #: why ``fetchmailhost`` could not be qualified (resolver message), or None
    fetchmailhost_error: str | None = None


def qualify_hostname(name: str) -> tuple[str, str | None]:
    """*name* qualified via getaddrinfo(AI_CANONNAME) if it has no dot.

    Returns the name and None, or the unqualified name and the resolver's
    error message when the lookup fails (fetchmail then goes on with the
    bare name unless ETRN, ODMR or Kerberos V need the full one).
    """
    if "." in name:
        return name, None
    try:
        infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM, flags=socket.AI_CANONNAME)
    except socket.gaierror as exc:
        log.debug("cannot qualify host name %r: %s", name, exc)
        return name, str(exc.strerror)
    except (OSError, UnicodeError) as exc:
        return name, str(exc)
    for info in infos:
        if info[3]:
            return info[3], None
    return name, None


def local_hostname() -> str:
    """This host's name: ``gethostname()``, qualified via AI_CANONNAME if it has no dot."""
    return qualify_hostname(socket.gethostname())[0]


def _realpath(path: str, message: str) -> str:
    try:
        if not path:
            raise FileNotFoundError(path)
        return os.path.realpath(path, strict=True)
    except (OSError, ValueError) as exc:
        raise FetchmailError(message) from exc


_DANGEROUS = {
    "QMAILINJECT": (
        "qmail-inject or qmail's sendmail wrapper\ntamper with your From: or Message-ID: headers."
    ),
    "NULLMAILER_FLAGS": (
        "nullmailer-inject or nullmailer's\nsendmail wrapper tamper with your From:, "
        "Message-ID: or Return-Path: headers."
    ),
}


def _refuse_dangerous(env: Mapping[str, str]) -> None:
    """fetchmail refuses to run when these make the local MTA rewrite headers."""
    for var, what in _DANGEROUS.items():
        if env.get(var):
            raise FetchmailError(
                f"fetchmail: The {var} environment variable is set.\n"
                f"This is dangerous as it can make {what}\n"
                f'Try "env {var}= fetchmail YOUR ARGUMENTS HERE"\n'
                "fetchmail: Abort."
            )


def current_identity(environ: Mapping[str, str] | None = None) -> Identity:
    """Compute the :class:`Identity` from *environ* (default ``os.environ``) and passwd."""
    env = os.environ if environ is None else environ
    _refuse_dangerous(env)
    uid = os.getuid()
    try:
        by_uid = pwd.getpwuid(uid)
    except KeyError as exc:
        raise FetchmailError("fetchmail: You don't exist.  Go away.") from exc
    entry = by_uid
    name = next((env[k] for k in ("FETCHMAILUSER", "LOGNAME", "USER") if k in env), None)
    if name:
        try:
            by_name = pwd.getpwnam(name)
        except (KeyError, ValueError):
            by_name = None
        if by_name is not None and by_name.pw_uid == by_uid.pw_uid:
            entry = by_name

    home_raw = env.get("HOME_ETC")
    if home_raw is None:
        home_raw = env.get("HOME")
    if home_raw is None:
        home_raw = entry.pw_dir
    home = _realpath(home_raw, "fetchmail: Cannot find absolute path for user's home directory.")
    fmhome_raw = env.get("FETCHMAILHOME")
    at_home = fmhome_raw is None
    fmhome = (
        home
        if fmhome_raw is None
        else _realpath(
            fmhome_raw, "fetchmail: Cannot find absolute path for fetchmail's home directory."
        )
    )
    base = fmhome.rstrip("/") + "/"
    dot = "." if at_home else ""
    pidfile = ROOT_PIDFILE if uid == 0 else f"{base}{dot}fetchmail.pid"
    host, host_error = qualify_hostname(socket.gethostname())
    return Identity(
        user=entry.pw_name,
        uid=uid,
        home=home,
        fmhome=fmhome,
        rcfile=f"{base}{dot}fetchmailrc",
        idfile=f"{base}.fetchids",
        pidfile=pidfile,
        netrc=f"{home.rstrip('/')}/.netrc",
        fetchmailhost=host,
        fetchmailhost_error=host_error,
    )

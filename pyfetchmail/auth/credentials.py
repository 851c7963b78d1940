"""Password resolution for a query, in fetchmail 6.4's order (spec section 4.8).

1. ``password`` from the rc file (poll entry or ``defaults``);
2. the remote user name as a dummy when the authentication needs no password
   (``Auth.needs_password`` is False: otp, kerberos, gssapi, ssh, external;
   or the protocol is ETRN, which only names a domain);
3. ``~/.netrc`` (:mod:`pyfetchmail.auth.netrc`): the poll name, then ``via``;
4. **ours**: the system keyring, service ``pyfetchmail``, user name
   ``remote@pollname`` (``keyring set pyfetchmail joe@pop.example``).  A
   missing backend or any keyring failure is only logged at debug level;
5. a prompt ``Enter password for remote@pollname: `` on the controlling
   terminal with echo off, only when stdin is a terminal;
6. otherwise :class:`~pyfetchmail.errors.AuthError`
   ``can't find a password for remote@pollname.`` (exit 3).

Invariant: every real password found is handed to
:func:`pyfetchmail.log.register_secret` before it is returned, so it is masked
in every log line and traceback from then on.  The dummy of step 2 is the user
name, not a secret, and is not registered.
"""

from __future__ import annotations

import getpass
import logging
import os
import sys
from typing import Protocol as TypingProtocol

from pyfetchmail.auth.netrc import NetrcEntry, find_password, read_netrc
from pyfetchmail.config.model import MailProtocol, Query
from pyfetchmail.errors import AuthError
from pyfetchmail.log import register_secret

__all__ = [
    "KEYRING_SERVICE",
    "Credentials",
    "FixedSecret",
    "HasNetrcPath",
    "as_credentials",
    "resolve_credentials",
    "resolve_password",
]

log = logging.getLogger(__name__)

KEYRING_SERVICE = "pyfetchmail"

_netrc_cache: dict[tuple[str, int, int], tuple[NetrcEntry, ...]] = {}


class HasNetrcPath(TypingProtocol):
    """The part of ``config.env.Identity`` this module needs."""

    @property
    def netrc(self) -> str:
        """Absolute path of the user's ``.netrc`` (home, never FETCHMAILHOME)."""
        ...


def _netrc_entries(path: str) -> tuple[NetrcEntry, ...]:
    """Parse *path* once per content version, so its warnings appear once."""
    try:
        st = os.stat(path)
    except OSError:
        return ()
    key = (path, st.st_mtime_ns, st.st_size)
    if key not in _netrc_cache:
        _netrc_cache[key] = read_netrc(path)
    return _netrc_cache[key]


def _from_keyring(label: str) -> str | None:
    """Ask the system keyring; any failure means "not there"."""
    try:
        import keyring  # imported lazily: slow, and often unused

        secret = keyring.get_password(KEYRING_SERVICE, label)
    except Exception as exc:  # any backend failure means "no keyring here"
        log.debug("keyring lookup for %s failed: %s", label, type(exc).__name__)
        return None
    if secret is None:
        log.debug("no keyring entry for %s", label)
        return None
    return str(secret)


def resolve_password(
    query: Query, identity: HasNetrcPath, *, interactive: bool | None = None
) -> str | None:
    """Find the password for *query* (see the module docstring for the order).

    :param query: the query whose ``user.remote``/``server.pollname`` are looked up.
    :param identity: supplies the ``.netrc`` path.
    :param interactive: allow the terminal prompt; ``None`` = iff stdin is a tty.
    :returns: the password (the remote name for password-less methods).
    :raises AuthError: nothing found and no prompt possible (exit 3).
    """
    user, server = query.user, query.server
    label = query.label
    if user.password is not None:
        register_secret(user.password)
        return user.password
    if not server.auth.needs_password or server.protocol is MailProtocol.ETRN:
        return user.remote
    found = find_password(_netrc_entries(identity.netrc), server.pollname, user.remote, server.via)
    if found is not None:
        log.debug("password for %s found in %s", label, identity.netrc)
        register_secret(found)
        return found
    found = _from_keyring(label)
    if found is not None:
        log.debug("password for %s found in the keyring", label)
        register_secret(found)
        return found
    if interactive is None:
        interactive = _stdin_is_tty()
    if interactive:
        try:
            found = getpass.getpass(f"Enter password for {label}: ")
        except (EOFError, OSError):
            found = None
        if found is not None:
            register_secret(found)
            return found
    raise AuthError(f"can't find a password for {label}.")


def _stdin_is_tty() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):
        return False


class Credentials(TypingProtocol):
    """The seam a mail source logs in through: asked for the secret at each connect.

    A password is fixed for the life of a run; an OAuth2 access token is not
    (it is refreshed before it expires), which is why a session never keeps
    the secret from one connect to the next.
    """

    def secret(self) -> str | None:
        """The secret to log in with now (``None``: the method needs none)."""
        ...


class FixedSecret:
    """A secret found once at start-up (rc file, ``.netrc``, keyring, prompt)."""

    __slots__ = ("_secret",)

    def __init__(self, secret: str | None) -> None:
        self._secret = secret

    def secret(self) -> str | None:
        return self._secret

    def __repr__(self) -> str:  # never the secret itself
        return f"FixedSecret({'set' if self._secret is not None else 'none'})"


def as_credentials(value: Credentials | str | None) -> Credentials:
    """*value* as :class:`Credentials`: a plain string (or ``None``) is a fixed secret."""
    if value is None or isinstance(value, str):
        return FixedSecret(value)
    return value


def resolve_credentials(
    query: Query, identity: HasNetrcPath, *, interactive: bool | None = None
) -> Credentials:
    """The :class:`Credentials` of *query*: :func:`resolve_password` as a fixed secret."""
    return FixedSecret(resolve_password(query, identity, interactive=interactive))

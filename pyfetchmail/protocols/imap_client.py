"""The part of imapclient that pyfetchmail uses, as a typed Protocol.

imapclient ships without type information, so everything it returns is
``Any`` to the type checker.  This module is the one place where that
``Any`` is turned into types: :class:`ImapClientLike` lists exactly the
methods and attributes the IMAP modules call (all public imapclient API;
no private attribute, no subclass), :func:`open_client` constructs the real
``IMAPClient`` behind it, and :func:`capabilities`/:func:`drop` are the two
helpers every caller needs.

Invariant: no other module constructs ``IMAPClient`` or calls it outside this
Protocol, so a method we start to use must be added here first.
"""

from __future__ import annotations

import imaplib
import logging
import ssl
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, cast

from imapclient import IMAPClient

__all__ = ["FetchData", "ImapClientLike", "capabilities", "drop", "open_client"]

log = logging.getLogger(__name__)

#: ``fetch()``'s result: UID → {item name → value}.  Values are bytes, ints or tuples.
FetchData = Mapping[int, Mapping[bytes, Any]]


class ImapClientLike(Protocol):
    """The public ``imapclient.IMAPClient`` API pyfetchmail relies on."""

    welcome: bytes | None
    folder_encode: bool

    def capabilities(self) -> Sequence[bytes]: ...
    def socket(self) -> ssl.SSLSocket: ...
    # (a plain socket before TLS; only TLS callers use SSLSocket's methods)
    def starttls(self, ssl_context: object = None) -> bytes: ...
    def login(self, username: str, password: str) -> bytes: ...
    def plain_login(self, identity: str, password: str) -> bytes: ...
    def sasl_login(self, mech_name: str, mech_callable: Callable[[bytes], bytes]) -> bytes: ...
    def select_folder(self, folder: str, readonly: bool = False) -> Mapping[bytes, Any]: ...
    def search(self, criteria: Sequence[str | bytes]) -> Sequence[int]: ...
    def fetch(self, messages: Iterable[int], data: Sequence[bytes]) -> FetchData: ...
    def add_flags(
        self, messages: Iterable[int], flags: Sequence[bytes], silent: bool = False
    ) -> object: ...
    def expunge(self, messages: Iterable[int] | None = None) -> object: ...
    def uid_expunge(self, messages: Iterable[int]) -> object: ...
    def idle(self) -> object: ...
    def idle_check(self, timeout: float | None = None) -> list[Any]: ...
    def idle_done(self) -> tuple[bytes, list[Any]]: ...
    def logout(self) -> bytes: ...
    def shutdown(self) -> None: ...


def open_client(
    host: str,
    port: int,
    *,
    use_ssl: bool,
    ssl_context: object,
    timeout: float | None,
) -> ImapClientLike:
    """Connect (and for ``ssl``, handshake) with imapclient; return it, typed."""
    client: Any = IMAPClient(host, port=port, ssl=use_ssl, ssl_context=ssl_context, timeout=timeout)
    return cast(ImapClientLike, client)


def capabilities(client: ImapClientLike) -> frozenset[str]:
    """The server's capabilities, upper-case (RFC 3501 §7.2.1: case-insensitive)."""
    return frozenset(c.decode("ascii", "replace").upper() for c in client.capabilities())


def drop(client: ImapClientLike) -> None:
    """Close the connection without LOGOUT, ignoring errors (it may already be dead)."""
    try:
        client.shutdown()
    except (OSError, imaplib.IMAP4.error):
        log.debug("error while dropping the IMAP connection", exc_info=True)

"""A ``~/.netrc`` reader with fetchmail 6.4's rules and quirks (spec section 4.8).

The stdlib :mod:`netrc` module differs from fetchmail in ways users notice
(it raises on unknown tokens, keeps entries without ``login``, checks file
permissions), so this is a line-oriented parser of our own that copies
fetchmail's ``netrc.c`` behaviour:

- tokens are separated by whitespace; a token starting with ``"`` or ``'``
  runs to the matching quote (no escapes), so it may contain blanks;
- ``#`` starts a comment only at the start of a token (``pa#ss`` is a token);
- ``machine NAME`` starts an entry; ``login``/``user`` and
  ``password``/``passwd`` take a value; ``account`` takes a value that is
  ignored; ``macdef`` skips the rest of its line and every following line
  up to the next empty line;
- ``default`` starts an entry without a host: it is parsed but never matches;
- an entry without ``login`` is dropped;
- ``login``/``password``/``account`` before any ``machine`` →
  ``FILE:LINE: warning: found "TOK" before any host names``; anything else
  unexpected → ``FILE:LINE: warning: unknown token "TOK"``;
- no permission check on the file.

Lookup (:func:`find_password`): the *first* entry in file order whose
machine equals the name (exact, case-sensitive) and whose login equals the
remote user; if that entry has no password, the search is over for that
name (fetchmail does not look further), then the same with the ``via`` name.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

__all__ = ["NetrcEntry", "find_password", "parse_netrc", "read_netrc"]

log = logging.getLogger(__name__)

_VALUE_KEYWORDS = {
    "login": "login",
    "user": "login",
    "password": "password",
    "passwd": "password",
    "machine": "machine",
    "account": "account",
}


@dataclass(frozen=True, slots=True)
class NetrcEntry:
    """One usable entry; *host* is ``None`` for a ``default`` entry."""

    host: str | None
    login: str
    password: str | None = None


@dataclass(slots=True)
class _Building:
    host: str | None = None
    login: str | None = None
    password: str | None = None


def _tokens(line: str) -> list[str]:
    """Split one line into tokens (quotes and ``#`` comments as fetchmail does)."""
    tokens: list[str] = []
    i, n = 0, len(line)
    while i < n:
        while i < n and line[i].isspace():
            i += 1
        if i >= n or line[i] == "#":
            break
        quote = line[i] if line[i] in "\"'" else None
        if quote:
            i += 1
            end = line.find(quote, i)
            end = n if end < 0 else end
            tokens.append(line[i:end])
            i = end + 1
        else:
            start = i
            while i < n and not line[i].isspace():
                i += 1
            tokens.append(line[start:i])
    return tokens


def parse_netrc(text: str, filename: str = ".netrc") -> tuple[NetrcEntry, ...]:
    """Parse netrc *text*; warnings name *filename* and the line number.

    >>> parse_netrc("machine pop.example login joe password s3cret")
    (NetrcEntry(host='pop.example', login='joe', password='s3cret'),)
    """
    entries: list[NetrcEntry] = []
    current: _Building | None = None
    pending: str | None = None  # keyword waiting for its value
    in_macdef = False

    def finish() -> _Building:
        if current is not None and current.login is not None:
            entries.append(NetrcEntry(current.host, current.login, current.password))
        return _Building()

    for lineno, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r")
        if in_macdef:
            if line == "":
                in_macdef = False
            continue
        for tok in _tokens(line):
            if in_macdef:
                break  # the rest of the macdef line is the macro's name
            if pending is not None:
                if pending == "machine":
                    current = finish()
                    current.host = tok
                elif current is None:
                    log.warning(
                        '%s:%d: warning: found "%s" before any host names',
                        filename,
                        lineno,
                        pending,
                    )
                elif pending == "login":
                    current.login = tok
                elif pending == "password":
                    current.password = tok
                pending = None
                continue
            if tok == "default":
                current = finish()
            elif tok == "macdef":
                # fetchmail never warns about a premature macdef: its
                # tokenizer stops before the check is reached.
                in_macdef = True
            elif tok in _VALUE_KEYWORDS:
                pending = _VALUE_KEYWORDS[tok]
            else:
                log.warning('%s:%d: warning: unknown token "%s"', filename, lineno, tok)
    finish()
    return tuple(entries)


def read_netrc(path: str) -> tuple[NetrcEntry, ...]:
    """Parse the file at *path*; a missing or unreadable file has no entries."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as fp:
            text = fp.read()
    except OSError as exc:
        log.debug("cannot read %s: %s", path, exc.strerror or exc)
        return ()
    return parse_netrc(text, path)


def _search(entries: tuple[NetrcEntry, ...], host: str, login: str) -> NetrcEntry | None:
    for entry in entries:
        if entry.host is not None and entry.host == host and entry.login == login:
            return entry
    return None


def find_password(
    entries: tuple[NetrcEntry, ...], pollname: str, remote: str, via: str | None = None
) -> str | None:
    """The netrc password for *remote* at *pollname*, else at *via*, else ``None``."""
    entry = _search(entries, pollname, remote)
    if entry is not None and entry.password is not None:
        return entry.password
    if via:
        entry = _search(entries, via, remote)
        if entry is not None and entry.password is not None:
            return entry.password
    return None

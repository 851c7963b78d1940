"""The ``.fetchmailrc`` grammar: tokens -> raw poll entries (pure, no file I/O).

Design: :mod:`pyfetchmail.config.rclexer` turns the text into tokens (its
docstring says why the lexer is hand-written).  Each token kind is mapped to
one private-use character, so the token stream becomes a compact string.
The pyparsing grammar (:func:`_build_grammar`) matches *statements* over that
string: ``set ...``, or an entry header (``poll``/``skip``/``defaults``)
followed by options.  Each option is an *item* (a keyword with its
arguments) described by a token-level regular expression in :func:`_shapes`;
items are permissive (arguments optional) so nothing backtracks across
items, and one regex match per statement keeps pyparsing fast enough for
thousands of entries.  :class:`_Builder` then walks the items in order and
applies fetchmail's (bison LALR) rules exactly, including where an error is
reported:

- a missing or wrong argument is a syntax error *at the token found instead*;
- ``no`` after user options always starts a user option (bison shift
  preference), so ``user a keep no dns`` is a syntax error at ``dns``;
- any other server option after user options is the semantic error
  ``server option after user options``, reported at the option's last token
  (or at the look-ahead token when the option ends in an open list);
  parsing then continues with the next statement;
- the first syntax error stops the parse.

The result is :class:`RawConfig`: per-entry server and user option mappings
holding only what the file *set* (fetchmail's tri-state: absent = unset),
with model field names as keys.  Merging and defaults live in
:mod:`pyfetchmail.config.rcfile`.
"""

from __future__ import annotations

import enum
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import pyparsing as pp

from pyfetchmail.config.model import Auth, BadHeader, MailProtocol, NameMapping
from pyfetchmail.config.rclexer import KEYWORDS, Token, scan, token_position, token_text
from pyfetchmail.config.validate import check_interface
from pyfetchmail.errors import ConfigError

__all__ = ["RawConfig", "RawEntry", "RcSyntaxError", "parse_rc", "prepend_dir"]

log = logging.getLogger(__name__)

_INT_MAX = 2**31 - 1

_KINDS = sorted(
    set(KEYWORDS.values())
    | {"USERNAME", "IS", "TO", "PASSWORD", "AUTHENTICATE", "AUTHTYPE", "PROTO"}
    | {"KPOP", "SDPS", "MAP", "STRING", "NUMBER"}
)
_CHAR = {kind: chr(0xE000 + i) for i, kind in enumerate(_KINDS)}

# Option keywords grouped by argument shape; model field name per keyword.
_SERVER_STR = {
    "VIA": "via",
    "QVIRTUAL": "qvirtual",
    "PRINCIPAL": "principal",
    "ESMTPNAME": "esmtpname",
    "ESMTPPASSWORD": "esmtppassword",
    "INTERFACE": "interface",
    "MONITOR": "monitor",
    "PLUGIN": "plugin",
    "PLUGOUT": "plugout",
}
_USER_STR = {
    "PASSWORD": "password",
    "SMTPADDRESS": "smtpaddress",
    "SMTPNAME": "smtpname",
    "MDA": "mda",
    "BSMTP": "bsmtp",
    "PRECONNECT": "preconnect",
    "POSTCONNECT": "postconnect",
    "SSLKEY": "sslkey",
    "SSLCERT": "sslcert",
    "SSLPROTO": "sslproto",
    "SSLCERTFILE": "sslcertfile",
    "SSLCERTPATH": "sslcertpath",
    "SSLCOMMONNAME": "sslcommonname",
    "SSLFINGERPRINT": "sslfingerprint",
    "PROPERTIES": "properties",
}
# Relative paths in these are taken relative to the rc file's directory.
PATH_OPTIONS = frozenset({"bsmtp", "sslkey", "sslcert", "sslcertfile", "sslcertpath"})
_SERVER_NUM = {"PORT": "service", "INTERVAL": "interval", "TIMEOUT": "timeout"}
_USER_NUM = {
    "LIMIT": "limit",
    "WARNINGS": "warnings",
    "FETCHLIMIT": "fetchlimit",
    "FETCHSIZELIMIT": "fetchsizelimit",
    "FASTUIDL": "fastuidl",
    "BATCHLIMIT": "batchlimit",
    "EXPUNGE": "expunge",
}
_SERVER_LIST = {"AKA": "aka", "LOCALDOMAINS": "localdomains"}
_USER_LIST = {"FOLDER": "mailboxes", "SMTPHOST": "smtphunt", "FETCHDOMAINS": "fetchdomains"}
_SERVER_FLAG = {
    "UIDL": "uidl",
    "CHECKALIAS": "checkalias",
    "DNS": "dns",
    "TRACEPOLLS": "tracepolls",
}
_USER_FLAG = {
    "KEEP": "keep",
    "FLUSH": "flush",
    "LIMITFLUSH": "limitflush",
    "FETCHALL": "fetchall",
    "REWRITE": "rewrite",
    "FORCECR": "forcecr",
    "STRIPCR": "stripcr",
    "PASS8BITS": "pass8bits",
    "DROPSTATUS": "dropstatus",
    "DROPDELIVERED": "dropdelivered",
    "MIMEDECODE": "mimedecode",
    "IDLE": "idle",
    "SSL": "ssl",
    "SSLCERTCK": "sslcertck",
}
_SET_STR = {"LOGFILE": "logfile", "IDFILE": "idfile", "PIDFILE": "pidfile"}
_SET_STR |= {"POSTMASTER": "postmaster", "PROPERTIES": "properties"}
_SET_FLAG = {
    "BOUNCEMAIL": "bouncemail",
    "SPAMBOUNCE": "spambounce",
    "SOFTBOUNCE": "softbounce",
    "SYSLOG": "syslog",
    "INVISIBLE": "invisible",
    "SHOWDOTS": "showdots",
}
_NO_SERVER = {**_SERVER_FLAG, "ENVELOPE": "envelope"}
_NO_USER = _USER_FLAG


def _cls(*kinds: str) -> str:
    return "[" + "".join(_CHAR[k] for k in kinds) + "]"


def _c(kind: str) -> str:
    return _CHAR[kind]


def _shapes() -> dict[str, str]:
    """Token-level regular expression of each item kind (arguments optional)."""
    s, n = _c("STRING"), _c("NUMBER")
    mapping = f"(?:{s}(?:{_c('MAP')}{s}?)?)"
    return {
        "set": _c("SET")
        + f"(?:{_cls(*_SET_STR)}{_c('MAP')}?{s}?|{_c('DAEMON')}{_c('MAP')}?{n}?"
        + f"|{_cls(*_SET_FLAG)}|{_c('NO')}{_cls(*_SET_FLAG)}?)?",
        "header": f"{_cls('POLL', 'SKIP')}{s}?|{_c('DEFAULTS')}",
        "str": f"{_cls(*_SERVER_STR, *_USER_STR)}{s}?",
        "num": f"{_cls(*_SERVER_NUM, *_USER_NUM)}{n}?",
        "list": f"{_cls(*_SERVER_LIST, *_USER_LIST)}{s}*",
        "flag": _cls(*_SERVER_FLAG, *_USER_FLAG, "LMTP"),
        "no": f"{_c('NO')}{_cls(*_NO_SERVER, *_NO_USER)}?",
        "names": f"{_cls('USERNAME', 'IS', 'TO')}{mapping}*{_cls('HERE', 'THERE')}?",
        "antispam": f"{_c('SPAMRESPONSE')}{n}*",
        "protocol": f"{_c('PROTOCOL')}{_cls('PROTO', 'KPOP', 'SDPS')}?",
        "service": f"{_c('SERVICE')}{_cls('STRING', 'NUMBER')}?",
        "auth": f"{_c('AUTHENTICATE')}{_c('AUTHTYPE')}?",
        "envelope": f"{_c('ENVELOPE')}{n}?{s}?",
        "badheader": f"{_c('BADHEADER')}{_cls('ACCEPT', 'REJECT')}?",
    }


_SHAPES = _shapes()
_OPTION = "|".join(body for name, body in _SHAPES.items() if name not in ("set", "header"))
# Splits a matched statement into items; the named group is the item kind.
_ITEM_RE = re.compile("|".join(f"(?P<{name}>{body})" for name, body in _SHAPES.items()))


def _build_grammar() -> pp.ParserElement:
    """rcfile := statement* ; statement := set-item | header option* | option+.

    A leading run of options without a header is matched too, so that the
    builder reports the error at its first token as fetchmail does.  Each
    statement is one regex match, so pyparsing does one call per statement
    (the 3000-query benchmark needs this).
    """
    set_stmt = pp.Regex(_SHAPES["set"]).set_name("set statement")
    entry = pp.Regex(f"(?:{_SHAPES['header']})(?:{_OPTION})*").set_name("poll entry")
    stray = pp.Regex(f"(?:{_OPTION})+").set_name("option outside an entry")
    statement = (set_stmt | entry | stray).set_parse_action(_statement_action)
    return pp.ZeroOrMore(statement).leave_whitespace()


def _statement_action(_s: str, loc: int, toks: pp.ParseResults) -> tuple[int, int]:
    """Result of one statement: (first token index, end token index)."""
    return (loc, loc + len(toks[0]))


_GRAMMAR = _build_grammar()


def _items(stream: str, start: int, end: int) -> list[tuple[str, int, int]]:
    """Split the statement ``stream[start:end]`` into (kind, start, end) items."""
    out = []
    while start < end:
        m = _ITEM_RE.match(stream, start, end)
        assert m is not None
        assert m.lastgroup is not None
        out.append((m.lastgroup, start, m.end()))
        start = m.end()
    return out


class RcSyntaxError(ConfigError):
    """rc file rejected while parsing (exit 5).

    ``str(error)`` is exactly what fetchmail prints (one line per error,
    ``fetchmail:<rcfile>:<line>: <msg> at <token>``).  Our additions:
    :attr:`location` (``file:line:col``, true position of the first
    offending token), :attr:`token` (its raw text) and :attr:`lines`.
    """

    def __init__(self, lines: list[str], location: str | None, token: str | None) -> None:
        super().__init__("\n".join(lines))
        self.location = location
        self.token = token
        self.lines = tuple(lines)


@dataclass(slots=True)
class RawEntry:
    """One ``poll``/``skip``/``defaults`` record as written (only set options)."""

    pollname: str
    skip: bool
    is_defaults: bool
    server: dict[str, Any] = field(default_factory=dict)
    users: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class RawConfig:
    """Parse result: ``set`` globals and entries in file order."""

    run: dict[str, Any] = field(default_factory=dict)
    entries: list[RawEntry] = field(default_factory=list)


def prepend_dir(path: str, rcdir: str) -> str:
    """Make *path* absolute against *rcdir* as fetchmail does (no ``~``)."""
    if not path or path.startswith("/") or path == "-" or not rcdir:
        return path
    return rcdir + path if rcdir.endswith("/") else f"{rcdir}/{path}"


def parse_rc(text: str, rcfile: str, rcdir: str = "") -> RawConfig:
    """Parse rc *text* (decoded latin-1); raise :class:`RcSyntaxError` on errors.

    *rcfile* names the file in messages; *rcdir* is the directory relative
    paths are resolved against (empty = leave them relative).
    """
    tokens, end_line = scan(text)
    stream = "".join(_CHAR[t.kind] for t in tokens)
    statements = _GRAMMAR.parse_string(stream, parse_all=False)
    builder = _Builder(text, tokens, end_line, rcfile, rcdir)
    consumed = 0
    for first, last in statements:
        if not all(builder.item(*item) for item in _items(stream, first, last)):
            break
        consumed = last
    else:
        if consumed < len(tokens):
            builder.syntax_error(consumed)
        else:
            builder.finish()
    if builder.errors:
        raise RcSyntaxError(builder.errors, builder.first_location, builder.first_token)
    return builder.config


class _Mode(enum.Enum):
    """Where the builder is inside a statement."""

    NONE = "none"  # between statements
    SERVER = "server"  # after the header: server options (or first user option)
    IMPLICIT = "implicit"  # user options without "user": the default user
    EXPLICIT = "explicit"  # inside "user ..." blocks


class _Builder:
    """Applies fetchmail's statement rules to the item sequence."""

    def __init__(
        self, source: str, tokens: list[Token], end_line: int, rcfile: str, rcdir: str
    ) -> None:
        self.source = source
        self.tokens = tokens
        self.end_line = end_line
        self.rcfile = rcfile
        self.rcdir = rcdir
        self.config = RawConfig()
        self.errors: list[str] = []
        self.first_location: str | None = None
        self.first_token: str | None = None
        self.entry: RawEntry | None = None
        self.user: dict[str, Any] | None = None
        self.mode = _Mode.NONE
        self.pending = False  # the current user block is not yet stored

    # -- errors -----------------------------------------------------------
    def _report(self, message: str, index: int) -> None:
        if index < len(self.tokens):
            tok = self.tokens[index]
            shown, line = token_text(self.source, tok) or "end of input", tok.line
            real_line, column = token_position(self.source, tok)
            where = f"{self.rcfile}:{real_line}:{column}"
        else:
            shown, line = "end of input", self.end_line
            where = f"{self.rcfile}:{line}"
        self.errors.append(f"fetchmail:{self.rcfile}:{line}: {message} at {shown}")
        if self.first_location is None:
            self.first_location, self.first_token = where, shown

    def syntax_error(self, index: int) -> bool:
        self._report("syntax error", index)
        return False

    # -- statements -------------------------------------------------------
    def finish(self) -> None:
        self._close_entry()

    def _close_entry(self) -> None:
        if self.entry is not None:
            self._store_user()
            if not self.entry.users:
                self.entry.users.append({})  # no user part: one default query
            self.config.entries.append(self.entry)
        self.entry, self.user, self.mode = None, None, _Mode.NONE

    def _store_user(self) -> None:
        if self.pending and self.entry is not None and self.user is not None:
            self.entry.users.append(self.user)
        self.pending = False

    def item(self, kind: str, start: int, end: int) -> bool:
        """Handle one item; False after a syntax error (parsing stops)."""
        toks = self.tokens[start:end]
        if kind == "set":
            self._close_entry()
            return self._set(toks, start, end)
        if kind == "header":
            self._close_entry()
            return self._header(toks, start, end)
        if self.entry is None:
            return self.syntax_error(start)
        return self._option(kind, toks, start, end)

    def _set(self, toks: list[Token], start: int, end: int) -> bool:
        if len(toks) == 1:
            return self.syntax_error(end)
        key = toks[1].kind
        run = self.config.run
        if key in _SET_FLAG:
            run[_SET_FLAG[key]] = True
        elif key == "NO":
            if len(toks) < 3:
                return self.syntax_error(end)
            # fetchmail bug: "set no showdots" stores a non-zero "false" flag.
            run[_SET_FLAG[toks[2].kind]] = toks[2].kind == "SHOWDOTS"
        else:
            last = toks[-1]
            if last.kind not in ("STRING", "NUMBER"):
                return self.syntax_error(end)
            if key == "DAEMON":
                run["poll_interval"] = self._number(last, end - 1)
            else:
                value = str(last.value)
                if key in ("LOGFILE", "IDFILE", "PIDFILE"):
                    value = prepend_dir(value, self.rcdir)
                run[_SET_STR[key]] = value
        return True

    def _header(self, toks: list[Token], start: int, end: int) -> bool:
        if toks[0].kind == "DEFAULTS":
            self.entry = RawEntry("defaults", skip=False, is_defaults=True)
        elif len(toks) == 1:
            return self.syntax_error(end)
        else:
            name = str(toks[1].value)
            self.entry = RawEntry(name, toks[0].kind == "SKIP", name == "defaults")
        self.mode = _Mode.SERVER
        self.user = {}
        return True

    def _option(self, kind: str, toks: list[Token], start: int, end: int) -> bool:
        first = toks[0].kind
        if kind == "no":
            if len(toks) == 1:
                return self.syntax_error(end)
            flag = toks[1].kind
            if self.mode is not _Mode.SERVER and flag in _NO_SERVER:
                return self.syntax_error(start + 1)  # bison shifted NO as a user option
            is_server = flag in _NO_SERVER
        elif kind == "names":
            is_server = False
        else:
            is_server = first in _SERVER_KINDS
        if is_server:
            if self.mode is not _Mode.SERVER:
                return self._server_after_user(kind, toks, start, end)
            return self._server_option(kind, toks, start, end)
        return self._user_option(kind, toks, start, end)

    def _server_after_user(self, kind: str, toks: list[Token], start: int, end: int) -> bool:
        ok = self._server_option(kind, toks, start, end, dry=True)
        if not ok:
            return False
        # Lists need a look-ahead token before bison can reduce.
        where = end if kind == "list" else end - 1
        self._report("server option after user options", where)
        self._store_user()
        if self.entry is not None:
            self._close_entry()
        return True

    def _number(self, tok: Token, index: int) -> int:
        value = tok.value
        assert isinstance(value, int)
        if abs(value) > _INT_MAX:
            self._report("number out of range", index)
            return 0
        return value

    def _server_option(
        self, kind: str, toks: list[Token], start: int, end: int, dry: bool = False
    ) -> bool:
        assert self.entry is not None
        srv: dict[str, Any] = {} if dry else self.entry.server
        key = toks[0].kind
        last = toks[-1]
        if kind == "no":
            flag = toks[1].kind
            # fetchmail bug kept: "no tracepolls" stores a non-zero "false"
            # flag that is never normalised, so it turns tracepolls on.
            srv[_NO_SERVER[flag]] = None if flag == "ENVELOPE" else flag == "TRACEPOLLS"
        elif kind == "flag":
            srv[_SERVER_FLAG[key]] = True
        elif len(toks) == 1 and kind != "list":
            return self.syntax_error(end)
        elif kind == "str":
            srv[_SERVER_STR[key]] = str(last.value)
            if key == "INTERFACE":
                return self._interface(str(last.value))
        elif kind == "num":
            value = self._number(last, end - 1)
            if key == "PORT":
                srv["service"] = str(value)
            elif value:  # 0 means "unset" for interval and timeout
                srv[_SERVER_NUM[key]] = value
            else:
                srv.pop(_SERVER_NUM[key], None)
        elif kind == "list":
            if len(toks) == 1:
                return self.syntax_error(end)
            srv.setdefault(_SERVER_LIST[key], []).extend(str(t.value) for t in toks[1:])
        elif kind == "protocol":
            self._protocol(srv, last)
        elif kind == "service":
            service = self._number(last, end - 1) if last.kind == "NUMBER" else last.value
            srv["service"] = str(service)
        elif kind == "auth":
            assert isinstance(last.value, Auth)
            srv["auth"] = last.value
        elif kind == "envelope":
            if last.kind != "STRING":
                return self.syntax_error(end)
            srv["envelope"] = str(last.value)
            skip = self._number(toks[1], start + 1) if len(toks) == 3 else 0
            if skip:
                srv["envskip"] = skip
            else:
                srv.pop("envskip", None)
        elif kind == "badheader":
            srv["badheader"] = BadHeader.ACCEPT if last.kind == "ACCEPT" else BadHeader.REJECT
        return True

    def _interface(self, value: str) -> bool:
        """fetchmail parses ``interface`` while reading and exits on errors."""
        try:
            check_interface(value)
        except ConfigError as exc:
            self.errors.append(exc.message)
            return False
        return True

    @staticmethod
    def _protocol(srv: dict[str, Any], tok: Token) -> None:
        if tok.kind == "KPOP":
            # KPOP = POP3 on the kpop service with Kerberos; a previously
            # forced "password" becomes Kerberos V5 (Debian builds have KRB5).
            srv["protocol"] = MailProtocol.POP3
            if srv.get("auth") is Auth.PASSWORD:
                srv["auth"] = Auth.KERBEROS_V5
            srv["service"] = "kpop"
        elif tok.kind == "SDPS":
            srv["protocol"] = MailProtocol.SDPS
        else:
            assert isinstance(tok.value, MailProtocol)
            srv["protocol"] = tok.value

    def _user_option(self, kind: str, toks: list[Token], start: int, end: int) -> bool:
        key = toks[0].kind
        if key == "USERNAME":
            if self.mode is _Mode.IMPLICIT:
                return self.syntax_error(start)
            self._store_user()
            self.user = {}
            self.mode = _Mode.EXPLICIT
        elif self.mode is _Mode.SERVER:
            self.mode = _Mode.IMPLICIT
        self.pending = True
        user = self.user
        assert user is not None
        last = toks[-1]
        if kind == "no":
            user[_NO_USER[toks[1].kind]] = False
        elif kind == "flag":
            if key == "LMTP":
                user["lmtp"] = True
            else:
                user[_USER_FLAG[key]] = True
        elif kind == "names":
            return self._names(user, toks, start, end)
        elif len(toks) == 1:
            return self.syntax_error(end)
        elif kind == "str":
            value = str(last.value)
            name = _USER_STR[key]
            user[name] = prepend_dir(value, self.rcdir) if name in PATH_OPTIONS else value
        elif kind == "num":
            user[_USER_NUM[key]] = self._number(last, end - 1)
        elif kind == "list":
            user.setdefault(_USER_LIST[key], []).extend(str(t.value) for t in toks[1:])
        elif kind == "antispam":
            user.setdefault("antispam", []).extend(
                self._number(t, start + i + 1) for i, t in enumerate(toks[1:])
            )
        return True

    def _names(self, user: dict[str, Any], toks: list[Token], start: int, end: int) -> bool:
        """``user``/``is``/``to`` with their name lists and ``here``/``there``."""
        key = toks[0].kind
        tail = toks[-1].kind if toks[-1].kind in ("HERE", "THERE") else None
        body = toks[1 : len(toks) - (1 if tail else 0)]
        if not body:
            return self.syntax_error(start + 1)
        if body[-1].kind == "MAP":  # "a =" without the local name
            return self.syntax_error(start + len(toks))
        simple = len(body) == 1
        if tail == "THERE" and (key == "TO" or not simple):
            return self.syntax_error(end - 1)
        if key == "USERNAME" and not simple and tail != "HERE":
            return self.syntax_error(end)
        if simple and (tail == "THERE" or (key == "USERNAME" and tail is None)):
            user["remote"] = str(body[0].value)
            return True
        names = user.setdefault("localnames", [])
        i = 0
        while i < len(body):
            remote = str(body[i].value)
            if i + 1 < len(body) and body[i + 1].kind == "MAP":
                names.append(NameMapping(remote, str(body[i + 2].value), mapped=True))
                i += 3
            else:
                if remote == "*":
                    user["wildcard"] = True
                else:
                    names.append(NameMapping(remote, remote))
                i += 1
        return True


_SERVER_KINDS = frozenset(
    {*_SERVER_STR, *_SERVER_NUM, *_SERVER_LIST, *_SERVER_FLAG}
    | {"PROTOCOL", "SERVICE", "AUTHENTICATE", "ENVELOPE", "BADHEADER"}
)

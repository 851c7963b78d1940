"""Lexer for the ``.fetchmailrc`` language, faithful to fetchmail 6.4's flex scanner.

Why a hand-written lexer: fetchmail's scanner is context-sensitive.  The word
after ``user``/``pass``/``is``/``to``/``=`` is read as a plain string even when
it is a keyword or a number ("name" state); after ``auth`` the word
``password`` is an auth type ("auth" state); glued forms such as ``nokeep``
split into ``no`` + ``keep``; and flex picks the *longest* match, so
``"a"b`` is one unquoted word while ``"a b"c`` is a quoted string followed by
``c``.  Expressing these states in pyparsing's scanner would be awkward and
slow, so this module turns the text into a list of :class:`Token` and the
pyparsing grammar in :mod:`pyfetchmail.config.rcgrammar` parses that list.

Invariants:
- Input is text decoded from bytes with latin-1, so every byte is one
  character and nothing is lost; string values are converted back to bytes
  and decoded as UTF-8 with ``surrogateescape`` (valid UTF-8 reads naturally,
  other bytes survive a round trip).
- Escapes (``\\n \\t \\b \\r \\\\ \\xHH \\0oo \\DDD``, any other ``\\c`` = ``c``)
  are processed in every string, quoted or not; like C strings, a string ends
  at the first NUL byte (``\\x00``, ``\\0``, ``\\256`` ...).
- :attr:`Token.line` counts lines the way fetchmail does (newlines *inside*
  quoted strings are not counted); :func:`token_position` gives the true
  1-based line and column.
- Lexing never fails: every character belongs to some token or separator.
"""

from __future__ import annotations

import logging
import re
from typing import NamedTuple

from pyfetchmail.config.model import Auth, MailProtocol

__all__ = [
    "KEYWORDS",
    "Token",
    "scan",
    "token_position",
    "token_text",
    "tokenize",
    "unescape",
]

log = logging.getLogger(__name__)

# Plain keywords: word -> token kind (fetchmail's token names).
KEYWORDS: dict[str, str] = {
    "set": "SET",
    "logfile": "LOGFILE",
    "idfile": "IDFILE",
    "pidfile": "PIDFILE",
    "daemon": "DAEMON",
    "syslog": "SYSLOG",
    "invisible": "INVISIBLE",
    "showdots": "SHOWDOTS",
    "postmaster": "POSTMASTER",
    "bouncemail": "BOUNCEMAIL",
    "spambounce": "SPAMBOUNCE",
    "softbounce": "SOFTBOUNCE",
    "warnings": "WARNINGS",
    "tracepolls": "TRACEPOLLS",
    "defaults": "DEFAULTS",
    "server": "POLL",
    "poll": "POLL",
    "skip": "SKIP",
    "via": "VIA",
    "aka": "AKA",
    "local": "LOCALDOMAINS",
    "localdomains": "LOCALDOMAINS",
    "proto": "PROTOCOL",
    "protocol": "PROTOCOL",
    "service": "SERVICE",
    "port": "PORT",
    "interval": "INTERVAL",
    "timeout": "TIMEOUT",
    "envelope": "ENVELOPE",
    "qvirtual": "QVIRTUAL",
    "principal": "PRINCIPAL",
    "esmtpname": "ESMTPNAME",
    "esmtppassword": "ESMTPPASSWORD",
    "bad-header": "BADHEADER",
    "accept": "ACCEPT",
    "reject": "REJECT",
    "folder": "FOLDER",
    "folders": "FOLDER",
    "smtp": "SMTPHOST",
    "smtphost": "SMTPHOST",
    "fetchdomains": "FETCHDOMAINS",
    "smtpaddress": "SMTPADDRESS",
    "smtpname": "SMTPNAME",
    "antispam": "SPAMRESPONSE",
    "mda": "MDA",
    "bsmtp": "BSMTP",
    "lmtp": "LMTP",
    "pre": "PRECONNECT",
    "preconnect": "PRECONNECT",
    "post": "POSTCONNECT",
    "postconnect": "POSTCONNECT",
    "interface": "INTERFACE",
    "monitor": "MONITOR",
    "plugin": "PLUGIN",
    "plugout": "PLUGOUT",
    "batchlimit": "BATCHLIMIT",
    "fetchlimit": "FETCHLIMIT",
    "fetchsizelimit": "FETCHSIZELIMIT",
    "fastuidl": "FASTUIDL",
    "expunge": "EXPUNGE",
    "properties": "PROPERTIES",
    "here": "HERE",
    "there": "THERE",
    "no": "NO",
    "keep": "KEEP",
    "flush": "FLUSH",
    "limitflush": "LIMITFLUSH",
    "fetchall": "FETCHALL",
    "rewrite": "REWRITE",
    "forcecr": "FORCECR",
    "stripcr": "STRIPCR",
    "pass8": "PASS8BITS",
    "pass8bits": "PASS8BITS",
    "dropstatus": "DROPSTATUS",
    "dropdelivered": "DROPDELIVERED",
    "mimedec": "MIMEDECODE",
    "mimedecode": "MIMEDECODE",
    "idle": "IDLE",
    "dns": "DNS",
    "uidl": "UIDL",
    "ssl": "SSL",
    "sslkey": "SSLKEY",
    "sslcert": "SSLCERT",
    "sslproto": "SSLPROTO",
    "sslcertck": "SSLCERTCK",
    "sslcertfile": "SSLCERTFILE",
    "sslcertpath": "SSLCERTPATH",
    "sslcommonname": "SSLCOMMONNAME",
    "sslfingerprint": "SSLFINGERPRINT",
    "checkalias": "CHECKALIAS",
    "limit": "LIMIT",
}

# Keywords that put the scanner into "name" state (next word is a string).
_NAME_STARTERS = {"user": "USERNAME", "username": "USERNAME", "is": "IS", "to": "TO"}
_PASSWORD_WORDS = {"pass": "PASSWORD", "password": "PASSWORD"}
_AUTH_STARTERS = frozenset({"auth", "authenticate", "preauth", "preauthenticate"})

# Auth-type words are keywords in every state except "name" (rc kerberos = v4).
_AUTH_TYPES: dict[str, Auth] = {
    "any": Auth.ANY,
    "gssapi": Auth.GSSAPI,
    "kerberos4": Auth.KERBEROS_V4,
    "kerberos_v4": Auth.KERBEROS_V4,
    "kerberos5": Auth.KERBEROS_V5,
    "kerberos_v5": Auth.KERBEROS_V5,
    "kerberos": Auth.KERBEROS_V4,
    "ssh": Auth.SSH,
    "external": Auth.EXTERNAL,
    "otp": Auth.OTP,
    "opie": Auth.OTP,
    "cram": Auth.CRAM_MD5,
    "cram-md5": Auth.CRAM_MD5,
    "msn": Auth.MSN,
    "ntlm": Auth.NTLM,
}

# Protocol names: all lower or all upper case only.  kpop and sdps are tokens
# of their own because the grammar treats them specially.
_PROTOCOLS: dict[str, MailProtocol] = {}
for _p in (MailProtocol.AUTO, MailProtocol.POP2, MailProtocol.POP3, MailProtocol.IMAP):
    _PROTOCOLS[_p.value] = _PROTOCOLS[_p.value.upper()] = _p
for _p in (MailProtocol.APOP, MailProtocol.RPOP, MailProtocol.ETRN, MailProtocol.ODMR):
    _PROTOCOLS[_p.value] = _PROTOCOLS[_p.value.upper()] = _p
_SPECIAL_PROTOCOLS = {"kpop": "KPOP", "KPOP": "KPOP", "sdps": "SDPS", "SDPS": "SDPS"}

# "no" glued to these words is split into NO + word (flex yyless(2)).
_GLUED_NO = frozenset(
    "no" + w
    for w in (
        "bouncemail",
        "uidl",
        "checkalias",
        "dns",
        "envelope",
        "keep",
        "flush",
        "limitflush",
        "fetchall",
        "rewrite",
        "forcecr",
        "stripcr",
        "pass8",
        "pass8bits",
        "dropstatus",
        "dropdelivered",
        "mimedec",
        "mimedecode",
        "spambounce",
        "idle",
    )
)

_NOISE = frozenset({"with", "and", "has", "wants", "options"})

_NUMBER = re.compile(r"-?[0-9]+")
_HEX = "0123456789abcdefABCDEF"
_C_ESCAPES = {"\\": "\\", "n": "\n", "t": "\t", "b": "\b", "r": "\r"}

_INITIAL, _NAME, _AUTH = 0, 1, 2

TokenValue = str | int | Auth | MailProtocol | None


class Token(NamedTuple):
    """One scanner token (a NamedTuple: tens of thousands are made per file).

    *kind* is fetchmail's token name (``"POLL"``, ``"STRING"``, ``"NUMBER"`` ...);
    *value* the decoded string, the integer, or the :class:`Auth`/:class:`MailProtocol`;
    *line* fetchmail's line counter; *start*/*end* the offsets of the raw
    text in the source (see :func:`token_text` and :func:`token_position`).
    """

    kind: str
    value: TokenValue
    line: int
    start: int
    end: int


def token_text(source: str, token: Token) -> str:
    """The raw text of *token*, as fetchmail prints it after "syntax error at"."""
    return _display(source[token.start : token.end])


def token_position(source: str, token: Token) -> tuple[int, int]:
    """True 1-based (line, column) of *token* in *source*."""
    line = source.count("\n", 0, token.start) + 1
    bol = source.rfind("\n", 0, token.start) + 1
    return line, token.start - bol + 1


def unescape(raw: str) -> str:
    """Process fetchmail's escapes in *raw* (latin-1 text), C-string semantics.

    The result is still one character per byte; it stops at the first NUL.
    """
    raw = raw.split("\0", 1)[0]
    if "\\" not in raw:
        return raw
    out: list[str] = []
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        if i + 1 >= n:  # backslash at the end of the string is dropped
            break
        c = raw[i + 1]
        i += 2
        if c in "xX":
            val = digits = 0
            while i < n and digits < 2 and raw[i] in _HEX:
                val = val * 16 + int(raw[i], 16)
                i += 1
                digits += 1
        elif c == "0":  # quirk: the 0 is one of at most 3 octal digits
            val, digits = 0, 1
            while i < n and digits < 3 and raw[i] in "01234567":
                val = val * 8 + int(raw[i])
                i += 1
                digits += 1
        elif c in "123456789":  # decimal, unlike C
            val, digits = int(c), 1
            while i < n and digits < 3 and raw[i] in "0123456789":
                val = val * 10 + int(raw[i])
                i += 1
                digits += 1
        elif c == "\n":
            continue
        else:
            out.append(_C_ESCAPES.get(c, c))
            continue
        val &= 0xFF
        if val == 0:  # a NUL ends a C string
            break
        out.append(chr(val))
    return "".join(out)


def _text_value(raw: str) -> str:
    """Decoded string value: escapes, then bytes -> UTF-8 (surrogateescape)."""
    return unescape(raw).encode("latin-1").decode("utf-8", "surrogateescape")


def _display(raw: str) -> str:
    """Raw token text as fetchmail prints it (C string: up to the first NUL)."""
    return raw.split("\0", 1)[0].encode("latin-1").decode("utf-8", "surrogateescape")


def _word_table() -> dict[str, tuple[str, TokenValue, int | None]]:
    """word -> (kind, value, next state or None) for the initial state.

    kind "" marks a noise word, "GLUED" a glued ``no`` form.
    """
    table: dict[str, tuple[str, TokenValue, int | None]] = {}
    table |= {w: ("", None, None) for w in _NOISE}
    table |= {w: (kind, None, None) for w, kind in KEYWORDS.items()}
    table |= {w: (kind, None, _NAME) for w, kind in _NAME_STARTERS.items()}
    table |= {w: ("PASSWORD", None, _NAME) for w in _PASSWORD_WORDS}
    table |= {w: ("AUTHENTICATE", None, _AUTH) for w in _AUTH_STARTERS}
    table |= {w: ("AUTHTYPE", auth, _INITIAL) for w, auth in _AUTH_TYPES.items()}
    table |= {w: ("PROTO", proto, None) for w, proto in _PROTOCOLS.items()}
    table |= {w: (kind, None, None) for w, kind in _SPECIAL_PROTOCOLS.items()}
    table |= {w: ("GLUED", None, None) for w in _GLUED_NO}
    return table


_WORD_TABLE = _word_table()
# In auth state "password" is the auth type and "pass" an ordinary string.
_AUTH_WORDS: dict[str, tuple[str, TokenValue, int | None]] = {
    "password": ("AUTHTYPE", Auth.PASSWORD, _INITIAL),
    "pass": ("STRING", None, None),
}
# Separators (blanks and the noise punctuation ";:,") are skipped, then one of:
# newline, backslash-newline continuation, "=", or a run of token characters
# (classified by _Scanner._run).
_MASTER = re.compile(r"[ \t\r;:,]*(?:(\n)|(\\\n)|(=)|([^=;:, \t\r\n]+))?")


class _Scanner:
    """Mutable scanning state; :func:`scan` is the public entry point."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[Token] = []
        self.line = 1  # fetchmail's prc_lineno
        self.state = _INITIAL

    def run(self) -> list[Token]:
        text, n, i = self.text, len(self.text), 0
        master = _MASTER.match
        append = self.tokens.append
        while i < n:
            m = master(text, i)
            assert m is not None  # every group is optional
            group = m.lastindex
            if group == 4:
                i = self._run(m.start(4), m.end())
            elif group is None:
                i = m.end()  # trailing separators
            elif group == 3:
                append(Token("MAP", None, self.line, m.start(3), m.end()))
                self.state = _NAME
                i = m.end()
            else:
                self.line += 1  # newline, or backslash-newline continuation
                i = m.end()
        return self.tokens

    def _run(self, i: int, end: int) -> int:
        """Classify the run ``text[i:end]`` (flex longest match); return the resume offset."""
        text = self.text
        c = text[i]
        if c == "#":
            nl = text.find("\n", i)
            if nl >= 0:  # a comment needs its newline (flex rule)
                self.line += 1
                return nl + 1
        elif c == '"' or c == "'":
            close = text.find(c, i + 1)
            if close >= 0 and close + 1 >= end:  # longest match; ties go to quotes
                self.state = _INITIAL
                quoted = _text_value(text[i + 1 : close])
                self.tokens.append(Token("STRING", quoted, self.line, i, close + 1))
                return close + 1
        word = text[i:end]
        if self.state == _NAME:
            self.state = _INITIAL
            self.tokens.append(Token("STRING", _text_value(word), self.line, i, end))
            return end
        entry = _WORD_TABLE.get(word)
        if self.state == _AUTH and word in _AUTH_WORDS:
            entry = _AUTH_WORDS[word]
        if entry is None:
            if _NUMBER.fullmatch(word):
                self.tokens.append(Token("NUMBER", int(word), self.line, i, end))
            else:
                self.tokens.append(Token("STRING", _text_value(word), self.line, i, end))
            return end
        kind, value, state = entry
        if kind == "GLUED":  # flex yyless(2): emit "no", rescan the rest
            self.tokens.append(Token("NO", None, self.line, i, i + 2))
            return i + 2
        if kind == "STRING":
            value = _text_value(word)
        if kind:
            self.tokens.append(Token(kind, value, self.line, i, end))
        if state is not None:
            self.state = state
        return end


def scan(text: str) -> tuple[list[Token], int]:
    """Split rc *text* (decoded latin-1) into tokens; never raises.

    Returns the tokens and fetchmail's line counter at end of input (used
    for "syntax error at end of input").
    """
    scanner = _Scanner(text)
    tokens = scanner.run()
    log.debug("rc lexer: %d tokens", len(tokens))
    return tokens, scanner.line


def tokenize(text: str) -> list[Token]:
    """Split rc *text* (decoded latin-1) into tokens; never raises."""
    return scan(text)[0]

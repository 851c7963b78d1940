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
  quoted strings are not counted); :attr:`Token.real_line` and
  :attr:`Token.column` give the true 1-based position.
- Lexing never fails: every character belongs to some token or separator.
"""

from __future__ import annotations

import bisect
import logging
import re
from dataclasses import dataclass

from pyfetchmail.config.model import Auth, Protocol

__all__ = ["KEYWORDS", "Token", "scan", "tokenize", "unescape"]

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
_PROTOCOLS: dict[str, Protocol] = {}
for _p in (Protocol.AUTO, Protocol.POP2, Protocol.POP3, Protocol.IMAP):
    _PROTOCOLS[_p.value] = _PROTOCOLS[_p.value.upper()] = _p
for _p in (Protocol.APOP, Protocol.RPOP, Protocol.ETRN, Protocol.ODMR):
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

_RUN = re.compile(r"[^=;:, \t\r\n]+")
_BLANKS = re.compile(r"[ \t\r]+")
_NUMBER = re.compile(r"-?[0-9]+")
_HEX = "0123456789abcdefABCDEF"
_C_ESCAPES = {"\\": "\\", "n": "\n", "t": "\t", "b": "\b", "r": "\r"}

_INITIAL, _NAME, _AUTH = 0, 1, 2

TokenValue = str | int | Auth | Protocol | None


@dataclass(frozen=True, slots=True)
class Token:
    """One scanner token.

    *kind* is fetchmail's token name (``"POLL"``, ``"STRING"``, ``"NUMBER"`` ...);
    *value* the decoded string, the integer, or the :class:`Auth`/:class:`Protocol`;
    *text* the raw matched text (what fetchmail prints after "syntax error at").
    """

    kind: str
    value: TokenValue
    text: str
    line: int
    real_line: int
    column: int


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


class _Scanner:
    """Mutable scanning state; :func:`tokenize` is the public entry point."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[Token] = []
        self.line = 1  # fetchmail's prc_lineno
        self.state = _INITIAL
        self._newlines = [m.start() for m in re.finditer("\n", text)]

    def emit(self, kind: str, value: TokenValue, start: int, end: int) -> None:
        real = bisect.bisect_left(self._newlines, start)
        bol = self._newlines[real - 1] + 1 if real else 0
        raw = self.text[start:end]
        self.tokens.append(Token(kind, value, _display(raw), self.line, real + 1, start - bol + 1))

    def word(self, start: int, end: int) -> int:
        """Classify the run ``text[start:end]``; return where scanning resumes."""
        w = self.text[start:end]
        if self.state == _NAME:
            self.state = _INITIAL
            self.emit("STRING", _text_value(w), start, end)
            return end
        if w in _NOISE:
            pass  # noise words are ignored (but are plain strings in name state)
        elif w in KEYWORDS:
            self.emit(KEYWORDS[w], None, start, end)
        elif w in _NAME_STARTERS:
            self.state = _NAME
            self.emit(_NAME_STARTERS[w], None, start, end)
        elif w in _PASSWORD_WORDS and self.state == _INITIAL:
            self.state = _NAME
            self.emit("PASSWORD", None, start, end)
        elif w == "password":  # auth state
            self.state = _INITIAL
            self.emit("AUTHTYPE", Auth.PASSWORD, start, end)
        elif w in _AUTH_STARTERS:
            self.state = _AUTH
            self.emit("AUTHENTICATE", None, start, end)
        elif w in _AUTH_TYPES:
            self.state = _INITIAL
            self.emit("AUTHTYPE", _AUTH_TYPES[w], start, end)
        elif w in _PROTOCOLS:
            self.emit("PROTO", _PROTOCOLS[w], start, end)
        elif w in _SPECIAL_PROTOCOLS:
            self.emit(_SPECIAL_PROTOCOLS[w], None, start, end)
        elif w in _GLUED_NO:
            self.emit("NO", None, start, start + 2)
            return start + 2
        elif _NUMBER.fullmatch(w):
            self.emit("NUMBER", _atoi(w), start, end)
        else:
            self.emit("STRING", _text_value(w), start, end)
        return end

    def run(self) -> list[Token]:
        text, n, i = self.text, len(self.text), 0
        while i < n:
            c = text[i]
            if c in " \t\r":
                m = _BLANKS.match(text, i)
                i = m.end() if m else i + 1
            elif c == "\n":
                self.line += 1
                i += 1
            elif c == "\\" and text.startswith("\n", i + 1):
                self.line += 1  # line continuation
                i += 2
            elif c in ";:,":
                i += 1  # punctuation is noise
            elif c == "=":
                self.emit("MAP", None, i, i + 1)
                self.state = _NAME
                i += 1
            else:
                i = self._token(i)
        return self.tokens

    def _token(self, i: int) -> int:
        text = self.text
        m = _RUN.match(text, i)
        end = m.end() if m else i + 1
        c = text[i]
        if c == "#":
            nl = text.find("\n", i)
            if nl >= 0:  # a comment needs its newline (flex rule)
                self.line += 1
                return nl + 1
        elif c in "\"'":
            close = text.find(c, i + 1)
            if close >= 0 and close + 1 >= end:  # longest match; ties go to quotes
                self.state = _INITIAL
                self.emit("STRING", _text_value(text[i + 1 : close]), i, close + 1)
                return close + 1
        return self.word(i, end)


def _atoi(word: str) -> int:
    """Value of a NUMBER token (fetchmail uses C atoi; see rcgrammar for range)."""
    return int(word)


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

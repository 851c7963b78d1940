"""Deterministic generator of ``.fetchmailrc`` files for differential tests.

``generate(seed, count)`` returns rc texts that exercise every keyword and
synonym, quoting styles, escapes, noise words and punctuation, odd
whitespace, line continuations and comments, plus deliberately broken files
(missing arguments, server options after user options, wrong case, stray
numbers, unterminated quotes, invalid glued ``no`` forms ...).

Values stay within what fetchmail 6.4 handles sanely (numbers fit in 32
bits, strings are ASCII) so that its ``--configdump`` output can serve as
the reference.
"""

from __future__ import annotations

import random

__all__ = ["generate", "generate_one"]

_WORDS = ["alpha", "b.example", "mail.example.org", "10.0.0.1", "u#x", "x-y_z", "Inbox", "a/b"]
_SERVICES = ["110", "995", "143", "993", "pop3", "imaps", "pop3s", "imap", "2525", "1"]
_PROTOS = ["auto", "pop3", "POP3", "imap", "IMAP", "apop", "APOP", "rpop", "etrn", "ETRN"]
_PROTOS += ["odmr", "kpop", "KPOP", "sdps", "SDPS", "pop2", "Pop3"]
_AUTHS = ["any", "password", "kerberos_v5", "kerberos5", "gssapi", "cram-md5", "cram"]
_AUTHS += ["otp", "opie", "ntlm", "msn", "ssh", "external", "kerberos"]
_SERVER_STR = ["via", "qvirtual", "principal", "esmtpname", "esmtppassword", "plugin"]
_SERVER_STR += ["plugout", "monitor"]
_SERVER_FLAGS = ["uidl", "checkalias", "dns", "tracepolls"]
_SERVER_NOFLAGS = ["no uidl", "nouidl", "no checkalias", "nocheckalias", "no dns", "nodns"]
_SERVER_NOFLAGS += ["no envelope", "noenvelope", "no tracepolls"]
_USER_STR = ["pass", "password", "smtpaddress", "smtpname", "mda", "bsmtp", "pre"]
_USER_STR += ["preconnect", "post", "postconnect", "sslkey", "sslcert", "sslproto"]
_USER_STR += ["sslcertfile", "sslcertpath", "sslcommonname", "sslfingerprint", "properties"]
_USER_NUM = ["limit", "warnings", "fetchlimit", "fetchsizelimit", "fastuidl", "batchlimit"]
_USER_NUM += ["expunge"]
_USER_LIST = ["folder", "folders", "smtphost", "smtp", "fetchdomains"]
_USER_FLAGS = ["keep", "flush", "limitflush", "fetchall", "rewrite", "forcecr", "stripcr"]
_USER_FLAGS += ["pass8", "pass8bits", "dropstatus", "dropdelivered", "mimedec", "mimedecode"]
_USER_FLAGS += ["ssl", "sslcertck", "lmtp"]
_GLUED = ["nokeep", "noflush", "nolimitflush", "nofetchall", "norewrite", "noforcecr"]
_GLUED += ["nostripcr", "nopass8", "nopass8bits", "nodropstatus", "nodropdelivered"]
_GLUED += ["nomimedec", "nomimedecode"]
_NO_USER = ["keep", "flush", "limitflush", "fetchall", "rewrite", "forcecr", "stripcr"]
_NO_USER += ["pass8bits", "dropstatus", "dropdelivered", "mimedecode", "ssl", "sslcertck"]
_NOISE = ["with", "and", "has", "wants", "options", ",", ";", ":"]
_BAD = [
    "POLL x",
    "nosyslog",
    "nossl",
    "noinvisible",
    "no foo",
    "12345",
    '"unterminated',
    "set daemon = 5",
    "limit abc",
    "auth bogus",
    "proto Pop3",
    "idle no keep",
    "= x",
    "here",
    "there",
    "defaults",
    "accept",
    "warnings",
    "# trailing comment",
    "\\",
    'poll "defaults"',
    "auth",
    "envelope 5 keep",
    "is a=b there",
    "user a=b keep",
    "user a b",
    "to a there",
    "set no keep",
    "aka",
    "skip",
    '"a"b',
    "'q'",
    "limit 2147483647",
    "warnings -2147483647",
    "service 'kpop'",
    "interface eth0",
    "user a there here",
    "is = x",
    "nouidl",
    "no envelope",
    "password",
]


def _word(rng: random.Random) -> str:
    return rng.choice(_WORDS) + (str(rng.randint(0, 9)) if rng.random() < 0.3 else "")


def _value(rng: random.Random, *, allow_bare: bool = True) -> str:
    """A string value in one of the quoting styles, sometimes with escapes."""
    word = _word(rng)
    style = rng.random()
    if style < 0.15:
        word += rng.choice(["\\x41", "\\101", "\\0101", "\\t", "\\n", "\\q", "\\\\", "\\x7"])
    if allow_bare and style < 0.45:
        return word
    if style < 0.7:
        return f'"{word} {_word(rng)}"' if rng.random() < 0.3 else f'"{word}"'
    if style < 0.8:
        return f"'{word}'"
    if style < 0.85:
        return f'"{word}\\\nmore"'  # backslash-newline inside quotes is removed
    return f'"{word}\n{_word(rng)}"'  # quoted strings may span lines


def _number(rng: random.Random) -> str:
    return str(rng.choice([0, 1, 2, 5, 10, 100, 3600, -1, -7, 65535, 123456]))


def _sep(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.6:
        return " "
    if r < 0.7:
        return "\n    "
    if r < 0.75:
        return " \\\n  "
    if r < 0.8:
        return "\t"
    if r < 0.85:
        return " # a comment with 'quotes' and \"dq\"\n  "
    if r < 0.9:
        return f" {rng.choice(_NOISE)} "
    if r < 0.95:
        return ",\r\n"
    return " ; "


def _server_option(rng: random.Random) -> str:
    r = rng.randrange(12)
    if r == 0:
        return f"{rng.choice(['proto', 'protocol'])} {rng.choice(_PROTOS)}"
    if r == 1:
        return f"service {rng.choice(_SERVICES)}" if rng.random() < 0.8 else "port 1110"
    if r == 2:
        return f"{rng.choice(['auth', 'authenticate', 'preauth'])} {rng.choice(_AUTHS)}"
    if r == 3:
        return f"{rng.choice(['timeout', 'interval'])} {_number(rng)}"
    if r == 4:
        count = f"{rng.randint(0, 3)} " if rng.random() < 0.5 else ""
        return f"envelope {count}{_value(rng)}"
    if r == 5:
        return rng.choice(["aka", "localdomains", "local"]) + "".join(
            " " + _word(rng) for _ in range(rng.randint(1, 3))
        )
    if r == 6:
        return rng.choice(_SERVER_FLAGS)
    if r == 7:
        return rng.choice(_SERVER_NOFLAGS)
    if r == 8:
        return f"bad-header {rng.choice(['accept', 'reject'])}"
    if r == 9:
        value = rng.choice(["eth0/10.0.0.1", "eth0/1.2.3.4/255.0.0.0", "eth1/10.1", "lo"])
        return f"interface {value if rng.random() < 0.9 else 'lo'}"
    return f"{rng.choice(_SERVER_STR)} {_value(rng)}"


def _mapping(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.15:
        return "*"
    if r < 0.35:
        return f"{_word(rng)}={_word(rng)}"
    return _word(rng)


def _user_option(rng: random.Random) -> str:
    r = rng.randrange(11)
    if r == 0:
        return f"{rng.choice(_USER_STR)} {_value(rng)}"
    if r == 1:
        return f"{rng.choice(_USER_NUM)} {_number(rng)}"
    if r == 2:
        return rng.choice(_USER_LIST) + "".join(f" {_value(rng)}" for _ in range(rng.randint(1, 3)))
    if r in (3, 4):
        return rng.choice(_USER_FLAGS)
    if r == 5:
        return rng.choice(_GLUED) if rng.random() < 0.5 else f"no {rng.choice(_NO_USER)}"
    if r == 6:
        return "antispam" + "".join(f" {rng.choice(['571', '550', '-1', '501'])}" for _ in range(2))
    if r == 7:
        names = " ".join(_mapping(rng) for _ in range(rng.randint(1, 3)))
        tail = rng.choice(["", " here", " here"])
        return f"{rng.choice(['is', 'to'])} {names}{tail}"
    if r == 8:
        return f"is {_word(rng)} there"
    if r == 9:
        return "idle" if rng.random() < 0.1 else "no idle"
    return f"{rng.choice(_USER_STR)} {_value(rng)}"


def _user_block(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.6:
        head = f"{rng.choice(['user', 'username'])} {_value(rng)}"
        head += rng.choice(["", "", " there"])
    elif r < 0.8:
        names = " ".join(_mapping(rng) for _ in range(rng.randint(1, 3)))
        head = f"user {names} here"
    else:
        head = f"user {rng.choice(['keep', 'poll', '1234', 'ssh', 'password'])}"  # name state
    opts = [_user_option(rng) for _ in range(rng.randint(0, 5))]
    return _sep(rng).join([head, *opts])


def _entry(rng: random.Random, header: str, *, blocks: float = 0.9) -> str:
    parts = [header]
    parts += [_server_option(rng) for _ in range(rng.randint(0, 4))]
    r = rng.random()
    if r < 0.2 or (r >= blocks and r < 0.9):
        parts += [_user_option(rng) for _ in range(rng.randint(1, 3))]
    elif r < blocks:
        parts += [_user_block(rng) for _ in range(rng.randint(1, 3))]
    return _sep(rng).join(parts)


def _set_line(rng: random.Random) -> str:
    r = rng.randrange(5)
    if r == 0:
        return f"set daemon {_number(rng)}"
    if r == 1:
        key = rng.choice(["logfile", "idfile", "pidfile", "postmaster", "properties"])
        return f"set {key}{rng.choice([' ', ' = '])}{_value(rng)}"
    flag = rng.choice(["bouncemail", "spambounce", "softbounce", "syslog", "invisible", "showdots"])
    return f"set {'no ' if r == 2 else ''}{flag}"


def generate_one(rng: random.Random) -> str:
    """One rc text; about one in four is deliberately invalid."""
    lines = [_set_line(rng) for _ in range(rng.randint(0, 3))]
    if rng.random() < 0.3:
        lines.append(_entry(rng, "defaults", blocks=0.3))
    for _ in range(rng.randint(0, 3)):
        header = f"{rng.choice(['poll', 'poll', 'server', 'skip'])} {_value(rng)}"
        if rng.random() < 0.1:
            header = f"poll {_number(rng)}"  # error: a bare number is not a name
        lines.append(_entry(rng, header))
    if rng.random() < 0.25:
        lines.insert(rng.randrange(len(lines) + 1), rng.choice(_BAD))
    if rng.random() < 0.1 and lines:
        lines.append(_server_option(rng))  # may be a server option after user options
    text = "\n".join(lines)
    return text + ("" if rng.random() < 0.05 else "\n")


def generate(seed: int, count: int) -> list[str]:
    """*count* rc texts, reproducible from *seed*."""
    rng = random.Random(seed)
    return [generate_one(rng) for _ in range(count)]

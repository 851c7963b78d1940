"""``--configdump``: the effective configuration as fetchmail 6.4.37 prints it.

:func:`configdump` reproduces fetchmail's Python-literal dump (read by
fetchmailconf) byte for byte; it only reads a loaded configuration.  The
helpers shared with the ``-V`` report (:mod:`pyfetchmail.service.versiondump`)
live here too: the structural types of a load result, feature detection,
fetchmail's string escaping and protocol naming.

Invariants / deliberate differences from fetchmail (listed in the man page):
- ``feature_options`` lists what *this* program implements, found by looking
  for the implementing modules.
- Non-printable bytes are escaped as ``\\xNN`` (valid Python), not fetchmail's
  ``\\0xNN``; ``auth external`` is dumped (fetchmail omits the key).
- Passwords *are* dumped, as fetchmail does: the output is a configuration
  file for fetchmailconf, written to stdout only on request, never logged.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Sequence
from typing import Protocol as TypingProtocol

from pyfetchmail.config.model import (
    Auth,
    BadHeader,
    Config,
    MailProtocol,
    Server,
    User,
)

__all__ = [
    "FEATURES",
    "IdentityLike",
    "LoadResultLike",
    "configdump",
    "feature_names",
    "have_module",
    "is_skip",
    "protocol_name",
    "service_name",
    "visbuf",
]

log = logging.getLogger(__name__)


class IdentityLike(TypingProtocol):
    """What the dumps need from ``config.env.Identity``."""

    @property
    def user(self) -> str: ...

    @property
    def fetchmailhost(self) -> str: ...


class LoadResultLike(TypingProtocol):
    """What the dumps need from ``config.rcfile.LoadResult``."""

    @property
    def config(self) -> Config: ...

    @property
    def warnings(self) -> Sequence[str]: ...

    @property
    def rcfile(self) -> str: ...

    @property
    def rcfile_exists(self) -> bool: ...

    @property
    def identity(self) -> IdentityLike: ...


# (configdump name, -V letter, module implementing it), in fetchmail's order.
FEATURES = (
    ("pop3", "POP3", "pyfetchmail.protocols.pop3"),
    ("imap", "IMAP", "pyfetchmail.protocols.imap"),
    ("etrn", "ETRN", "pyfetchmail.protocols.etrn"),
    ("odmr", "ODMR", "pyfetchmail.protocols.odmr"),
    ("ssl", "SSL", "pyfetchmail.net.tls"),
)


def have_module(module: str) -> bool:
    """True if *module* can be imported (a feature is present)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def feature_names() -> tuple[str, ...]:
    """The configdump ``feature_options`` of this build (truthful, module-based)."""
    return tuple(name for name, _, module in FEATURES if have_module(module))


_ESCAPES = {7: "\\a", 8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v"}


def visbuf(text: str) -> str:
    """Escape *text* for a double-quoted Python literal (fetchmail's visbuf, \\xNN form)."""
    out: list[str] = []
    for byte in text.encode("utf-8", "surrogateescape"):
        if byte == 0x22:
            out.append('\\"')
        elif byte == 0x5C:
            out.append("\\\\")
        elif byte in _ESCAPES:
            out.append(_ESCAPES[byte])
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\x{byte:02x}")
    return "".join(out)


# --- --configdump -----------------------------------------------------------


class _Writer:
    """fetchmail's conf.c pretty-printer: level L = L//2 tabs + 4 spaces if L odd."""

    def __init__(self) -> None:
        self.level = 0
        self.parts: list[str] = []

    def indent(self, char: str = "") -> None:
        if char in (")", "]", "}"):
            self.level -= 1
        # An opening "[" always follows a key on the same line: no indentation.
        if char != "[":
            self.parts.append("\t" * (self.level // 2) + ("    " if self.level % 2 else ""))
        if char:
            self.parts.append(char + "\n")
        if char in ("(", "[", "{"):
            self.level += 1

    def raw(self, text: str) -> None:
        self.parts.append(text)

    def string(self, name: str, value: str | None) -> None:
        self.indent()
        shown = "None" if value is None else f'"{visbuf(value)}"'
        self.raw(f'"{name}":{shown},\n')

    def number(self, name: str, value: int) -> None:
        self.indent()
        self.raw(f"'{name}':{max(value, 0)},\n")

    def boolean(self, name: str, value: bool) -> None:
        self.indent()
        self.raw(f"'{name}':{'TRUE' if value else 'FALSE'},\n")

    def strings(self, name: str, values: Sequence[str]) -> None:
        self.indent()
        items = ", ".join(f'"{visbuf(v)}"' for v in values)
        self.raw(f'"{name}":[{items}],\n')


def protocol_name(server: Server) -> str:
    """fetchmail's showproto(): sdps and kpop are POP3 with options."""
    if server.protocol in (MailProtocol.SDPS, MailProtocol.KPOP):
        return "POP3"
    if server.protocol is MailProtocol.AUTO:
        return "auto"
    return str(server.protocol.value).upper()


def service_name(server: Server) -> str | None:
    """The service to show: kpop implies service ``kpop`` as in fetchmail."""
    if server.service is None and server.protocol is MailProtocol.KPOP:
        return "kpop"
    return server.service


def is_skip(server: Server, implicit: bool) -> bool:
    """True for a ``skip`` entry (inactive entries count as skip in implicit mode)."""
    return server.skip or (implicit and not server.active)


def _dump_server(w: _Writer, server: Server, identity: IdentityLike, implicit: bool) -> None:
    w.indent()
    w.raw(f"# Entry for site `{server.pollname}' begins:\n")
    w.indent("{")
    using_kpop = (
        protocol_name(server) == "POP3"
        and service_name(server) == "kpop"
        and server.auth is Auth.KERBEROS_V4
    )
    w.string("pollname", server.pollname)
    w.boolean("active", not is_skip(server, implicit))
    w.string("via", server.via)
    w.string("protocol", "KPOP" if using_kpop else protocol_name(server))
    w.string("service", service_name(server))
    w.number("timeout", server.timeout)
    w.number("interval", server.interval)
    w.string("envelope", server.envelope)
    w.number("envskip", server.envskip)
    w.string("qvirtual", server.qvirtual)
    w.string("auth", server.auth.value)
    w.boolean("dns", server.dns)
    w.boolean("uidl", server.uidl)
    w.strings("aka", server.aka)
    w.strings("localdomains", server.localdomains)
    if sys.platform.startswith(("linux", "freebsd")):
        w.string("interface", server.interface)
        w.string("monitor", server.monitor)
    w.string("plugin", server.plugin)
    w.string("plugout", server.plugout)
    w.string("principal", server.principal)
    if server.esmtpname is not None:
        w.string("esmtpname", server.esmtpname)
    if server.esmtppassword is not None:
        w.string("esmtppassword", server.esmtppassword)
    w.boolean("tracepolls", server.tracepolls)
    w.indent()
    w.raw(f"'badheader': {'TRUE' if server.badheader is BadHeader.ACCEPT else 'FALSE'},\n")
    w.indent()
    w.raw("'users': ")
    w.indent("[")


def _localnames(user: User) -> str:
    names = [
        f'("{visbuf(n.remote)}", "{visbuf(n.local)}")' if n.mapped else f'"{visbuf(n.local)}"'
        for n in user.localnames
    ]
    text = ", ".join(names)
    return text + (", '*'" if user.wildcard else "")


def _dump_user(w: _Writer, user: User) -> None:
    w.indent("{")
    w.string("remote", user.remote)
    w.string("password", user.password)
    w.indent()
    w.raw(f"'localnames':[{_localnames(user)}],\n")
    for name in ("fetchall", "keep", "flush", "limitflush", "rewrite"):
        w.boolean(name, getattr(user, name))
    w.boolean("stripcr", user.effective_stripcr)
    for name in ("forcecr", "pass8bits", "dropstatus", "dropdelivered", "mimedecode", "idle"):
        w.boolean(name, getattr(user, name))
    w.string("mda", user.mda)
    w.string("bsmtp", user.bsmtp)
    w.boolean("lmtp", user.lmtp)
    w.string("preconnect", user.preconnect)
    w.string("postconnect", user.postconnect)
    for name in ("limit", "warnings", "fetchlimit", "fetchsizelimit", "fastuidl", "batchlimit"):
        w.number(name, getattr(user, name))
    w.boolean("ssl", user.ssl)
    w.string("sslkey", user.sslkey)
    w.string("sslcert", user.sslcert)
    w.string("sslproto", user.sslproto)
    w.boolean("sslcertck", user.sslcertck)
    for name in ("sslcertfile", "sslcertpath", "sslcommonname", "sslfingerprint"):
        w.string(name, getattr(user, name))
    w.number("expunge", user.expunge or 0)
    w.string("properties", user.properties)
    w.strings("smtphunt", user.smtphunt)
    w.strings("fetchdomains", user.fetchdomains)
    w.string("smtpaddress", user.smtpaddress)
    w.string("smtpname", user.smtpname)
    w.indent()
    w.raw(f"'antispam':'{' '.join(str(code) for code in user.antispam)}',\n")
    w.strings("mailboxes", user.mailboxes)
    w.indent("}")
    w.indent()
    w.raw(",")


def configdump(result: LoadResultLike, *, implicit: bool = True) -> str:
    """Return fetchmail's ``--configdump`` text for *result*.

    *implicit* is True when no server was named on the command line (then a
    non-active entry is a ``skip`` entry even if ``Server.skip`` is unset).
    """
    config = result.config
    run = config.run
    w = _Writer()
    w.raw("TRUE=1; FALSE=0\n\n")
    os_type = "linux" if sys.platform.startswith("linux") else "generic"
    if sys.platform.startswith("freebsd"):
        os_type = "freebsd"
    w.raw(f"os_type = '{os_type}'\n")
    w.raw("feature_options = (" + "".join(f"'{n}'," for n in feature_names()) + ")\n")
    w.raw("# Start of configuration initializer\n")
    w.raw("fetchmailrc = ")
    w.indent("{")
    w.number("poll_interval", run.poll_interval)
    w.string("logfile", run.logfile)
    w.string("idfile", run.idfile)
    w.string("postmaster", run.postmaster)
    w.boolean("bouncemail", run.bouncemail)
    w.boolean("spambounce", run.spambounce)
    w.boolean("softbounce", run.softbounce)
    w.string("properties", run.properties)
    w.boolean("invisible", run.invisible)
    w.boolean("showdots", run.showdots)
    w.boolean("syslog", run.syslog)
    if not config.queries:
        w.raw("    'servers': []\n")
    else:
        w.indent()
        w.raw("# List of server entries begins here\n")
        w.indent()
        w.raw("'servers': ")
        w.indent("[")
        previous: Server | None = None
        for query in config.queries:
            if previous is None or query.server != previous:
                if previous is not None:
                    w.indent("]")
                    w.indent("}")
                    w.indent()
                    w.raw(",\n")
                _dump_server(w, query.server, result.identity, implicit)
                previous = query.server
            _dump_user(w, query.user)
        w.indent("]")
        w.indent("}")
        w.indent("]")
    w.indent("}")
    w.raw("# End of initializer\n")
    return "".join(w.parts)

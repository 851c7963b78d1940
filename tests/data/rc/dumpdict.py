"""Compare configurations in the shape of fetchmail's ``--configdump`` dict.

:func:`parse_configdump` reads fetchmail's output (a near-Python literal:
``TRUE``/``FALSE`` names, ``\\0xNN`` escapes, comments that may span lines);
:func:`model_dict` derives the same dict from our :class:`Config` without
using the dump printer, so parser tests do not depend on it.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from pyfetchmail.config.model import Auth, BadHeader, Config, MailProtocol, Query

__all__ = ["model_dict", "parse_configdump"]

_ESCAPE = re.compile(r"\\(0x[0-9a-fA-F]{2}|.)", re.S)


def _fix_escapes(text: str) -> str:
    def repl(m: re.Match[str]) -> str:
        body = m.group(1)
        return "\\x" + body[2:] if body.startswith("0x") else m.group(0)

    return _ESCAPE.sub(repl, text)


def parse_configdump(stdout: str) -> dict[str, Any]:
    """The ``fetchmailrc`` dict of a configdump, via a literal parse."""
    start = stdout.index("fetchmailrc = ")
    end = stdout.index("# End of initializer")
    body = stdout[start + len("fetchmailrc = ") : end]
    # Comments; a poll name with a newline makes fetchmail's comment span lines.
    body = re.sub(r"# Entry for site `.*?' begins:\n(?=\t\{)", "", body, flags=re.S)
    body = body.replace("# List of server entries begins here", "")
    body = re.sub(r"\bTRUE\b", "True", re.sub(r"\bFALSE\b", "False", body))
    value = ast.literal_eval(_fix_escapes(body))
    assert isinstance(value, dict)
    return value


_PROTO_NAMES = {
    MailProtocol.AUTO: "auto",
    MailProtocol.POP3: "POP3",
    MailProtocol.SDPS: "POP3",
    MailProtocol.KPOP: "POP3",
    MailProtocol.APOP: "APOP",
    MailProtocol.RPOP: "RPOP",
    MailProtocol.IMAP: "IMAP",
    MailProtocol.ETRN: "ETRN",
    MailProtocol.ODMR: "ODMR",
    MailProtocol.POP2: "unknown?!?",  # not compiled into the Debian build
}


def _server_dict(q: Query) -> dict[str, Any]:
    s = q.server
    proto = _PROTO_NAMES[s.protocol]
    if proto == "POP3" and s.service == "kpop" and s.auth is Auth.KERBEROS_V4:
        proto = "KPOP"
    d: dict[str, Any] = {
        "pollname": s.pollname,
        "active": not s.skip,
        "via": s.via,
        "protocol": proto,
        "service": s.service,
        "timeout": s.timeout,
        "interval": s.interval,
        "envelope": s.envelope,
        "envskip": s.envskip,
        "qvirtual": s.qvirtual,
    }
    if s.auth is not Auth.EXTERNAL:  # fetchmail omits the key for external
        d["auth"] = s.auth.value
    d |= {
        "dns": s.dns,
        "uidl": s.uidl,
        "aka": list(s.aka),
        "localdomains": list(s.localdomains),
        "interface": s.interface,
        "monitor": s.monitor,
        "plugin": s.plugin,
        "plugout": s.plugout,
        "principal": s.principal,
    }
    if s.esmtpname is not None:
        d["esmtpname"] = s.esmtpname
    if s.esmtppassword is not None:
        d["esmtppassword"] = s.esmtppassword
    d["tracepolls"] = s.tracepolls
    d["badheader"] = s.badheader is BadHeader.ACCEPT
    return d


def _user_dict(q: Query) -> dict[str, Any]:
    u = q.user
    names: list[Any] = [(n.remote, n.local) if n.mapped else n.remote for n in u.localnames]
    if u.wildcard:
        names.append("*")
    return {
        "remote": u.remote,
        "password": u.password,
        "localnames": names,
        **{k: getattr(u, k) for k in _USER_BOOLS},
        "stripcr": u.effective_stripcr,
        "mda": u.mda,
        "bsmtp": u.bsmtp,
        "lmtp": u.lmtp,
        "preconnect": u.preconnect,
        "postconnect": u.postconnect,
        **{k: getattr(u, k) for k in _USER_NUMS},
        "ssl": u.ssl,
        "sslkey": u.sslkey,
        "sslcert": u.sslcert,
        "sslproto": u.sslproto,
        "sslcertck": u.sslcertck,
        "sslcertfile": u.sslcertfile,
        "sslcertpath": u.sslcertpath,
        "sslcommonname": u.sslcommonname,
        "sslfingerprint": u.sslfingerprint,
        "expunge": u.expunge or 0,
        "properties": u.properties,
        "smtphunt": list(u.smtphunt),
        "fetchdomains": list(u.fetchdomains),
        "smtpaddress": u.smtpaddress,
        "smtpname": u.smtpname,
        "antispam": " ".join(str(n) for n in u.antispam),
        "mailboxes": list(u.mailboxes),
    }


_USER_BOOLS = ["fetchall", "keep", "flush", "limitflush", "rewrite", "forcecr", "pass8bits"]
_USER_BOOLS += ["dropstatus", "dropdelivered", "mimedecode", "idle"]
_USER_NUMS = ["limit", "warnings", "fetchlimit", "fetchsizelimit", "fastuidl", "batchlimit"]


def model_dict(config: Config) -> dict[str, Any]:
    """Our configuration in the shape of fetchmail's configdump dict."""
    run = config.run
    servers: list[dict[str, Any]] = []
    last = None
    for q in config.queries:
        if q.server is not last:
            servers.append(_server_dict(q) | {"users": []})
            last = q.server
        servers[-1]["users"].append(_user_dict(q))
    return {
        "poll_interval": run.poll_interval,
        "logfile": run.logfile,
        "idfile": run.idfile,
        "postmaster": run.postmaster,
        "bouncemail": run.bouncemail,
        "spambounce": run.spambounce,
        "softbounce": run.softbounce,
        "properties": run.properties,
        "invisible": run.invisible,
        "showdots": run.showdots,
        "syslog": run.syslog,
        "servers": servers,
    }

"""``-V`` output: banner, global settings and the per-query report of fetchmail 6.4.37.

The text after the banner reproduces fetchmail's ``-V`` report line by line
(samples/rc-full.V.txt).  Nothing here connects anywhere; the only file read
is the UID file, for the "N UIDs saved." lines.

Deliberate differences (listed in the man page): the banner describes this
program; ``-V -v`` says that a password is set instead of printing it; an
``auth external`` entry gets an authentication line (fetchmail prints none);
which smtphost/fetchdomains entries are "(default)" is inferred from the value
(the model does not keep fetchmail's per-entry mark).
"""

from __future__ import annotations

import logging
import os
import platform
import ssl
import sys
from collections.abc import Callable, Mapping, Sequence

from pyfetchmail import FETCHMAIL_COMPAT_VERSION, __version__
from pyfetchmail.config.dump import (
    FEATURES,
    LoadResultLike,
    have_module,
    is_skip,
    protocol_name,
    service_name,
    visbuf,
)
from pyfetchmail.config.model import (
    DEFAULT_TIMEOUT,
    Auth,
    BadHeader,
    MailProtocol,
    Query,
    Server,
    User,
)
from pyfetchmail.errors import FetchmailError
from pyfetchmail.state.uidstore import UidStore

__all__ = ["read_saved_uids", "version_banner", "version_dump"]

log = logging.getLogger(__name__)


def version_banner() -> str:
    """The ``-V`` header: release, feature letters, library versions, licence, uname."""
    have = {letter for _, letter, module in FEATURES if have_module(module)}
    flags = "".join(
        f"-{letter}" for letter in ("POP3", "IMAP", "ETRN", "ODMR") if letter not in have
    )
    flags += "+SSL-SSLv2-SSLv3" if "SSL" in have else "-SSL"
    if have_module("pyfetchmail.auth.oauth2"):
        flags += "+OAUTH2"
    uname = platform.uname()
    system_line = " ".join(
        part
        for part in (uname.system, uname.node, uname.release, uname.version, uname.machine)
        if part
    )
    if uname.system == "Linux":
        system_line += " GNU/Linux"
    return (
        f"This is pyfetchmail release {__version__} "
        f"(fetchmail {FETCHMAIL_COMPAT_VERSION} compatible){flags}.\n"
        f"Python {platform.python_version()}, "
        f'SSL library 0x{ssl.OPENSSL_VERSION_NUMBER:08x} "{ssl.OPENSSL_VERSION}"\n'
        "\n"
        "Copyright (C) 2026 The pyfetchmail authors.\n"
        "pyfetchmail comes with ABSOLUTELY NO WARRANTY. It is free software under\n"
        "the MIT licence; see the file LICENSE in the source distribution.\n"
        "\n"
        "Fallback MDA: (none)\n"
        f"{system_line}\n"
    )


def read_saved_uids(path: str, queries: Sequence[Query]) -> dict[int, list[str]]:
    """Read the idfile and return the saved UIDs per query index (spec section 4.3).

    Parsing is :class:`pyfetchmail.state.uidstore.UidStore`'s (fetchmail's rules,
    case-insensitive account match).  A missing or unreadable file means no UIDs.
    """
    try:
        store = UidStore.load(path)
    except (FetchmailError, OSError):
        return {}
    saved: dict[int, list[str]] = {}
    for index, q in enumerate(queries):
        uids = store.uids_for_display(q.user.remote, q.server.queryname)
        if uids:
            saved[index] = uids
    return saved


def _default_ca_paths(environ: Mapping[str, str]) -> tuple[str, str]:
    paths = ssl.get_default_verify_paths()
    cafile = environ.get(paths.openssl_cafile_env) or paths.openssl_cafile
    capath = environ.get(paths.openssl_capath_env) or paths.openssl_capath
    return cafile, capath


def _mailbox_protocol(server: Server) -> bool:
    return server.protocol not in (MailProtocol.ETRN, MailProtocol.ODMR)


def _needs_password(server: Server) -> bool:
    return server.auth.needs_password and server.protocol is not MailProtocol.ETRN


_AUTH_LINES = {
    Auth.ANY: "All available authentication methods will be tried.",
    Auth.PASSWORD: "Password authentication will be forced.",
    Auth.MSN: "MSN authentication will be forced.",
    Auth.NTLM: "NTLM authentication will be forced.",
    Auth.OTP: "OTP authentication will be forced.",
    Auth.CRAM_MD5: "CRAM-MD5 authentication will be forced.",
    Auth.GSSAPI: "GSSAPI authentication will be forced.",
    Auth.KERBEROS_V4: "Kerberos V4 authentication will be forced.",
    Auth.KERBEROS_V5: "Kerberos V5 authentication will be forced.",
    Auth.SSH: "End-to-end encryption assumed.",
    Auth.EXTERNAL: "External authentication will be forced.",
}


class _Report:
    """Collects the -V lines of one query."""

    def __init__(self, verbose: bool) -> None:
        self.verbose = verbose
        self.lines: list[str] = []

    def add(self, text: str) -> None:
        self.lines.append(text)

    def either(self, condition: bool, text: str, verbose_text: str) -> None:
        if condition:
            self.lines.append(text)
        elif self.verbose:
            self.lines.append(verbose_text)


def _query_lines(
    q: Query, run_interval: int, uids: list[str], r: _Report, ctx: _VersionContext
) -> None:
    s, u = q.server, q.user
    mailbox = _mailbox_protocol(s)
    r.add(f"Options for retrieving from {u.remote}@{visbuf(s.pollname)}:")
    if s.via and mailbox:
        r.add(f"  Mail will be retrieved via {s.via}")
    if s.interval:
        plural = "interval" if s.interval == 1 else "intervals"
        r.add(f"  Poll of this server will occur every {s.interval} {plural}.")
    r.add(f"  True name of server is {s.queryname}.")
    skip = is_skip(s, ctx.implicit)
    r.either(
        skip,
        "  This host will not be queried when no host is specified.",
        "  This host will be queried when no host is specified.",
    )
    if _needs_password(s):
        what = {MailProtocol.APOP: "APOP secret", MailProtocol.RPOP: "RPOP id"}.get(
            s.protocol, "Password"
        )
        # Deviation: fetchmail prints the secret itself here; we never do.
        r.either(u.password is None, "  Password will be prompted for.", f"  {what} is set.")
    _protocol_line(q, r)
    r.add("  " + _AUTH_LINES[s.auth])
    if s.principal is not None:
        r.add(f"  Mail service principal is: {s.principal}")
    _ssl_lines(u, r, ctx)
    line = f"  Server nonresponse timeout is {s.timeout} seconds" if s.timeout > 0 else ""
    r.add(line + (" (default)." if s.timeout == DEFAULT_TIMEOUT else "."))
    if mailbox:
        _mailbox_lines(u, run_interval, r)
    else:
        r.add("  Domains for which mail will be fetched are:" + _domains(u, ctx))
    _delivery_lines(q, r)
    if mailbox:
        codes = " ".join(str(code) for code in u.antispam)
        r.either(
            bool(u.antispam),
            f"  Recognized listener spam block responses are: {codes}",
            "  Spam-blocking disabled",
        )
    r.either(
        u.preconnect is not None,
        f'  Server connection will be brought up with "{visbuf(u.preconnect or "")}".',
        "  No pre-connection command.",
    )
    r.either(
        u.postconnect is not None,
        f'  Server connection will be taken down with "{visbuf(u.postconnect or "")}".',
        "  No post-connection command.",
    )
    if mailbox:
        _localname_lines(q, r)
    if sys.platform.startswith(("linux", "freebsd")):
        r.either(
            s.interface is not None,
            f"  Connection must be through interface {s.interface}.",
            "  No interface requirement specified.",
        )
        r.either(
            s.monitor is not None,
            f"  Polling loop will monitor {s.monitor}.",
            "  No monitor interface specified.",
        )
    r.either(
        s.plugin is not None,
        f"  Server connections will be made via plugin {s.plugin} (--plugin {s.plugin}).",
        "  No plugin command specified.",
    )
    r.either(
        s.plugout is not None,
        f"  Listener connections will be made via plugout {s.plugout} (--plugout {s.plugout}).",
        "  No plugout command specified.",
    )
    if mailbox and s.protocol not in (MailProtocol.AUTO, MailProtocol.POP2):
        if not uids:
            r.add("  No UIDs saved from this host.")
        else:
            # 6.4.37 lists the UIDs even without -v (verified on the binary).
            r.add(f"  {len(uids)} UIDs saved.")
            r.lines.extend(f"\t{uid}" for uid in uids)
    r.either(
        s.tracepolls,
        "  Poll trace information will be added to the Received header.",
        "  No poll trace information will be added to the Received header.",
    )
    r.either(
        s.badheader is BadHeader.ACCEPT,
        "  Messages with bad headers will be passed on.",
        "  Messages with bad headers will be rejected.",
    )
    if u.properties is not None:
        r.add(f'  Pass-through properties "{visbuf(u.properties)}".')


class _VersionContext:
    def __init__(self, implicit: bool, fetchmailhost: str, cafile: str, capath: str) -> None:
        self.implicit = implicit
        self.fetchmailhost = fetchmailhost
        self.cafile = cafile
        self.capath = capath


def _protocol_line(q: Query, r: _Report) -> None:
    s = q.server
    service = service_name(s)
    if (
        protocol_name(s) == "POP3"
        and service == "kpop"
        and s.auth in (Auth.KERBEROS_V4, Auth.KERBEROS_V5)
    ):
        version = "V" if s.auth is Auth.KERBEROS_V5 else "IV"
        line = f"  Protocol is KPOP with Kerberos {version} authentication"
    else:
        line = f"  Protocol is {protocol_name(s)}"
    if service is not None:
        line += f" (using service {service})"
    elif r.verbose:
        line += " (using default port)"
    if s.uidl and _mailbox_protocol(s):
        line += " (forcing UIDL use)"
    r.add(line + ".")


def _ssl_lines(u: User, r: _Report, ctx: _VersionContext) -> None:
    if u.ssl:
        r.add("  SSL encrypted sessions enabled.")
    if u.sslproto is not None:
        r.add(f"  SSL protocol: {u.sslproto}.")
    state = "enabled" if u.sslcertck else "disabled"
    r.add(f"  SSL server certificate checking {state}.")
    r.add(f"  SSL default trusted certificate file: {ctx.cafile}")
    if u.sslcertfile is not None:
        r.add(f"  SSL trusted certificate file: {u.sslcertfile}")
    r.add(f"  SSL default trusted certificate directory: {ctx.capath}")
    if u.sslcertpath is not None:
        r.add(f"  SSL trusted certificate directory: {u.sslcertpath}")
    if u.sslcommonname is not None:
        r.add(f"  SSL server CommonName: {u.sslcommonname}")
    if u.sslfingerprint is not None:
        r.add(f"  SSL key fingerprint (checked against the server key): {u.sslfingerprint}")


_FLAG_LINES: tuple[tuple[Callable[[User], bool], str, str, str, str], ...] = (
    (lambda u: u.fetchall, "All messages will be retrieved",
     "Only new messages will be retrieved", "--all", "."),
    (lambda u: u.keep, "Fetched messages will be kept on the server",
     "Fetched messages will not be kept on the server", "--keep", "."),
    (lambda u: u.flush, "Old messages will be flushed before message retrieval",
     "Old messages will not be flushed before message retrieval", "--flush", "."),
    (lambda u: u.limitflush, "Oversized messages will be flushed before message retrieval",
     "Oversized messages will not be flushed before message retrieval", "--limitflush", "."),
    (lambda u: not u.rewrite, "Rewrite of server-local addresses is disabled",
     "Rewrite of server-local addresses is enabled", "--norewrite", "."),
    (lambda u: u.effective_stripcr, "Carriage-return stripping is enabled",
     "Carriage-return stripping is disabled", "stripcr", "."),
    (lambda u: u.forcecr, "Carriage-return forcing is enabled",
     "Carriage-return forcing is disabled", "forcecr", "."),
    (lambda u: u.pass8bits, "Interpretation of Content-Transfer-Encoding is disabled",
     "Interpretation of Content-Transfer-Encoding is enabled", "pass8bits", "."),
    (lambda u: u.mimedecode, "MIME decoding is enabled", "MIME decoding is disabled",
     "mimedecode", "."),
    (lambda u: u.idle, "Idle after poll is enabled", "Idle after poll is disabled", "idle", "."),
    # fetchmail prints these two without the final period.
    (lambda u: u.dropstatus, "Nonempty Status lines will be discarded",
     "Nonempty Status lines will be kept", "dropstatus", ""),
    (lambda u: u.dropdelivered, "Delivered-To lines will be discarded",
     "Delivered-To lines will be kept", "dropdelivered", ""),
)  # fmt: skip


def _mailbox_lines(u: User, run_interval: int, r: _Report) -> None:
    if not u.mailboxes:
        r.add("  Default mailbox selected.")
    else:
        r.add("  Selected mailboxes are: " + " ".join(u.mailboxes))
    for getter, on, off, what, end in _FLAG_LINES:
        flag = getter(u)
        r.add(f"  {on if flag else off} ({what} {'on' if flag else 'off'}){end}")
    if u.limit > 0:
        r.add(f"  Message size limit is {u.limit} octets (--limit {u.limit}).")
        r.either(
            run_interval > 0,
            f"  Message size warning interval is {u.warnings} seconds (--warnings {u.warnings}).",
            "  Size warnings on every poll (--warnings 0).",
        )
    r.either(
        u.fetchlimit > 0,
        f"  Received-message limit is {u.fetchlimit} (--fetchlimit {u.fetchlimit}).",
        "  No received-message limit (--fetchlimit 0).",
    )
    r.either(
        u.fetchsizelimit > 0,
        f"  Fetch message size limit is {u.fetchsizelimit} (--fetchsizelimit {u.fetchsizelimit}).",
        "  No fetch message size limit (--fetchsizelimit 0).",
    )
    if u.fastuidl == 1:
        r.add("  Do binary search of UIDs during each poll (--fastuidl 1).")
    else:
        r.either(
            u.fastuidl > 0,
            f"  Do binary search of UIDs during {u.fastuidl - 1} out of {u.fastuidl} "
            f"polls (--fastuidl {u.fastuidl}).",
            "   Do linear search of UIDs during each poll (--fastuidl 0).",
        )
    r.either(
        u.batchlimit > 0,
        f"  SMTP message batch limit is {u.batchlimit}.",
        "  No SMTP message batch limit (--batchlimit 0).",
    )
    expunge = u.expunge or 0
    r.either(
        expunge > 0,
        f"  Deletion interval between expunges forced to {expunge} (--expunge {expunge}).",
        "  No forced expunges (--expunge 0).",
    )


def _domains(u: User, ctx: _VersionContext) -> str:
    default = u.fetchdomains == (ctx.fetchmailhost,)
    return "".join(f" {d}" + (" (default)" if default else "") for d in u.fetchdomains)


def _delivery_lines(q: Query, r: _Report) -> None:
    u = q.user
    if u.bsmtp is not None:
        r.add(f"  Messages will be appended to {visbuf(u.bsmtp)} as BSMTP")
    elif u.mda is not None and _mailbox_protocol(q.server):
        r.add(f'  Messages will be delivered with "{visbuf(u.mda)}".')
    else:
        if u.smtphunt:
            default = u.smtphunt == ("localhost",)
            hosts = "".join(f" {h}" + (" (default)" if default else "") for h in u.smtphunt)
            r.add(f"  Messages will be {'L' if u.lmtp else 'S'}MTP-forwarded to:{hosts}")
        if u.smtpaddress is not None:
            r.add(f"  Host part of MAIL FROM line will be {u.smtpaddress}")
        if u.smtpname is not None:
            r.add(f"  Address to be put in RCPT TO lines shipped to SMTP will be {u.smtpname}")


def _localname_lines(q: Query, r: _Report) -> None:
    s, u = q.server, q.user
    count = len(u.localnames)
    if not count and not u.wildcard:
        r.add("  No localnames declared for this host.")
        return
    mode = "Multi-drop" if count > 1 or u.wildcard else "Single-drop"
    noun = "name" if count == 1 else "names"
    r.add(f"  {mode} mode: {count} local {noun} recognized.")
    if r.verbose:
        for n in u.localnames:
            r.add(f"\t{n.remote} -> {n.local}" if n.mapped else f"\t{n.local}")
        if u.wildcard:
            r.add("\t*")
    if mode == "Single-drop":
        return
    r.add(f"  DNS lookup for multidrop addresses is {'enabled' if s.dns else 'disabled'}.")
    if s.dns:
        how = "IP address" if s.checkalias else "name"
        r.add(f"  Server aliases will be compared with multidrop addresses by {how}.")
    if s.envelope is None:
        r.add("  Envelope-address routing is disabled")
    else:
        r.add(f"  Envelope header is assumed to be: {s.envelope}")
        if s.envskip or r.verbose:
            r.add(f"  Number of envelope headers to be skipped over: {s.envskip}")
        r.either(
            s.qvirtual is not None,
            f"  Prefix {s.qvirtual} will be removed from user id",
            "  No prefix stripping",
        )
    if s.aka:
        r.add("  Predeclared mailserver aliases: " + " ".join(s.aka))
    if s.localdomains:
        r.add("  Local domains: " + " ".join(s.localdomains))


def version_dump(
    result: LoadResultLike,
    *,
    verbose: int = 0,
    implicit: bool = True,
    environ: Mapping[str, str] | None = None,
    uids: Mapping[int, list[str]] | None = None,
) -> tuple[str, str]:
    """Return ``(stdout, stderr)`` of ``-V`` after the banner, for *result*.

    *uids* maps a query index to its saved UIDs (default: read the idfile).
    """
    config = result.config
    run = config.run
    taking = "Taking options from command line"
    if result.rcfile_exists:
        taking += f" and {result.rcfile}"
    if not config.queries:
        return taking + "\n", f"No mailservers set up -- perhaps {result.rcfile} is missing?\n"
    env = os.environ if environ is None else environ
    cafile, capath = _default_ca_paths(env)
    ctx = _VersionContext(implicit, result.identity.fetchmailhost, cafile, capath)
    saved = read_saved_uids(run.idfile, config.queries) if uids is None else uids
    r = _Report(verbose > 0)
    r.add(taking)
    if run.poll_interval:
        r.add(f"Poll interval is {run.poll_interval} seconds")
    if run.logfile:
        r.add(f"Logfile is {run.logfile}")
    if run.idfile != ".fetchids":
        r.add(f"Idfile is {run.idfile}")
    if run.syslog:
        r.add("Progress messages will be logged via syslog")
    if run.invisible:
        r.add("Fetchmail will masquerade and will not generate Received")
    if run.showdots:
        r.add("Fetchmail will show progress dots even in logfiles.")
    if run.postmaster:
        r.add(f"Fetchmail will forward misaddressed multidrop messages to {run.postmaster}.")
    r.either(
        not run.bouncemail,
        "Fetchmail will direct error mail to the postmaster.",
        "Fetchmail will direct error mail to the sender.",
    )
    r.either(
        not run.softbounce,
        "Fetchmail will treat permanent errors as permanent (drop messages).",
        "Fetchmail will treat permanent errors as temporary (keep messages).",
    )
    for index, query in enumerate(config.queries):
        if not query.server.active:
            continue
        _query_lines(query, run.poll_interval, list(saved.get(index, ())), r, ctx)
    return "\n".join(r.lines) + "\n", ""

"""Load the run-control file: find, check, parse, merge, default, validate.

This is fetchmail's ``load_params`` (spec sections 1.3, 1.7, 1.8, 4.1, 4.2):

1. the rc file is ``-f`` (``-`` = stdin) or :attr:`Identity.rcfile`; a
   missing file means "no servers", not an error;
2. unless ``-V``, it must be a regular file owned by the effective uid with
   no group/other permissions except group-execute (exit 6; skipped for
   ``/dev/null`` and ``-``); the id file gets the same check;
3. the text is read as bytes (latin-1, nothing lost) and parsed by
   :mod:`pyfetchmail.config.rcgrammar`;
4. server names from the command line activate matching entries (poll name,
   or ``aka`` ignoring case) or synthesise new ones (``via`` = name);
5. a leading ``defaults`` record is merged into every entry ("only if
   unset"; lists only if empty), then the command line is forced
   (:func:`~pyfetchmail.config.overrides.apply_overrides`), then built-in
   defaults fill the rest;
6. :mod:`pyfetchmail.config.validate` checks the result.

Invariants: all queries of one entry share one :class:`Server` object; the
returned warnings are the lines fetchmail prints on stderr, in its order;
exceptions carry fetchmail's message text.
"""

from __future__ import annotations

import logging
import os
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, TextIO

from pyfetchmail.config.env import Identity, current_identity
from pyfetchmail.config.model import (
    DEFAULT_FASTUIDL,
    DEFAULT_FETCHSIZELIMIT,
    DEFAULT_TIMEOUT,
    DEFAULT_WARNINGS,
    Auth,
    BadHeader,
    Config,
    MailProtocol,
    NameMapping,
    Query,
    RunControl,
    Server,
    User,
)
from pyfetchmail.config.overrides import (
    CommandLineOptions,
    apply_overrides,
    apply_run_overrides,
)
from pyfetchmail.config.rcgrammar import RawConfig, RawEntry, parse_rc
from pyfetchmail.config.validate import validate_queries
from pyfetchmail.errors import ConfigError, DNSError, RcPermissionError

__all__ = ["LoadResult", "build_config", "check_file_security", "load_config"]

log = logging.getLogger(__name__)

_LIST_KEYS = frozenset({"localdomains", "localnames", "mailboxes", "smtphunt"})
_LIST_KEYS |= {"fetchdomains", "antispam"}
_NOT_FROM_DEFAULTS = frozenset({"aka"})  # fetchmail's optmerge does not copy it
_MULTIPLE_DEFAULTS = (
    'fetchmail: Error: multiple "defaults" records in config file, '
    'or "defaults" is not the first record.'
)


@dataclass(frozen=True)
class LoadResult:
    """Everything the CLI needs after loading the configuration."""

    config: Config
    warnings: tuple[str, ...]
    rcfile: str
    rcfile_exists: bool
    identity: Identity


def check_file_security(path: str, *, secure: bool = True) -> bool:
    """fetchmail's ``prc_filecheck``: True if *path* exists, RcPermissionError if unsafe.

    ``/dev/null`` and ``-`` always pass.  With *secure* False only existence
    is tested.
    """
    if path in ("/dev/null", "-"):
        return True
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise RcPermissionError(f"fetchmail: lstat: {path}: {exc.strerror}") from exc
    if not secure:
        return True
    if not stat.S_ISREG(st.st_mode):
        raise RcPermissionError(f"File {path} must be a regular file.")
    # Group-execute (0010) is deliberately not checked, as in fetchmail.
    if st.st_mode & (stat.S_IRGRP | stat.S_IWGRP | stat.S_IROTH | stat.S_IWOTH | stat.S_IXOTH):
        raise RcPermissionError(
            f"File {path} must have no more than -rwx------ (0700) permissions."
        )
    if st.st_uid != os.geteuid():
        raise RcPermissionError(f"File {path} must be owned by you.")
    return True


def _read_rc(path: str, *, secure: bool, stdin: TextIO | None) -> tuple[str, bool]:
    """Return (text decoded latin-1, exists)."""
    if path == "-":
        stream = sys.stdin if stdin is None else stdin
        buffer = getattr(stream, "buffer", None)
        if buffer is not None:
            data: bytes = buffer.read()
            return data.decode("latin-1"), True
        return stream.read().encode("utf-8", "surrogateescape").decode("latin-1"), True
    try:
        os.stat(path)
    except FileNotFoundError:
        pass
    except OSError as exc:  # e.g. ENOTDIR: a directory on the path is a file
        raise RcPermissionError(
            "fetchmail: couldn't time-check the run-control file\n"
            f"fetchmail: lstat: {path}: {exc.strerror}"
        ) from exc
    if not check_file_security(path, secure=secure):
        return "", False
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("latin-1"), True
    except FileNotFoundError:
        return "", False
    except OSError as exc:
        raise RcPermissionError(f"fetchmail: open: {path}: {exc.strerror}") from exc


def _rc_dir(path: str) -> str:
    """Directory of the rc file as fetchmail computes it ("" if no slash)."""
    head, slash, _ = path.rpartition("/")
    if not slash:
        return ""
    return head or "/"


def load_config(
    options: CommandLineOptions,
    *,
    environ: Mapping[str, str] | None = None,
    stdin: TextIO | None = None,
) -> LoadResult:
    """Find, check, parse and merge the rc file for *options*; see the module docstring."""
    identity = current_identity(environ)
    rcfile = options.fetchmailrc or identity.rcfile
    text, exists = _read_rc(rcfile, secure=not options.version, stdin=stdin)
    raw = parse_rc(text, rcfile, _rc_dir(rcfile)) if exists else RawConfig()
    result = build_config(raw, options, identity, rcfile=rcfile, rcfile_exists=exists)
    if not options.version:
        check_file_security(result.config.run.idfile)
    return result


def build_config(
    raw: RawConfig,
    options: CommandLineOptions,
    identity: Identity,
    *,
    rcfile: str,
    rcfile_exists: bool = True,
) -> LoadResult:
    """Turn a parsed rc file into the final :class:`Config` (no file access except logfile)."""
    entries = list(raw.entries)
    named = _select(entries, options.servers)
    defaults: RawEntry | None = None
    if entries and entries[0].is_defaults:
        defaults = entries.pop(0)
        if len(defaults.users) > 1:  # the second user block is a "defaults" query
            raise ConfigError(_MULTIPLE_DEFAULTS)
    # fetchmail compares against the *new* head of its list, so a second
    # "defaults" right after the first one survives as an ordinary entry.
    # The check is per query: a second user block is a second "defaults" query.
    if any(e.is_defaults for e in entries[1:]) or (
        entries and entries[0].is_defaults and len(entries[0].users) > 1
    ):
        raise ConfigError(_MULTIPLE_DEFAULTS)
    implicit = not options.servers
    queries: list[Query] = []
    for entry in entries:
        active = not entry.skip if implicit else id(entry) in named
        queries.extend(_entry_queries(entry, defaults, options, identity, active))
    run = _run_control(raw.run, options, identity, rcfile)
    warnings = _hostname_warnings(queries, identity)
    warnings += validate_queries(
        queries, run, configdump=options.configdump, nodetach=options.nodetach
    )
    if run.logfile is not None and not os.path.exists(run.logfile):
        warnings.append(f'Logfile "{run.logfile}" does not exist, ignoring logfile option.')
        run = _replace_logfile(run)
    config = Config(run=run, queries=tuple(queries))
    return LoadResult(config, tuple(warnings), rcfile, rcfile_exists, identity)


def _hostname_warnings(queries: list[Query], identity: Identity) -> list[str]:
    """fetchmail's ``host_fqdn``: an unqualified host name is fatal only where needed.

    ETRN and ODMR send this host's name as the domain to fetch for, and
    Kerberos V needs it for the service principal (exit 11 then); otherwise
    fetchmail warns and goes on with the bare name.
    """
    if identity.fetchmailhost_error is None:
        return []
    lines = [
        f'getaddrinfo failed for "{identity.fetchmailhost}": {identity.fetchmailhost_error}',
        "Cannot find my own host in hosts database to qualify it!",
    ]
    needs_fqdn = (MailProtocol.ETRN, MailProtocol.ODMR)
    if any(
        q.server.active and (q.server.protocol in needs_fqdn or q.server.auth is Auth.KERBEROS_V5)
        for q in queries
    ):
        raise DNSError("\n".join(lines))
    return [
        *lines,
        "Trying to continue with unqualified hostname.",
        "DO NOT report broken Received: headers, HELO/EHLO lines or similar problems!",
        "DO repair your /etc/hosts, DNS, NIS or LDAP instead.",
    ]


def _select(entries: list[RawEntry], names: tuple[str, ...]) -> set[int]:
    """Mark entries named on the command line; synthesise unknown ones (appended)."""
    named: set[int] = set()
    for name in names:
        found = False
        for entry in entries:
            akas = entry.server.get("aka", [])
            if entry.pollname == name or any(a.lower() == name.lower() for a in akas):
                named.add(id(entry))
                found = True
        if not found:
            synthetic = RawEntry(name, skip=False, is_defaults=False, server={"via": name})
            synthetic.users.append({})
            entries.append(synthetic)
            named.add(id(synthetic))
    return named


def _merge(defaults: Mapping[str, Any], own: Mapping[str, Any]) -> dict[str, Any]:
    """fetchmail's optmerge without force: take a default only where *own* is unset."""
    merged = dict(own)
    for key, value in defaults.items():
        if key in _NOT_FROM_DEFAULTS:
            continue
        if key in _LIST_KEYS:
            if not merged.get(key):
                merged[key] = list(value)
        elif key not in merged:
            # SDPS is a flag beside protocol POP3 that optmerge does not copy.
            merged[key] = MailProtocol.POP3 if value is MailProtocol.SDPS else value
    return merged


def _unset_zeroes(server: Mapping[str, Any]) -> dict[str, Any]:
    """Drop values fetchmail stores as 0 (= unset): ``auth any``, ``bad-header reject``."""
    out = dict(server)
    if out.get("auth") is Auth.ANY:
        del out["auth"]
    if out.get("badheader") is BadHeader.REJECT:
        del out["badheader"]
    return out


def _entry_queries(
    entry: RawEntry,
    defaults: RawEntry | None,
    options: CommandLineOptions,
    identity: Identity,
    active: bool,
) -> list[Query]:
    d_server = _unset_zeroes(defaults.server) if defaults else {}
    d_user = defaults.users[0] if defaults and defaults.users else {}
    server_raw = _merge(d_server, _unset_zeroes(entry.server))
    server: Server | None = None
    queries = []
    for user_raw in entry.users:
        srv, usr = apply_overrides(server_raw, _merge(d_user, user_raw), options)
        if server is None:
            server = _make_server(entry, srv, identity, active)
        queries.append(Query(server, _make_user(usr, server, identity, active)))
    return queries


def _positive(value: int) -> int:
    return value if value > 0 else 0


def _make_server(entry: RawEntry, srv: dict[str, Any], identity: Identity, active: bool) -> Server:
    timeout = srv.get("timeout", 0)
    return Server(
        pollname=entry.pollname,
        active=active,
        skip=entry.skip,
        via=srv.get("via"),
        protocol=srv.get("protocol", MailProtocol.AUTO),
        service=srv.get("service"),
        # 0 and -1 mean the default; fetchmail would keep other negative values.
        timeout=timeout if timeout > 0 else DEFAULT_TIMEOUT,
        interval=_positive(srv.get("interval", 0)),
        envelope=srv.get("envelope", "Received"),
        envelope_explicit="envelope" in srv,
        envskip=_positive(srv.get("envskip", 0)),
        qvirtual=srv.get("qvirtual"),
        auth=srv.get("auth", Auth.ANY),
        dns=srv.get("dns", True),
        checkalias=srv.get("checkalias", False),
        uidl=srv.get("uidl", False),
        aka=tuple(srv.get("aka", ())),
        localdomains=tuple(srv.get("localdomains", ())),
        interface=srv.get("interface"),
        monitor=srv.get("monitor"),
        plugin=srv.get("plugin"),
        plugout=srv.get("plugout"),
        principal=srv.get("principal"),
        esmtpname=srv.get("esmtpname", identity.user),
        esmtppassword=srv.get("esmtppassword"),
        tracepolls=srv.get("tracepolls", False),
        badheader=srv.get("badheader", BadHeader.REJECT),
    )


def _needs_no_password(server: Server) -> bool:
    return not server.auth.needs_password or server.protocol is MailProtocol.ETRN


def _make_user(usr: dict[str, Any], server: Server, identity: Identity, active: bool) -> User:
    remote = usr.get("remote", identity.user)
    password = usr.get("password")
    if password is None and active and _needs_no_password(server):
        password = remote  # spec 4.8 item 2: the remote name is the dummy password
    localnames = tuple(usr.get("localnames", ())) or (NameMapping(identity.user, identity.user),)
    fetchdomains = tuple(usr.get("fetchdomains", ()))
    if not fetchdomains and server.protocol in (MailProtocol.ETRN, MailProtocol.ODMR):
        fetchdomains = (identity.fetchmailhost,)
    expunge = usr.get("expunge")
    return User(
        remote=remote,
        password=password,
        localnames=localnames,
        wildcard=usr.get("wildcard", False),
        fetchall=usr.get("fetchall", False),
        keep=usr.get("keep", False),
        flush=usr.get("flush", False),
        limitflush=usr.get("limitflush", False),
        rewrite=usr.get("rewrite", True),
        stripcr=usr.get("stripcr"),
        forcecr=usr.get("forcecr", False),
        pass8bits=usr.get("pass8bits", False),
        dropstatus=usr.get("dropstatus", False),
        dropdelivered=usr.get("dropdelivered", False),
        mimedecode=usr.get("mimedecode", False),
        idle=usr.get("idle", False),
        mda=usr.get("mda"),
        bsmtp=usr.get("bsmtp"),
        lmtp=usr.get("lmtp", False),
        preconnect=usr.get("preconnect"),
        postconnect=usr.get("postconnect"),
        limit=_positive(usr.get("limit", 0)),
        warnings=_positive(usr.get("warnings", DEFAULT_WARNINGS)),
        fetchlimit=_positive(usr.get("fetchlimit", 0)),
        fetchsizelimit=_positive(usr.get("fetchsizelimit", DEFAULT_FETCHSIZELIMIT)),
        fastuidl=_positive(usr.get("fastuidl", DEFAULT_FASTUIDL)),
        batchlimit=_positive(usr.get("batchlimit", 0)),
        expunge=None if expunge is None else _positive(expunge),
        ssl=usr.get("ssl", False),
        sslkey=usr.get("sslkey"),
        sslcert=usr.get("sslcert"),
        sslproto=usr.get("sslproto"),
        sslcertck=usr.get("sslcertck", True),
        sslcertfile=usr.get("sslcertfile"),
        sslcertpath=usr.get("sslcertpath"),
        sslcommonname=usr.get("sslcommonname"),
        sslfingerprint=usr.get("sslfingerprint"),
        properties=usr.get("properties"),
        smtphunt=tuple(usr.get("smtphunt", ())) or ("localhost",),
        fetchdomains=fetchdomains,
        smtpaddress=usr.get("smtpaddress"),
        smtpname=usr.get("smtpname"),
        antispam=tuple(usr.get("antispam", ())),
        mailboxes=tuple(usr.get("mailboxes", ())),
    )


def _run_control(
    raw: Mapping[str, Any], options: CommandLineOptions, identity: Identity, rcfile: str
) -> RunControl:
    run = apply_run_overrides(raw, options)
    postmaster = run.get("postmaster")
    if postmaster is None:
        postmaster = "postmaster" if identity.uid == 0 else identity.user
    return RunControl(
        # "set daemon -5" would make fetchmail sleep a negative time; treat as 0.
        poll_interval=_positive(run.get("poll_interval", 0)),
        logfile=run.get("logfile"),
        idfile=run.get("idfile") or identity.idfile,
        pidfile=run.get("pidfile") or identity.pidfile,
        postmaster=postmaster,
        bouncemail=run.get("bouncemail", True),
        spambounce=run.get("spambounce", False),
        softbounce=run.get("softbounce", True),
        properties=run.get("properties"),
        invisible=run.get("invisible", False),
        showdots=run.get("showdots", False),
        syslog=run.get("syslog", False),
        rcfile=rcfile,
    )


def _replace_logfile(run: RunControl) -> RunControl:
    return replace(run, logfile=None)

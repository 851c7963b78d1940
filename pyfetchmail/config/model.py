"""The configuration model: what a parsed, merged ``.fetchmailrc`` means.

Everything here is a frozen dataclass or an enum.  The model is built by
:mod:`pyfetchmail.config.rcfile` (rc text, ``defaults`` merge, built-in
defaults) and :mod:`pyfetchmail.config.overrides` (command line), and then only
read.

Invariants:
- Values are *effective* values after merging "command line > poll entry >
  ``defaults`` > built-in default", except where a field's comment says that
  ``None`` means "unset" because fetchmail itself distinguishes unset from an
  explicit value (``service``, ``expunge``, ``sslproto``, ``stripcr`` ...).
  Use the ``effective_*`` helpers for those instead of re-deriving defaults.
- Attribute names copy fetchmail's keywords (``fetchall``, ``keep``, ...), so
  the code reads like the man page.
- Nothing here performs I/O; the model can be constructed freely in tests.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = [
    "DEFAULT_FASTUIDL",
    "DEFAULT_FETCHSIZELIMIT",
    "DEFAULT_TIMEOUT",
    "DEFAULT_WARNINGS",
    "Auth",
    "BadHeader",
    "Config",
    "MailProtocol",
    "NameMapping",
    "Query",
    "RunControl",
    "Server",
    "User",
]

DEFAULT_TIMEOUT = 300
DEFAULT_WARNINGS = 3600
DEFAULT_FETCHSIZELIMIT = 100
DEFAULT_FASTUIDL = 4


class MailProtocol(enum.Enum):
    """``proto`` values; ``.value`` is the lower-case rc keyword."""

    AUTO = "auto"
    POP2 = "pop2"
    POP3 = "pop3"
    APOP = "apop"
    RPOP = "rpop"
    KPOP = "kpop"
    SDPS = "sdps"
    IMAP = "imap"
    ETRN = "etrn"
    ODMR = "odmr"

    @property
    def is_pop3_family(self) -> bool:
        """True for the protocols implemented by the POP3 client."""
        return self in _POP3_FAMILY


_POP3_FAMILY = frozenset(
    {MailProtocol.POP3, MailProtocol.APOP, MailProtocol.RPOP, MailProtocol.KPOP, MailProtocol.SDPS}
)


class Auth(enum.Enum):
    """``auth`` values, normalised (``cram`` -> CRAM_MD5, ``kerberos5`` -> KERBEROS_V5).

    ``.value`` is the spelling fetchmail uses in ``--configdump``.
    Note the rc/CLI asymmetry: rc ``auth kerberos`` means v4, CLI
    ``--auth kerberos`` means v5 (fetchmail 6.4 on KRB5 builds).
    """

    ANY = "any"
    PASSWORD = "password"
    KERBEROS_V4 = "kerberos_v4"
    KERBEROS_V5 = "kerberos_v5"
    GSSAPI = "gssapi"
    CRAM_MD5 = "cram-md5"
    OTP = "otp"
    NTLM = "ntlm"
    MSN = "msn"
    SSH = "ssh"
    EXTERNAL = "external"

    @property
    def needs_password(self) -> bool:
        """False for fetchmail's NO_PASSWORD auth types (remote name is the dummy)."""
        return self not in _NO_PASSWORD


_NO_PASSWORD = frozenset(
    {Auth.OTP, Auth.KERBEROS_V4, Auth.KERBEROS_V5, Auth.GSSAPI, Auth.SSH, Auth.EXTERNAL}
)


class BadHeader(enum.Enum):
    """``bad-header`` policy for malformed header lines."""

    REJECT = "reject"
    ACCEPT = "accept"


@dataclass(frozen=True, slots=True)
class NameMapping:
    """One entry of a user's local-name list.

    A plain name ``joe`` is ``NameMapping("joe", "joe", mapped=False)``; an rc
    mapping ``dave=david`` is ``NameMapping("dave", "david", mapped=True)``.
    *remote* may be a full ``user@domain`` address (fetchmail >= 6.3.5).
    """

    remote: str
    local: str
    mapped: bool = False


@dataclass(frozen=True, slots=True)
class RunControl:
    """Global (``set ...``) options plus the run-wide command-line state."""

    poll_interval: int = 0  # set daemon N / -d N; 0 = single run
    logfile: str | None = None
    idfile: str = ""  # absolute path, computed from home/FETCHMAILHOME
    pidfile: str = ""  # absolute path, computed as fetchmail does
    postmaster: str = ""  # invoking user, "postmaster" for root; "" = discard
    bouncemail: bool = True
    spambounce: bool = False
    softbounce: bool = True
    properties: str | None = None
    invisible: bool = False
    showdots: bool = False
    syslog: bool = False
    rcfile: str | None = None  # absolute path of the rc file read ("-" for stdin)


@dataclass(frozen=True, slots=True)
class Server:
    """Server options of one ``poll``/``skip`` entry, shared by its users."""

    pollname: str
    active: bool = True  # False for ``skip`` entries not named on the command line
    via: str | None = None
    protocol: MailProtocol = MailProtocol.AUTO
    service: str | None = None  # None = protocol default port
    timeout: int = DEFAULT_TIMEOUT
    interval: int = 0
    envelope: str | None = "Received"  # None = ``no envelope``
    envelope_explicit: bool = False  # True when the rc set ``envelope`` itself
    envskip: int = 0
    qvirtual: str | None = None
    auth: Auth = Auth.ANY
    dns: bool = True
    checkalias: bool = False
    uidl: bool = False
    aka: tuple[str, ...] = ()
    localdomains: tuple[str, ...] = ()
    interface: str | None = None
    monitor: str | None = None
    plugin: str | None = None
    plugout: str | None = None
    principal: str | None = None
    esmtpname: str | None = None
    esmtppassword: str | None = None
    tracepolls: bool = False
    badheader: BadHeader = BadHeader.REJECT
    skip: bool = False  # a ``skip`` entry (configdump's 'active' is ``not skip``)

    @property
    def queryname(self) -> str:
        """Name used for DNS, connecting and ``.fetchids`` keys: ``via`` or poll name."""
        return self.via if self.via else self.pollname


@dataclass(frozen=True, slots=True)
class User:
    """User options of one user block (one query together with its Server)."""

    remote: str
    password: str | None = None
    localnames: tuple[NameMapping, ...] = ()
    wildcard: bool = False  # ``*`` in the local-name list
    fetchall: bool = False
    keep: bool = False
    flush: bool = False
    limitflush: bool = False
    rewrite: bool = True
    stripcr: bool | None = None  # None = on iff an MDA is used
    forcecr: bool = False
    pass8bits: bool = False
    dropstatus: bool = False
    dropdelivered: bool = False
    mimedecode: bool = False
    idle: bool = False
    mda: str | None = None
    bsmtp: str | None = None
    lmtp: bool = False
    preconnect: str | None = None
    postconnect: str | None = None
    limit: int = 0  # 0 = no limit
    warnings: int = DEFAULT_WARNINGS
    fetchlimit: int = 0  # 0 = no limit
    fetchsizelimit: int = DEFAULT_FETCHSIZELIMIT
    fastuidl: int = DEFAULT_FASTUIDL
    batchlimit: int = 0  # 0 = no limit
    expunge: int | None = None  # None = protocol default (IMAP: 1, POP3: never)
    ssl: bool = False
    sslkey: str | None = None
    sslcert: str | None = None
    sslproto: str | None = None  # None = unset; "" = STARTTLS disabled
    sslcertck: bool = True
    sslcertfile: str | None = None
    sslcertpath: str | None = None
    sslcommonname: str | None = None
    sslfingerprint: str | None = None
    properties: str | None = None
    smtphunt: tuple[str, ...] = ("localhost",)
    fetchdomains: tuple[str, ...] = ()
    smtpaddress: str | None = None
    smtpname: str | None = None
    antispam: tuple[int, ...] = ()
    mailboxes: tuple[str, ...] = ()  # ``folder`` list; empty = INBOX (IMAP)

    @property
    def effective_stripcr(self) -> bool:
        """stripcr as applied: explicit value, else on iff delivering to an MDA."""
        if self.stripcr is not None:
            return self.stripcr
        return self.mda is not None

    @property
    def multidrop(self) -> bool:
        """More than one local name, or the ``*`` wildcard."""
        return self.wildcard or len(self.localnames) > 1


@dataclass(frozen=True, slots=True)
class Query:
    """One (server, user) pair: the unit fetchmail polls."""

    server: Server
    user: User

    @property
    def label(self) -> str:
        """``remote@pollname``, as used in messages such as prompts."""
        return f"{self.user.remote}@{self.server.pollname}"

    @property
    def effective_expunge(self) -> int:
        """Deletions between expunges (IMAP) / messages per session (POP3); 0 = never."""
        if self.user.expunge is not None:
            return self.user.expunge
        return 1 if self.server.protocol is MailProtocol.IMAP else 0


@dataclass(frozen=True, slots=True)
class Config:
    """A whole parsed configuration: globals plus queries in file order."""

    run: RunControl = field(default_factory=RunControl)
    queries: tuple[Query, ...] = ()

    @property
    def active_queries(self) -> tuple[Query, ...]:
        """Queries to poll: those of active (non-``skip`` or named) entries."""
        return tuple(q for q in self.queries if q.server.active)

"""A private, unprivileged Dovecot 2.3 on loopback for tests and benchmarks.

Responsibility: write a self-contained Dovecot configuration under a fresh
temporary directory, start ``dovecot -F`` with it, wait until every listener
accepts connections, and stop it again.

Invariants and the reasons for them:

- Everything binds 127.0.0.1 on free high ports: POP3 (STLS offered), POP3S
  (implicit TLS), IMAP (STARTTLS offered), IMAPS and LMTP.
- Dovecot's login processes refuse to run as root, so when we are root the
  whole instance runs as ``nobody`` (otherwise as the invoking user), with no
  chroot, and every state, log and mail file belongs to that user. The base
  directory lives under /tmp with mode 0755, because pytest's own temporary
  directories are 0700 and ``nobody`` could not traverse them.
- TLS uses a server certificate for ``localhost`` (SAN DNS:localhost and
  IP:127.0.0.1) issued by a throw-away trustme CA written to ``ca.pem``.
- Users live in passwd-files (one per user, ``users/<name>``) with
  ``{PLAIN}`` passwords, so APOP and CRAM-MD5 work.
- ``stop()`` signals the master (``master.pid``) and waits; the temporary
  directory is removed unless ``PFM_KEEP_TESTBED`` is set.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import logging
import os
import pwd
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import trustme

from testbed.maildir import MailUser
from testbed.serving import Lifecycle

__all__ = ["Dovecot", "DovecotError", "MailUser", "fingerprint", "free_ports"]

log = logging.getLogger(__name__)

DOVECOT_BIN = "/usr/sbin/dovecot"


_running: set[Dovecot] = set()


@atexit.register
def _stop_all() -> None:
    """Stop instances a caller forgot (the master would outlive us with ``-F`` too)."""
    for server in list(_running):
        server.stop()


class DovecotError(RuntimeError):
    """The private Dovecot could not be started (the message has the log tail)."""


def free_ports(count: int) -> list[int]:
    """*count* distinct TCP ports on 127.0.0.1 that were free a moment ago."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def fingerprint(der: bytes, algorithm: str) -> str:
    """``AA:BB:...`` upper-case hex digest of a DER certificate (fetchmail's format)."""
    digest = hashlib.new(algorithm, der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def _run_as() -> tuple[int, int, str]:
    """(uid, gid, user name) that Dovecot runs as: nobody when we are root."""
    entry = pwd.getpwnam("nobody") if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())
    return entry.pw_uid, entry.pw_gid, entry.pw_name


_CONFIG = """\
# Private test instance written by testbed/dovecot.py.
instance_name = {instance}
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
info_log_path = {base}/dovecot.log
debug_log_path = {base}/dovecot.log
protocols = imap pop3 lmtp
listen = 127.0.0.1
shutdown_clients = yes

default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
first_valid_uid = {uid}
last_valid_uid = {uid}
first_valid_gid = {gid}
last_valid_gid = {gid}
mail_privileged_group =
mail_location = maildir:~/Maildir
mail_max_userip_connections = 1000

ssl = yes
ssl_cert = <{base}/tls/server.pem
ssl_key = <{base}/tls/server.key
ssl_min_protocol = TLSv1.2

disable_plaintext_auth = no
auth_mechanisms = plain login cram-md5 apop
auth_failure_delay = 0
auth_cache_size = 0

passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {base}/users/%u
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {base}/users/%u
}}

protocol lmtp {{
  # RCPT TO:<user@localhost> delivers to "user".
  auth_username_format = %n
  postmaster_address = postmaster@localhost
}}

service imap-login {{
  user = {user}
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps}
    ssl = yes
  }}
}}
service pop3-login {{
  user = {user}
  chroot =
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3}
  }}
  inet_listener pop3s {{
    address = 127.0.0.1
    port = {pop3s}
    ssl = yes
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp}
  }}
}}
service anvil {{
  chroot =
  # No auth penalty socket: otherwise every login from 127.0.0.1 is delayed
  # by 2-15 s after a failed one (Dovecot's documented way to disable it).
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service auth {{
  user = {user}
}}
service auth-worker {{
  user = {user}
}}
"""


class Dovecot(Lifecycle):
    """A private Dovecot instance; use ``start()``/``stop()`` or ``with Dovecot() as d:``.

    Attributes once started: ``host`` ("127.0.0.1"), ``pop3_port``,
    ``pop3s_port``, ``imap_port``, ``imaps_port``, ``lmtp_port``, ``ca_file``
    (PEM of the test CA, a ``Path``), ``cert_file`` (server certificate PEM),
    ``cert_md5`` and ``cert_sha256`` (DER fingerprints, ``AA:BB:...``),
    ``log_path``, ``base`` (the temporary directory).
    """

    host = "127.0.0.1"

    def __init__(self, *, parent: str | os.PathLike[str] = "/tmp", start_timeout: float = 20.0):
        self._parent = Path(parent)
        self._start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self.uid, self.gid, self.user = _run_as()
        self.group = _group_name(self.gid)
        self.base = Path()
        self.pop3_port = self.pop3s_port = self.imap_port = self.imaps_port = self.lmtp_port = 0
        self.ca_file = Path()
        self.cert_file = Path()
        self.cert_md5 = ""
        self.cert_sha256 = ""
        self.log_path = Path()
        self.users: dict[str, MailUser] = {}

    # -- lifecycle -------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while the master process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Write the configuration, start Dovecot, and wait for every port."""
        if not Path(DOVECOT_BIN).exists():
            raise DovecotError(f"{DOVECOT_BIN} is not installed (run scripts/setup.sh)")
        self.base = Path(tempfile.mkdtemp(prefix="pfm-dovecot-", dir=self._parent))
        os.chmod(self.base, 0o755)
        self.log_path = self.base / "dovecot.log"
        for sub in ("run", "state", "home", "tls", "users"):
            (self.base / sub).mkdir(mode=0o755)
            self._chown(self.base / sub)
        self._write_tls()
        self.log_path.touch(mode=0o600)
        self._chown(self.log_path)
        last_error: DovecotError | None = None
        # A free port can be taken between choosing and binding it: retry.
        for _attempt in range(3):
            try:
                self._start_once()
                _running.add(self)
                return
            except DovecotError as exc:
                last_error = exc
                self._kill()
        self._cleanup()
        assert last_error is not None
        raise last_error

    def _start_once(self) -> None:
        ports = free_ports(5)
        self.pop3_port, self.pop3s_port, self.imap_port, self.imaps_port, self.lmtp_port = ports
        conf = self.base / "dovecot.conf"
        conf.write_text(
            _CONFIG.format(
                instance=f"pfm-{secrets.token_hex(4)}",
                base=self.base,
                user=self.user,
                group=self.group,
                uid=self.uid,
                gid=self.gid,
                pop3=self.pop3_port,
                pop3s=self.pop3s_port,
                imap=self.imap_port,
                imaps=self.imaps_port,
                lmtp=self.lmtp_port,
            )
        )
        os.chmod(conf, 0o644)
        stderr_path = self.base / "dovecot.stderr"
        with open(stderr_path, "wb") as stderr:
            root = os.geteuid() == 0
            self._proc = subprocess.Popen(
                [DOVECOT_BIN, "-F", "-c", str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                cwd=self.base,
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(self.base)},
                user=self.uid if root else None,
                group=self.gid if root else None,
                extra_groups=[] if root else None,
            )
        deadline = time.monotonic() + self._start_timeout
        for port in ports:
            while not _accepts(self.host, port):
                if self._proc.poll() is not None:
                    raise DovecotError(
                        f"dovecot exited with status {self._proc.returncode}\n" + self.log_tail()
                    )
                if time.monotonic() > deadline:
                    raise DovecotError(
                        f"dovecot did not listen on {self.host}:{port} within "
                        f"{self._start_timeout:.0f} s\n" + self.log_tail()
                    )
                time.sleep(0.02)
        log.debug("dovecot started in %s (pop3 %d, imap %d)", self.base, ports[0], ports[2])

    def stop(self) -> None:
        """Stop Dovecot (SIGTERM via master.pid, then wait) and remove its files."""
        self._kill()
        self._cleanup()

    def _kill(self) -> None:
        _running.discard(self)
        proc, self._proc = self._proc, None
        if proc is None:
            return
        pid = proc.pid
        with contextlib.suppress(OSError, ValueError):
            pid = int((self.base / "run" / "master.pid").read_text().strip())
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    def _cleanup(self) -> None:
        if self.base != Path() and not os.environ.get("PFM_KEEP_TESTBED"):
            shutil.rmtree(self.base, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        """The last *lines* lines of Dovecot's log and stderr (for error messages)."""
        text = []
        for path in (self.base / "dovecot.stderr", self.log_path):
            with contextlib.suppress(OSError):
                text.extend(path.read_text(errors="replace").splitlines()[-lines:])
        return "\n".join(text) or "(dovecot log is empty)"

    # -- users -----------------------------------------------------------------------

    def add_user(self, name: str, password: str) -> MailUser:
        """Add a mailbox user (passwd-file line, home, empty Maildir) and return it."""
        for text in (name, password):
            if not text or any(ch in text for ch in ":\n\r\0") or text != text.strip():
                raise ValueError("user names and passwords must be non-empty, without ':' or CR/LF")
        if "/" in name or name.startswith("."):
            raise ValueError(f"bad user name {name!r}")
        home = self.base / "home" / name
        user = MailUser(name, password, home, home / "Maildir", self.uid, self.gid)
        user.make_maildir()
        if name in self.users:
            raise ValueError(f"user {name!r} exists already")
        self.users[name] = user
        # One passwd-file per user (the passdb path is users/%u): Dovecot
        # re-checks a passwd-file at most once a second, so users added to one
        # shared file could stay unknown for up to a second; a new file is read
        # on its first lookup.
        entry = self.base / "users" / name
        tmp = self.base / "users" / f".{name}.tmp"
        tmp.write_text(f"{name}:{{PLAIN}}{password}:{user.uid}:{user.gid}::{home}::\n")
        os.chmod(tmp, 0o600)
        self._chown(tmp)
        os.rename(tmp, entry)
        return user

    # -- helpers ---------------------------------------------------------------------

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            os.chown(path, self.uid, self.gid)

    def _write_tls(self) -> None:
        ca = trustme.CA()
        leaf = ca.issue_cert(
            "localhost", "127.0.0.1", common_name="localhost", key_type=trustme.KeyType.RSA
        )
        tls = self.base / "tls"
        self.ca_file = tls / "ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        self.cert_file = tls / "server.pem"
        with open(self.cert_file, "wb") as handle:
            for blob in leaf.cert_chain_pems:
                handle.write(blob.bytes())
        key = tls / "server.key"
        leaf.private_key_pem.write_to_path(str(key))
        for path in (self.ca_file, self.cert_file):
            os.chmod(path, 0o644)
        os.chmod(key, 0o600)
        self._chown(key)
        der = ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode("ascii"))
        self.cert_md5 = fingerprint(der, "md5")
        self.cert_sha256 = fingerprint(der, "sha256")


def _group_name(gid: int) -> str:
    import grp

    return grp.getgrgid(gid).gr_name


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False

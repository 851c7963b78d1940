"""Direct Maildir++ access for test mailboxes served by the private Dovecot.

Responsibility: put messages into a user's Maildir the way an MTA's local
delivery agent would, and read back what is there, without going through a
server.

Invariants:

- Messages are stored with LF line ends, as Postfix's local(8), procmail and
  Dovecot's own LDA/LMTP store them; POP3 and IMAP serve them with CRLF.
  ``deliver()`` turns CRLF into LF; ``messages()`` returns the stored bytes.
- File names follow Dovecot's ``<sec>.M<usec>P<pid>.<host>,S=<size>,W=<crlf
  size>`` pattern (the sizes let Dovecot skip reading the file). The
  ``sec.usec`` stamp is strictly increasing within this process, so sorting by
  it gives delivery order, which is also the order Dovecot numbers new mail.
- Every file and directory created here is chowned to the Dovecot user (when
  running as root), because Dovecot runs unprivileged.
- Folders use Maildir++ layout: IMAP name ``A.B`` (separator ``.``, names in
  modified UTF-7 exactly as the caller gives them) is the directory
  ``.A.B`` with a ``maildirfolder`` marker.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MailUser", "maildir_flags", "sorted_maildir_files"]

_STAMP = re.compile(r"(\d+)\.(?:[^.:]*?M(\d+))?")
_stamp_lock = threading.Lock()
_last_stamp = 0  # microseconds since the epoch of the last delivered file


def _next_stamp() -> int:
    """A strictly increasing microsecond timestamp (delivery order key)."""
    global _last_stamp
    with _stamp_lock:
        now = time.time_ns() // 1000
        _last_stamp = max(now, _last_stamp + 1)
        return _last_stamp


def _order_key(path: Path) -> tuple[int, int, str]:
    """Sort key: seconds and microseconds (``M<usec>``) at the start of a Maildir name.

    Dovecot writes ``<sec>.M<usec>P<pid>...``, Postfix ``<sec>.V<dev>I<ino>M<usec>...``.
    """
    match = _STAMP.match(path.name)
    if match is None:
        return (0, 0, path.name)
    return (int(match.group(1)), int(match.group(2) or 0), path.name)


def sorted_maildir_files(maildir: Path) -> list[Path]:
    """Every message file in ``new/`` and ``cur/`` of *maildir*, in delivery order."""
    files: list[Path] = []
    for sub in ("new", "cur"):
        directory = maildir / sub
        if directory.is_dir():
            files.extend(p for p in directory.iterdir() if p.is_file())
    return sorted(files, key=_order_key)


def maildir_flags(path: Path) -> str:
    """The Maildir info flags of a message file (``"S"``, ``"RS"``, or ``""``)."""
    _, sep, info = path.name.partition(":2,")
    return info if sep else ""


@dataclass(frozen=True, slots=True)
class MailUser:
    """A mailbox user of the private Dovecot, with direct access to its Maildir.

    *name* and *password* log in over POP3/IMAP (every mechanism, APOP and
    CRAM-MD5 included); *home* is the home directory and *maildir* its
    ``Maildir``; *uid*/*gid* own the files.
    """

    name: str
    password: str
    home: Path
    maildir: Path
    uid: int
    gid: int

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            os.chown(path, self.uid, self.gid)

    def _folder_dir(self, folder: str | None) -> Path:
        if folder is None or folder.upper() == "INBOX":
            return self.maildir
        if "/" in folder or folder.startswith(".") or not folder:
            raise ValueError(f"bad Maildir++ folder name {folder!r}")
        return self.maildir / ("." + folder)

    def make_maildir(self) -> None:
        """Create the home and an empty INBOX Maildir (idempotent)."""
        for path in (self.home, self.maildir):
            path.mkdir(mode=0o700, exist_ok=True)
            self._chown(path)
        for sub in ("cur", "new", "tmp"):
            path = self.maildir / sub
            path.mkdir(mode=0o700, exist_ok=True)
            self._chown(path)

    def create_folder(self, name: str) -> Path:
        """Create the folder whose IMAP (modified UTF-7) name is *name*; return its path.

        Parent folders of a dotted name (``A`` for ``A.B``) are created too,
        as an IMAP CREATE would. Idempotent.
        """
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):
            directory = self._folder_dir(".".join(parts[:depth]))
            directory.mkdir(mode=0o700, exist_ok=True)
            self._chown(directory)
            for sub in ("cur", "new", "tmp"):
                (directory / sub).mkdir(mode=0o700, exist_ok=True)
                self._chown(directory / sub)
            marker = directory / "maildirfolder"
            marker.touch(mode=0o600)
            self._chown(marker)
        return self._folder_dir(name)

    def deliver(self, raw: bytes, folder: str | None = None, seen: bool = False) -> str:
        """Store *raw* as a new message; return the file name it got.

        CRLF line ends become LF (what a local delivery agent stores). With
        *seen* the message goes to ``cur/`` with the ``S`` flag, else to ``new/``.
        The file is written in ``tmp/`` and renamed into place, so a server
        scanning the Maildir never sees a partial message.
        """
        directory = self._folder_dir(folder)
        if not (directory / "tmp").is_dir():
            if folder is None:
                self.make_maildir()
            else:
                self.create_folder(folder)
        body = raw.replace(b"\r\n", b"\n")
        crlf_size = len(body) + body.count(b"\n")
        stamp = _next_stamp()
        sec, usec = divmod(stamp, 1_000_000)
        base = f"{sec}.M{usec}P{os.getpid()}.{socket.gethostname()},S={len(body)},W={crlf_size}"
        tmp_path = directory / "tmp" / base
        with open(tmp_path, "wb") as handle:
            handle.write(body)
        self._chown(tmp_path)
        name = base + ":2,S" if seen else base
        os.rename(tmp_path, directory / ("cur" if seen else "new") / name)
        return name

    def message_files(self, folder: str | None = None) -> list[Path]:
        """Paths of the messages in *folder* (None = INBOX), in delivery order."""
        return sorted_maildir_files(self._folder_dir(folder))

    def messages(self, folder: str | None = None) -> list[bytes]:
        """The stored bytes (LF line ends) of every message, in delivery order."""
        return [path.read_bytes() for path in self.message_files(folder)]

    def flags(self, folder: str | None = None) -> list[str]:
        """The Maildir flags of every message (``"S"``, ``""``...), same order."""
        return [maildir_flags(path) for path in self.message_files(folder)]

    def set_seen(self, index: int, folder: str | None = None) -> None:
        """Mark the *index*-th message (0-based, delivery order) as seen."""
        path = self.message_files(folder)[index]
        flags = set(maildir_flags(path)) | {"S"}
        base = path.name.partition(":2,")[0]
        target = path.parent.parent / "cur" / (base + ":2," + "".join(sorted(flags)))
        os.rename(path, target)

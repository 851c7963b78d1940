"""Crash-safe file primitives for the UID state (:mod:`pyfetchmail.state.uidstore`).

- :func:`write_atomic`: ``<file>_`` created exclusively with mode 0600 (after
  unlinking any old one, so a planted symlink is never followed), written,
  fsynced, renamed over the target, directory fsynced.  Readers see the old
  or the new file, never a mix; on failure the old file stays.
- :meth:`FileSystem.append`: one record appended to a journal and
  ``fdatasync``-ed (one disk flush per record, instead of the four of an
  atomic rewrite of two files).  A torn last line is possible after a crash;
  readers ignore a last line without its newline.

:class:`FileSystem` is the seam fault-injection tests subclass.
"""

from __future__ import annotations

import contextlib
import errno
import os

from pyfetchmail.errors import LocalIOError

__all__ = ["FileSystem", "read_text", "write_all", "write_atomic"]


class FileSystem:
    """The few file operations the UID store needs."""

    def write_new(self, path: str, data: bytes) -> None:
        """Create *path* exclusively with mode 0600, write *data*, fsync, close."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    def append(self, path: str, data: bytes) -> bool:
        """Append *data* to *path* (created 0600) and fdatasync; True if it was created."""
        flags = os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW
        try:
            fd = os.open(path, flags)
            created = False
        except FileNotFoundError:
            fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o600)
            created = True
        try:
            write_all(fd, data)
            os.fdatasync(fd)
        finally:
            os.close(fd)
        return created

    def replace(self, src: str, dst: str) -> None:
        os.replace(src, dst)

    def unlink(self, path: str) -> None:
        """Remove *path*; a missing file is not an error."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

    def fsync_dir(self, path: str) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """Write all of *data* to *fd* (``os.write`` may write less than asked)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_atomic(fs: FileSystem, path: str, data: bytes | None) -> None:
    """Atomically replace *path* with *data*, or remove it when *data* is None.

    Raises :class:`LocalIOError` (the old file intact) on failure.
    """
    directory = os.path.dirname(os.path.abspath(path))
    tmp = path + "_"
    try:
        if data is None:
            fs.unlink(path)
        else:
            fs.unlink(tmp)  # never write through a planted file or symlink
            try:
                fs.write_new(tmp, data)
                fs.replace(tmp, path)
            except BaseException:
                fs.unlink(tmp)
                raise
        fs.fsync_dir(directory)
    except OSError as exc:
        raise LocalIOError(f"cannot write UID state file {path}: {exc.strerror or exc}") from exc


def read_text(path: str) -> str | None:
    """The file's text (undecodable bytes kept as surrogates); None if it does not exist."""
    try:
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8", "surrogateescape")
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise LocalIOError(f"cannot read UID state file {path}: {exc.strerror}") from exc

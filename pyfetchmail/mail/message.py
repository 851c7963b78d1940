"""A retrieved message, spooled: memory first, a private temp file past a bound.

Invariants:
- The canonical form held here is the message exactly as the server sent it,
  with protocol framing removed: CRLF line ends as received, POP3 dot-stuffing
  and the terminating ``.`` line already undone.  Sinks convert from this
  form (SMTP re-stuffs dots, an MDA gets LF line ends when stripcr is on).
- A message larger than ``max_memory`` bytes never lives whole in memory: the
  spool rolls over to an unnamed temporary file (mode 0600, deleted on close).
- Reading never consumes: every reader starts from the beginning.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from types import TracebackType

__all__ = ["DEFAULT_MAX_MEMORY", "SpooledMessage"]

#: Messages up to this size stay in memory; larger ones go to a temp file.
DEFAULT_MAX_MEMORY = 1 << 20

#: Upper bound on the header block we will hold in memory at once.
MAX_HEADER_BYTES = 4 << 20


class SpooledMessage:
    """Raw message bytes with bounded memory use.

    *announced_size* is the size the server reported (LIST / RFC822.SIZE),
    used for ``SIZE=`` and limits; :attr:`size` is what was actually received.
    """

    def __init__(
        self, announced_size: int | None = None, max_memory: int = DEFAULT_MAX_MEMORY
    ) -> None:
        self.announced_size = announced_size
        self.max_memory = max_memory
        self._file = tempfile.SpooledTemporaryFile(max_size=max_memory)  # noqa: SIM115
        self._size = 0
        self._closed = False

    @classmethod
    def from_bytes(cls, data: bytes, announced_size: int | None = None) -> SpooledMessage:
        """Build a spooled message from bytes already in memory (tests, synthesised mail)."""
        msg = cls(announced_size=announced_size if announced_size is not None else len(data))
        msg.write(data)
        return msg

    def write(self, data: bytes) -> None:
        """Append *data* to the spool."""
        self._file.write(data)
        self._size += len(data)

    @property
    def size(self) -> int:
        """Number of bytes received."""
        return self._size

    @property
    def in_memory(self) -> bool:
        """True while the spool has not rolled over to a file."""
        return not getattr(self._file, "_rolled", False)

    def iter_chunks(self, chunk_size: int = 65536) -> Iterator[bytes]:
        """Yield the whole message from the start in chunks of at most *chunk_size*."""
        self._file.seek(0)
        while True:
            chunk = self._file.read(chunk_size)
            if not chunk:
                break
            yield chunk
        self._file.seek(0, 2)

    def iter_chunks_from(self, offset: int, chunk_size: int = 65536) -> Iterator[bytes]:
        """Yield the message from byte *offset* to the end in chunks of at most *chunk_size*."""
        self._file.seek(offset)
        while True:
            chunk = self._file.read(chunk_size)
            if not chunk:
                break
            yield chunk
        self._file.seek(0, 2)

    @classmethod
    def from_parts(
        cls,
        header: bytes,
        body: Iterable[bytes],
        announced_size: int | None = None,
        max_memory: int = DEFAULT_MAX_MEMORY,
    ) -> SpooledMessage:
        """Build a new spool from a (processed) *header* block and *body* chunks.

        Memory stays bounded by *max_memory* plus one chunk: the body is
        streamed, so a large original stays on disk.
        """
        msg = cls(announced_size=announced_size, max_memory=max_memory)
        msg.write(header)
        for chunk in body:
            msg.write(chunk)
        return msg

    def read_all(self) -> bytes:
        """Return the whole message.  Only for small messages and tests."""
        return b"".join(self.iter_chunks())

    def header_bytes(self) -> bytes:
        """Return the header block, up to and including the first empty line.

        A message without an empty line is all header (bounded by
        ``MAX_HEADER_BYTES``); the caller decides what that means.
        """
        self._file.seek(0)
        out = bytearray()
        try:
            while len(out) < MAX_HEADER_BYTES:
                line = self._file.readline(65536)
                if not line:
                    break
                out += line
                if line in (b"\r\n", b"\n"):
                    break
        finally:
            self._file.seek(0, 2)
        return bytes(out)

    def close(self) -> None:
        """Release memory or delete the temporary file."""
        if not self._closed:
            self._closed = True
            self._file.close()

    def __enter__(self) -> SpooledMessage:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

"""The listener behind the scripted fake servers: 127.0.0.1, one thread, one client at a time.

:class:`LoopbackServer` listens on 127.0.0.1 (port 0) as soon as
:meth:`~LoopbackServer.serve` is called and hands each accepted connection,
with a read timeout, to :meth:`~LoopbackServer.handle_connection`, which
subclasses implement; the connection is closed when it returns.

Invariants: binds loopback only; every socket read is bounded (the accept
wait by 0.05 s, connection reads by *read_timeout*); :meth:`close` stops
the thread within 10 s and is safe to call twice.
"""

from __future__ import annotations

import socket
import threading
from typing import Self

__all__ = ["LoopbackServer"]


class LoopbackServer:
    """Serve connections on ``port`` from a daemon thread until :meth:`close`."""

    port: int

    def serve(self, read_timeout: float = 10.0) -> None:
        """Listen on a free loopback port and start the accept thread."""
        self._read_timeout = read_timeout
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def handle_connection(self, conn: socket.socket) -> None:
        """Talk to one client; exceptions not handled here end the server thread."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop accepting and wait for the server thread."""
        self._stop.set()
        self._thread.join(10)
        self._listener.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(self._read_timeout)
                self.handle_connection(conn)

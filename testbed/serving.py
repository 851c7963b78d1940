"""What the testbed's servers share: the start/stop lifecycle and a background event loop.

- :class:`Lifecycle` makes any object with ``start()`` and ``stop()`` a
  context manager: ``with Server() as s:`` starts it and always stops it.
- :class:`LoopServer` runs an asyncio server on 127.0.0.1 (a free port) in
  its own event loop on a daemon thread, for servers written as
  :class:`asyncio.Protocol` classes (:mod:`testbed.fastsink`,
  :mod:`testbed.proxy`).

Invariants: servers bind 127.0.0.1 only; ``stop()`` is idempotent and
joins the loop thread (bounded waits, 10 s at most for each step).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Self

__all__ = ["Lifecycle", "LoopServer"]


class Lifecycle:
    """Mixin: ``with obj as o:`` calls ``obj.start()`` and, on the way out, ``obj.stop()``."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class LoopServer:
    """An asyncio server on 127.0.0.1 served by an event loop in a daemon thread.

    ``loop`` and ``port`` are set by :meth:`start`; ``loop`` is ``None``
    again after :meth:`stop`.
    """

    host = "127.0.0.1"

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self.server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None

    def start(self, factory: Callable[[], asyncio.BaseProtocol]) -> int:
        """Start the loop thread and listen on a free port; return the port."""
        loop = asyncio.new_event_loop()
        self.loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name=self.name, daemon=True)
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(loop.create_server(factory, self.host, 0), loop)
        self.server = future.result(timeout=10)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    def stop(self, before_wait: Callable[[], None] | None = None, settle: float = 0.0) -> None:
        """Close the server and stop the loop thread (idempotent).

        *before_wait* runs in the loop after the server is closed and before
        waiting for it (e.g. to close open connections); *settle* seconds are
        then given to ``connection_lost`` callbacks.
        """
        loop, self.loop = self.loop, None
        if loop is None:
            return
        server = self.server

        async def _close() -> None:
            if server is not None:
                server.close()
            if before_wait is not None:
                before_wait()
            if server is not None:
                await asyncio.wait_for(server.wait_closed(), 5)
            if settle:
                await asyncio.sleep(settle)

        try:
            asyncio.run_coroutine_threadsafe(_close(), loop).result(timeout=10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(timeout=10)
            loop.close()

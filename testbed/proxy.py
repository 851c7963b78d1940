"""A loopback TCP proxy that adds a fixed latency in each direction.

Responsibility: make a loopback server look like a distant one (benchmarks of
pipelining: a client that waits for every reply pays the round trip each
time), without limiting bandwidth.

Invariants:

- Every chunk read from one side is written to the other side *delay* seconds
  later, in the order read; EOF and close travel the same way (a per-direction
  FIFO, since asyncio timers with equal deadlines have no guaranteed order).
- Back-pressure: when a side's write buffer is full, reading from its peer
  pauses, so a 100 MB transfer does not pile up in the proxy.
- Listens on 127.0.0.1 only, connects only to the given loopback target, and
  stops by itself after *lifetime* seconds (bounded even if a test forgets).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib

from testbed.serving import Lifecycle, LoopServer

__all__ = ["DelayProxy"]

_EOF = object()
_CLOSE = object()


class _Side(asyncio.Protocol):
    """One connection of a proxied pair; forwards what it reads to ``peer``, delayed."""

    def __init__(self, proxy: DelayProxy, loop: asyncio.AbstractEventLoop) -> None:
        self.proxy = proxy
        self._loop = loop
        self.peer: _Side | None = None
        self.transport: asyncio.Transport | None = None
        self._queue: collections.deque[tuple[float, object]] = collections.deque()
        self._timer: asyncio.TimerHandle | None = None
        self._backlog: list[object] = []  # items due before the peer connected

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.proxy._transports.add(transport)

    def data_received(self, data: bytes) -> None:
        self._enqueue(data)

    def eof_received(self) -> bool:
        self._enqueue(_EOF)
        return True  # keep the other direction open (half close)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.proxy._transports.discard(self.transport)
        self._enqueue(_CLOSE)

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()

    def _enqueue(self, item: object) -> None:
        loop = self._loop
        self._queue.append((loop.time() + self.proxy.delay, item))
        if self._timer is None:
            self._timer = loop.call_at(self._queue[0][0], self._flush)

    def _flush(self) -> None:
        loop = self._loop
        self._timer = None
        now = loop.time()
        while self._queue and self._queue[0][0] <= now:
            self._deliver(self._queue.popleft()[1])
        if self._queue:
            self._timer = loop.call_at(self._queue[0][0], self._flush)

    def _deliver(self, item: object) -> None:
        peer = self.peer
        if peer is None or peer.transport is None:
            self._backlog.append(item)
            return
        transport = peer.transport
        if isinstance(item, bytes):
            if not transport.is_closing():
                transport.write(item)
        elif item is _EOF:
            if transport.can_write_eof() and not transport.is_closing():
                # The far side may already have gone (ENOTCONN): nothing to half-close.
                with contextlib.suppress(OSError):
                    transport.write_eof()
        else:
            transport.close()

    def peer_ready(self) -> None:
        backlog, self._backlog = self._backlog, []
        for item in backlog:
            self._deliver(item)


class DelayProxy(Lifecycle):
    """Forward 127.0.0.1:``port`` to *target_host*:*target_port* with *delay* s each way.

    ``with DelayProxy(host, port, delay=0.025) as proxy:`` then connect to
    ``proxy.host``/``proxy.port``.
    """

    host = "127.0.0.1"

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        delay: float = 0.025,
        lifetime: float = 3600.0,
    ) -> None:
        if target_host not in ("127.0.0.1", "localhost"):
            raise ValueError("the delay proxy only forwards to loopback")
        self.target_host = target_host
        self.target_port = target_port
        self.delay = delay
        self.lifetime = lifetime
        self.port = 0
        self._serving = LoopServer("delayproxy")
        self._transports: set[asyncio.BaseTransport] = set()

    def start(self) -> None:
        """Listen on a free loopback port in a background event loop."""
        self.port = self._serving.start(self._accept)
        loop = self._serving.loop
        assert loop is not None
        loop.call_soon_threadsafe(loop.call_later, self.lifetime, self._shutdown)

    def _accept(self) -> _Side:
        loop = self._serving.loop
        assert loop is not None
        client = _Side(self, loop)
        upstream = _Side(self, loop)
        client.peer, upstream.peer = upstream, client

        async def _connect() -> None:
            try:
                await loop.create_connection(lambda: upstream, self.target_host, self.target_port)
            except OSError:
                if client.transport is not None:
                    client.transport.close()
                return
            client.peer_ready()

        loop.create_task(_connect())
        return client

    def _shutdown(self) -> None:
        if self._serving.server is not None:
            self._serving.server.close()
        for transport in list(self._transports):
            transport.close()

    def stop(self) -> None:
        """Close every connection and stop the loop thread (idempotent)."""
        # settle: let connection_lost callbacks run before the loop stops.
        self._serving.stop(before_wait=self._shutdown, settle=0.01)

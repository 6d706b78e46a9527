"""A TCP relay on 127.0.0.1 that a test can pause, resume and slow down: a network that
partitions and heals, or a database far away.

While paused, the relay accepts connections and reads what each side sends, but forwards
nothing; on resume it delivers everything it held, in order. A peer that closes while
paused has its bytes delivered first, then its close. ``delay`` holds every chunk that
long in each direction (a round trip costs twice that), without serialising chunks: what
was sent in one flight arrives together, as over a long link.

The relay also counts what crossed it: :attr:`PausableRelay.connections` and
:attr:`PausableRelay.flights`, the client's turns to speak (the first bytes of a
connection, and every client chunk that follows an answer): each one is a round trip
the client waited for, whatever the chunking. It runs its own event loop in a thread,
so sync and async tests drive it alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator

__all__ = ["PausableRelay"]


class PausableRelay:
    """``127.0.0.1:port`` → ``target_host:target_port``, with :meth:`pause` and :meth:`resume`."""

    def __init__(self, target_host: str, target_port: int, *, delay: float = 0.0) -> None:
        self.target = (target_host, target_port)
        self.delay = delay
        self.port = 0
        #: Connections accepted, and the client's turns to speak over all of them.
        self.connections = 0
        self.flights = 0
        self._loop = asyncio.new_event_loop()
        self._open = asyncio.Event()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.Task[None]] = set()

    def __enter__(self) -> PausableRelay:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def pause(self) -> None:
        self._loop.call_soon_threadsafe(self._open.clear)

    def resume(self) -> None:
        self._loop.call_soon_threadsafe(self._open.set)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        self.pause()
        try:
            yield
        finally:
            self.resume()

    def reset_counts(self) -> None:
        """Start counting connections and flights from zero."""

        def reset() -> None:
            self.connections = self.flights = 0

        async def call() -> None:
            reset()

        asyncio.run_coroutine_threadsafe(call(), self._loop).result(timeout=10)

    async def _start(self) -> None:
        self._open.set()
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self._open.set()  # let every held byte go before the links are cut
        await asyncio.sleep(self.delay)
        for link in self._links:
            link.cancel()
        await asyncio.gather(*self._links, return_exceptions=True)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.connections += 1
        link = asyncio.current_task()
        assert link is not None
        self._links.add(link)
        link.add_done_callback(self._links.discard)
        # Whose turn it was last on this connection: a client chunk after an answer (or
        # first) is a new flight.
        last = ["server"]

        def seen(side: str) -> None:
            if side == "client" and last[0] == "server":
                self.flights += 1
            last[0] = side

        await asyncio.gather(
            self._pump(reader, up_writer, lambda: seen("client")),
            self._pump(up_reader, writer, lambda: seen("server")),
            return_exceptions=True,
        )

    async def _pump(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        seen: Callable[[], None],
    ) -> None:
        held: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        sender = asyncio.get_running_loop().create_task(self._deliver(held, sink))
        try:
            while chunk := await source.read(65536):
                seen()
                held.put_nowait((time.monotonic() + self.delay, chunk))
            held.put_nowait((time.monotonic() + self.delay, b""))
            await sender
        finally:
            sender.cancel()
            with contextlib.suppress(OSError):
                sink.close()

    async def _deliver(
        self, held: asyncio.Queue[tuple[float, bytes]], sink: asyncio.StreamWriter
    ) -> None:
        """Write each chunk once its delay has passed and the relay is not paused; an
        empty chunk is the source's close."""
        while True:
            due, chunk = await held.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            await self._open.wait()
            if not chunk:
                return
            sink.write(chunk)
            await sink.drain()

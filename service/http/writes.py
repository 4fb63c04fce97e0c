"""One write per response: what a connection's protocol writes in one event-loop turn goes to
the socket in a single write.

uvicorn writes a response's head when the app sends `http.response.start` and its body when
the app sends `http.response.body`, and uvloop sends each write to the socket at once: two
send syscalls and, on a loopback or LAN connection, two TCP segments for the client to wake up
to, for a one-applicant answer of ~250 bytes. `CoalescingTransport` holds what the protocol
writes until the end of the loop turn and then writes it with one `writelines` (uvloop: one
writev; a bulk body is not copied into a joined buffer). Holding to the end of the turn, not
only to the end of the response, matters as much: the answers of a merged batch then leave
together after the turn's work, and the client wakes once for many of them (both ways are
measured in bench/REPORT_NOTES.md).

Invariants: bytes go out in the order written; nothing written is held past the current loop
turn, nor past `close()` or `write_eof()` (which write what is held first); `abort()` drops it,
as it drops what the transport itself holds.
"""

import asyncio
from typing import Any


class CoalescingTransport:
    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if self._pending is None:
            self._pending = [bytes(data)]
            self._loop.call_soon(self.flush)
        else:
            self._pending.append(bytes(data))

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def flush(self) -> None:
        """Write what is held now."""
        pending, self._pending = self._pending, None
        if not pending or self._transport.is_closing():
            return
        if len(pending) == 1:
            self._transport.write(pending[0])
        else:
            self._transport.writelines(pending)  # uvloop: one writev, a bulk body not copied

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._pending = None
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        held = sum(len(data) for data in self._pending) if self._pending else 0
        return held + self._transport.get_write_buffer_size()

    def __getattr__(self, name: str) -> Any:
        # Everything else (is_closing, get_extra_info, pause_reading, set_protocol, ...) is
        # the transport's own.
        return getattr(self._transport, name)


def coalescing(protocol_class: type[asyncio.Protocol]) -> type[asyncio.Protocol]:
    """`protocol_class` (uvicorn's HTTP protocol) with its transport's writes coalesced."""
    if getattr(protocol_class, "coalesces_writes", False):
        return protocol_class

    class Coalescing(protocol_class):  # type: ignore[valid-type, misc]
        coalesces_writes = True

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            wrapped = CoalescingTransport(transport, self.loop)  # type: ignore[arg-type]
            super().connection_made(wrapped)

    Coalescing.__name__ = Coalescing.__qualname__ = f"Coalescing{protocol_class.__name__}"
    return Coalescing

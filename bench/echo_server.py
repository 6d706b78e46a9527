"""A trivial keep-alive HTTP server that answers every request with a canned token pair.

Used only to show that the load generator is not the bottleneck: the generator runs
the same script against this server (pinned to the server core) and must reach at
least 3x the rate of anything it measures. The answer carries a refresh token both in
the JSON body and in a cookie, so every receive mode of ``wrk/chain.lua`` parses it.

    python bench/echo_server.py PORT
"""

from __future__ import annotations

import asyncio
import sys

_TOKEN = "kfrt_" + "A" * 86
_BODY = (
    '{"access_token":"' + "e" * 300 + '","token_type":"Bearer","expires_in":900,'
    '"refresh_token":"' + _TOKEN + '","refresh":"' + _TOKEN + '"}'
).encode()
_RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
    b"set-cookie: jwt=" + _TOKEN.encode() + b"; Path=/; HttpOnly\r\n"
    b"content-length: " + str(len(_BODY)).encode() + b"\r\n\r\n" + _BODY
)


class Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.WriteTransport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data
        out = []
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buffer[:end].lower()
            length = 0
            at = head.find(b"content-length:")
            if at >= 0:
                stop = head.find(b"\r\n", at)
                length = int(head[at + 15 : stop if stop >= 0 else len(head)])
            total = end + 4 + length
            if len(buffer) < total:
                break
            buffer = buffer[total:]
            out.append(_RESPONSE)
        self.buffer = buffer
        if out:
            self.transport.write(b"".join(out))


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:  # plain asyncio is slower but still far above the peers
        asyncio.run(main(int(sys.argv[1])))
    else:
        uvloop.run(main(int(sys.argv[1])))

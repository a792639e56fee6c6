"""The lean HTTP/1.1 client of the chat request: connections kept alive between answers read to
their end, closed when an answer is abandoned, httpx's errors, and httpx kept behind a proxy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from server.backends.upstream_http import UpstreamHTTP, behind_proxy

EVENTS = [b'data: {"n": 1}\n\n', b"data: [DONE]\n\n"]


class RawServer:
    """Answers every POST with a chunked event stream (or stalls), counting connections and
    noticing the ones the client closed."""

    def __init__(self) -> None:
        self.connections = 0
        self.closed_by_client = 0
        self.stall = False
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                await reader.readexactly(length)
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                    b"transfer-encoding: chunked\r\n\r\n"
                )
                if self.stall:
                    await asyncio.sleep(10)
                for event in EVENTS:
                    writer.write(b"%x\r\n%s\r\n" % (len(event), event))
                    await writer.drain()
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            self.closed_by_client += 1
        finally:
            writer.close()

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()


@pytest.fixture
async def server() -> AsyncIterator[RawServer]:
    raw = RawServer()
    await raw.start()
    yield raw
    await raw.stop()


async def _lines(client: UpstreamHTTP, port: int) -> list[str]:
    response = await client.post(f"http://127.0.0.1:{port}/v1/chat/completions", b"{}", {})
    assert response.status_code == 200
    lines = [line async for line in response.aiter_lines()]
    await response.aclose()
    return lines


async def test_answers_read_to_their_end_reuse_one_connection(server: RawServer) -> None:
    client = UpstreamHTTP({}, connect_timeout=2, read_timeout=2)
    for _ in range(5):
        assert await _lines(client, server.port) == ['data: {"n": 1}', "", "data: [DONE]", ""]
    assert server.connections == 1
    await client.aclose()


async def test_an_abandoned_answer_closes_its_connection(server: RawServer) -> None:
    client = UpstreamHTTP({}, connect_timeout=2, read_timeout=2)
    response = await client.post(f"http://127.0.0.1:{server.port}/v1/x", b"{}", {})
    await response.aclose()  # before reading the body: the client left
    for _ in range(20):
        if server.closed_by_client:
            break
        await asyncio.sleep(0.05)
    assert server.closed_by_client == 1
    await _lines(client, server.port)
    assert server.connections == 2
    await client.aclose()


async def test_failures_are_httpx_errors(server: RawServer) -> None:
    client = UpstreamHTTP({}, connect_timeout=2, read_timeout=0.3)
    server.stall = True
    response = await client.post(f"http://127.0.0.1:{server.port}/v1/x", b"{}", {})
    with pytest.raises(httpx.ReadTimeout):
        await response.aread()
    await server.stop()
    with pytest.raises(httpx.ConnectError):
        await client.post(f"http://127.0.0.1:{server.port}/v1/x", b"{}", {})
    await client.aclose()


def test_an_upstream_behind_a_proxy_is_left_to_httpx(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    assert not behind_proxy("http://10.1.2.3:8000/v1")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.internal:3128")
    assert behind_proxy("http://10.1.2.3:8000/v1")
    monkeypatch.setenv("NO_PROXY", "10.1.2.3")
    assert not behind_proxy("http://10.1.2.3:8000/v1")

"""The chat request to an upstream over plain HTTP/1.1 keep-alive connections, without httpx.

Profiled under load, httpx (with httpcore, h11 and anyio under it) took two fifths of the
gateway's CPU per chat turn, more than everything else the turn does together: httpcore's pool
re-checks every idle connection, with a system call each, twice per request. This client does
the one request the hot path makes, a POST whose answer streams back, and nothing else: no
redirects, cookies, proxies or HTTP/2 (the backend keeps httpx for upstreams behind a proxy and
for its other, rare, requests).

It fails with httpx's own exception classes (ConnectError, ConnectTimeout, ReadTimeout,
WriteTimeout, RemoteProtocolError), so that the backend maps failures one way whichever client
made the request. Closing a response before its body has ended closes the connection: the
upstream sees the client leave and stops generating.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import ssl
import urllib.request
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httpx

_MAX_LINE = 64 * 1024
_MAX_HEADERS = 100


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @property
    def usable(self) -> bool:
        """Still open at both ends, as far as this side has seen."""
        return not (self.reader.at_eof() or self.writer.is_closing())

    def close(self) -> None:
        self.writer.close()


class StreamedResponse:
    """An answer whose body is read as it arrives: `aiter_lines()` once, or `aread()`."""

    def __init__(
        self,
        client: UpstreamHTTP,
        key: tuple[str, str, int],
        connection: _Connection,
        status_code: int,
        headers: dict[str, str],
    ) -> None:
        self.status_code = status_code
        self.headers = headers
        self._client = client
        self._key = key
        self._connection: _Connection | None = connection
        self._chunked = headers.get("transfer-encoding", "").lower() == "chunked"
        length = headers.get("content-length")
        self._remaining = int(length) if length is not None and not self._chunked else None
        self._reusable = headers.get("connection", "").lower() != "close" and (
            self._chunked or self._remaining is not None
        )
        self._ended = False
        self._content = b""

    async def _read(self) -> bytes:
        """The next piece of the body; b"" once it has ended."""
        connection = self._connection
        if self._ended or connection is None:
            return b""
        reader, timeout = connection.reader, self._client.read_timeout
        try:
            async with asyncio.timeout(timeout):
                if self._chunked:
                    size = int((await reader.readline()).split(b";")[0], 16)
                    if size == 0:
                        while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        return self._end()
                    data = await reader.readexactly(size)
                    await reader.readexactly(2)
                    return data
                if self._remaining is None:  # delimited by the connection's end
                    data = await reader.read(65536)
                    return data or self._end()
                if self._remaining == 0:
                    return self._end()
                data = await reader.read(min(self._remaining, 65536))
                if not data:
                    raise asyncio.IncompleteReadError(b"", self._remaining)
                self._remaining -= len(data)
                return data
        except TimeoutError as exc:
            self._abandon()
            raise httpx.ReadTimeout("the upstream sent nothing in time") from exc
        except (asyncio.IncompleteReadError, ValueError, OSError) as exc:
            self._abandon()
            raise httpx.RemoteProtocolError(f"the upstream's answer broke off: {exc!r}") from exc

    def _end(self) -> bytes:
        self._ended = True
        connection, self._connection = self._connection, None
        if connection is not None:
            if self._reusable:
                self._client.release(self._key, connection)
            else:
                connection.close()
        return b""

    def _abandon(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    async def aiter_lines(self) -> AsyncIterator[str]:
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        pending = ""
        while data := await self._read():
            pending += decoder.decode(data)
            *lines, pending = pending.split("\n")
            for line in lines:
                yield line.removesuffix("\r")
        pending += decoder.decode(b"", final=True)
        if pending:
            yield pending.removesuffix("\r")

    async def aread(self) -> bytes:
        parts = [self._content]
        while data := await self._read():
            parts.append(data)
        self._content = b"".join(parts)
        return self._content

    @property
    def text(self) -> str:
        return self._content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self._content)

    async def aclose(self) -> None:
        """Ends the exchange: a body not read to its end closes the connection."""
        if not self._ended:
            self._abandon()


class UpstreamHTTP:
    """Keep-alive connections per upstream origin, opened as needed, at most `max_idle` kept."""

    def __init__(
        self,
        headers: dict[str, str],
        connect_timeout: float,
        read_timeout: float,
        max_idle: int = 32,
    ) -> None:
        self._headers = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._max_idle = max_idle
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._ssl: ssl.SSLContext | None = None

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> StreamedResponse:
        """POST `body` (JSON); returns once the status and headers have arrived."""
        parts = urlsplit(url)
        scheme, host = parts.scheme, parts.hostname or ""
        port = parts.port or (443 if scheme == "https" else 80)
        key = (scheme, host, port)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        head = (
            f"POST {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n{self._headers}{extra}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode("latin-1")
        connection = self._take(key) or await self._connect(key)
        try:
            async with asyncio.timeout(self.connect_timeout):
                connection.writer.write(head + body)
                await connection.writer.drain()
        except TimeoutError as exc:
            connection.close()
            raise httpx.WriteTimeout("the upstream took no request in time") from exc
        except OSError as exc:
            connection.close()
            raise httpx.RemoteProtocolError(f"the upstream connection broke: {exc!r}") from exc
        status, found = await self._head(connection)
        return StreamedResponse(self, key, connection, status, found)

    async def _head(self, connection: _Connection) -> tuple[int, dict[str, str]]:
        reader = connection.reader
        try:
            async with asyncio.timeout(self.read_timeout):
                status_line = await reader.readline()
                if not status_line:
                    raise httpx.RemoteProtocolError("the upstream closed without answering")
                status = int(status_line.split(b" ", 2)[1])
                found: dict[str, str] = {}
                for _ in range(_MAX_HEADERS):
                    line = await reader.readline()
                    if line in (b"\r\n", b"\n"):
                        return status, found
                    name, _, value = line.decode("latin-1").partition(":")
                    found[name.strip().lower()] = value.strip()
                raise httpx.RemoteProtocolError("the upstream sent too many headers")
        except TimeoutError as exc:
            connection.close()
            raise httpx.ReadTimeout("the upstream did not answer in time") from exc
        except httpx.RemoteProtocolError:
            connection.close()
            raise
        except (ValueError, IndexError, OSError) as exc:
            connection.close()
            raise httpx.RemoteProtocolError(f"the upstream's answer is not HTTP: {exc!r}") from exc

    def _take(self, key: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(key)
        while idle:
            connection = idle.pop()
            if connection.usable:
                return connection
            connection.close()
        return None

    async def _connect(self, key: tuple[str, str, int]) -> _Connection:
        scheme, host, port = key
        context = None
        if scheme == "https":
            context = self._ssl = self._ssl or ssl.create_default_context()
        try:
            async with asyncio.timeout(self.connect_timeout):
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=context, limit=_MAX_LINE
                )
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"no connection to {host}:{port} in time") from exc
        except OSError as exc:
            raise httpx.ConnectError(f"cannot connect to {host}:{port}: {exc!r}") from exc
        return _Connection(reader, writer)

    def release(self, key: tuple[str, str, int], connection: _Connection) -> None:
        idle = self._idle.setdefault(key, [])
        if len(idle) < self._max_idle and connection.usable:
            idle.append(connection)
        else:
            connection.close()

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()


# What the backend reads an answer through: this client's, or httpx's for a proxied upstream.
UpstreamResponse = httpx.Response | StreamedResponse


def behind_proxy(url: str) -> bool:
    """Whether httpx would send requests for `url` through a proxy from the environment
    (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY), which this client does not speak."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass(parts.hostname or "")


def encode_json(body: dict[str, Any]) -> bytes:
    """As httpx encodes `json=`: compact, UTF-8, no NaN."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()

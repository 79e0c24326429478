"""One HTTP exchange with the standard library: a request's bytes out, the status,
body and the headers the client needs back. A transport is any callable of that
shape, so tests script answers and callers can record them."""

import http.client
import select
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

LOOPBACK: Final = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})  # RFC 9110


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str
    retry_after: str | None = None  # the Retry-After header, as sent


class TransportError(Exception):
    """No HTTP answer at all. `retryable`: the connection broke or was refused, so
    sending the same request again may succeed (a timeout is not: the request may
    still be running). `sent`: the request may have reached the server (False only
    when the connection was refused)."""

    def __init__(self, reason: str, *, retryable: bool, sent: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.sent = sent


type Transport = Callable[[str, str, bytes | None, Mapping[str, str], float], Reply]


def _opener_for(url: str) -> urllib.request.OpenerDirector:
    # A local stack is reached directly even when an HTTP proxy is configured.
    host = urllib.parse.urlsplit(url).hostname or ""
    if host in LOOPBACK:
        return urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener()


def urllib_transport(
    method: str, url: str, data: bytes | None, headers: Mapping[str, str], timeout: float
) -> Reply:
    """A new connection per request (through a configured proxy, if any)."""
    if urllib.parse.urlsplit(url).scheme not in {"http", "https"}:
        raise TransportError(f"not an http(s) URL: {url}", retryable=False)
    request = urllib.request.Request(url, data=data, headers=dict(headers), method=method)  # noqa: S310
    try:
        with _opener_for(url).open(request, timeout=timeout) as response:
            return Reply(
                response.status,
                response.read(),
                response.headers.get_content_type(),
                response.headers.get("Retry-After"),
            )
    except urllib.error.HTTPError as error:
        content_type = error.headers.get_content_type() if error.headers else ""
        retry_after = error.headers.get("Retry-After") if error.headers else None
        return Reply(error.code, error.read(), content_type, retry_after)
    except urllib.error.URLError as error:
        raise _transport_error(error.reason, timeout) from error
    except (OSError, http.client.HTTPException) as error:
        raise _transport_error(error, timeout) from error


class KeepAlive:
    """The default transport: one connection per thread and host, kept open between
    requests (urllib opens a new one for each, and on a local stack setting it up costs
    more than the request). Through a configured proxy, urllib's transport is used."""

    def __init__(self) -> None:
        self._local = threading.local()

    def __call__(
        self, method: str, url: str, data: bytes | None, headers: Mapping[str, str], timeout: float
    ) -> Reply:
        parts = urllib.parse.urlsplit(url)
        if parts.hostname not in LOOPBACK and urllib.request.getproxies().get(parts.scheme):
            return urllib_transport(method, url, data, headers, timeout)
        if parts.scheme not in {"http", "https"}:
            raise TransportError(f"not an http(s) URL: {url}", retryable=False)
        kept: dict[str, http.client.HTTPConnection] = self._local.__dict__.setdefault("kept", {})
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        for attempt in range(2):
            connection = kept.pop(parts.netloc, None)
            if connection is not None and _closed_by_server(connection):
                connection.close()
                connection = None
            reused = connection is not None
            connection = connection or _connect(parts, timeout)
            try:
                connection.request(method, target, data, dict(headers))
                response = connection.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException) as error:
                connection.close()
                # The server closed the kept connection as the request went out: again on
                # a new one, unless the method may not be repeated (the server may have
                # done that POST: the caller knows whether sending it again is safe).
                again = method in IDEMPOTENT_METHODS and not isinstance(error, TimeoutError)
                if reused and attempt == 0 and again:
                    continue
                raise _transport_error(error, timeout) from error
            if not response.will_close:
                kept[parts.netloc] = connection
            content_type = response.headers.get_content_type()
            return Reply(response.status, body, content_type, response.headers.get("Retry-After"))
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def _closed_by_server(connection: http.client.HTTPConnection) -> bool:
    """An idle kept connection reads as ready only when the server closed it (or sent
    what nobody asked for): either way it is not to be used again."""
    if connection.sock is None:
        return True
    try:
        ready, _, _ = select.select([connection.sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(ready)


def _connect(parts: urllib.parse.SplitResult, timeout: float) -> http.client.HTTPConnection:
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    return kind(parts.hostname or "", parts.port, timeout=timeout)


def _transport_error(reason: object, timeout: float) -> TransportError:
    match reason:
        case ConnectionRefusedError():
            return TransportError("connection refused", retryable=True, sent=False)
        case TimeoutError():
            return TransportError(f"no answer within {timeout:g} s", retryable=False)
        case socket.gaierror():
            return TransportError("unknown host name", retryable=False)
        case (
            ConnectionResetError()
            | ConnectionAbortedError()
            | BrokenPipeError()
            | http.client.RemoteDisconnected()
            | http.client.IncompleteRead()
        ):
            return TransportError(f"connection dropped ({reason})", retryable=True)
        case _:
            return TransportError(str(reason) or type(reason).__name__, retryable=False)

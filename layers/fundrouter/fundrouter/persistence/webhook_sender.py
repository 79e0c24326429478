"""The one outbound HTTP request of a delivery: the host's addresses are resolved and
checked (no private, loopback or link-local address: SSRF), then the connection goes
to the checked address itself, so a name that resolves differently a moment later
(DNS rebinding) cannot redirect it. The whole exchange is bounded by the timeout, not
only each read (a server dripping its answer byte by byte is cut off); redirects are
not followed (a 3xx is a failed attempt); the answer's body is not kept."""

import contextlib
import http.client
import socket
import ssl
import threading
import time
from typing import Final
from urllib.parse import urlsplit

from fundrouter.domain.clock import utc_now
from fundrouter.domain.webhooks import Attempt, address_allowed

# Of the answer, only so much is read (and dropped) before the connection closes.
_READ_BYTES: Final = 4096


class _PinnedHttp(http.client.HTTPConnection):
    def __init__(self, host: str, port: int | None, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHttps(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int | None, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address
        self._tls = ssl.create_default_context()

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)


class HttpWebhookSender:
    def __init__(self, timeout_seconds: float, allow_loopback: bool) -> None:
        self._timeout = timeout_seconds
        self._allow_loopback = allow_loopback

    def post(self, url: str, headers: dict[str, str], body: bytes) -> Attempt:
        started, clock = utc_now(), time.monotonic()
        status, error = None, None
        try:
            status = self._post(url, headers, body)
        except TimeoutError:
            error = "timeout"
        except (OSError, http.client.HTTPException, ValueError) as failure:
            error = f"{type(failure).__name__}: {failure}"[:200]
        duration = int((time.monotonic() - clock) * 1000)
        return Attempt(at=started, duration_ms=duration, status_code=status, error=error)

    def _post(self, url: str, headers: dict[str, str], body: bytes) -> int:
        parts = urlsplit(url)
        host, https = parts.hostname or "", parts.scheme == "https"
        port = parts.port or (443 if https else 80)
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = sorted({str(info[4][0]) for info in found})
        refused = [a for a in addresses if not address_allowed(a, self._allow_loopback)]
        if refused or not addresses:
            raise ValueError(f"{host} resolves to an address not allowed ({', '.join(refused)})")
        kind = _PinnedHttps if https else _PinnedHttp
        connection = kind(host, port, addresses[0], self._timeout)
        cut = threading.Event()
        watchdog = threading.Timer(self._timeout, _cut_off, [connection, cut])
        watchdog.start()
        try:
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            connection.request("POST", path, body=body, headers=headers)
            answer = connection.getresponse()
            answer.read(_READ_BYTES)
            return answer.status
        except (OSError, http.client.HTTPException):
            if cut.is_set():  # cut off mid-answer: whatever it broke into
                raise TimeoutError from None
            raise
        finally:
            watchdog.cancel()
            connection.close()


def _cut_off(connection: http.client.HTTPConnection, cut: threading.Event) -> None:
    """Wakes a read blocked on the socket: the exchange took too long in all."""
    cut.set()
    if connection.sock is not None:
        with contextlib.suppress(OSError):  # closed already
            connection.sock.shutdown(socket.SHUT_RDWR)

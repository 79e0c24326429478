"""The delivery's one outbound request, against a real server on 127.0.0.1: the status
it answered (a redirect is not followed), a timeout or a refused connection as an
error, and a host whose address is not allowed never connected to (SSRF)."""

import contextlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fundrouter.persistence.webhook_sender import HttpWebhookSender


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.server.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))  # type: ignore[attr-defined]
        if self.path == "/slow":
            time.sleep(0.5)
        if self.path == "/drip":  # each byte within the read timeout, the whole far beyond
            with contextlib.suppress(OSError):  # the sender hangs up first
                for byte in b"HTTP/1.1 204 No Content\r\n\r\n":
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.03)
            return
        self.send_response(302 if self.path == "/moved" else 204)
        self.send_header("Location", "https://elsewhere.example/")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    running = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    running.bodies = []  # type: ignore[attr-defined]
    threading.Thread(target=running.serve_forever, daemon=True).start()
    yield running
    running.shutdown()


def url(server: ThreadingHTTPServer, path: str, host: str = "127.0.0.1") -> str:
    return f"http://{host}:{server.server_address[1]}{path}"


def test_the_answer_s_status_is_the_attempt_s_and_a_redirect_is_not_followed(
    server: ThreadingHTTPServer,
) -> None:
    sender = HttpWebhookSender(timeout_seconds=2, allow_loopback=True)

    done = sender.post(url(server, "/hook"), {"Content-Type": "application/json"}, b"{}")
    moved = sender.post(url(server, "/moved"), {}, b"{}")

    assert (done.status_code, done.error, done.succeeded) == (204, None, True)
    assert (moved.status_code, moved.succeeded) == (302, False)
    assert server.bodies == [b"{}", b"{}"]  # type: ignore[attr-defined]


def test_a_slow_or_dripping_answer_is_a_timeout_and_a_closed_port_an_error(
    server: ThreadingHTTPServer,
) -> None:
    sender = HttpWebhookSender(timeout_seconds=0.1, allow_loopback=True)
    closed = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    closed.server_close()

    slow = sender.post(url(server, "/slow"), {}, b"{}")
    refused = sender.post(url(closed, "/hook"), {}, b"{}")
    drip = HttpWebhookSender(timeout_seconds=0.3, allow_loopback=True)
    dripped = drip.post(url(server, "/drip"), {}, b"{}")

    assert (slow.status_code, slow.error) == (None, "timeout")
    assert (dripped.status_code, dripped.error) == (None, "timeout")
    assert refused.status_code is None
    assert refused.error is not None
    assert refused.error.startswith("ConnectionRefusedError")


def test_an_address_that_is_not_allowed_is_never_connected_to(
    server: ThreadingHTTPServer,
) -> None:
    deployed = HttpWebhookSender(timeout_seconds=1, allow_loopback=False)

    by_address = deployed.post(url(server, "/hook"), {}, b"{}")
    by_name = deployed.post(url(server, "/hook", host="localhost"), {}, b"{}")

    assert by_address.status_code is None
    assert by_name.status_code is None
    assert "not allowed" in str(by_address.error)
    assert "not allowed" in str(by_name.error)
    assert server.bodies == []  # type: ignore[attr-defined]

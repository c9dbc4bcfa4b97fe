"""A real HTTP server for webhook tests: records what it accepts and can inject faults.

It runs ``http.server`` in a thread on a free port. ``fail_next`` answers the next N
requests with 500; ``block_on`` makes the Nth request hang until ``unblock`` is set (the
relay is then mid-delivery) and leaves it unrecorded, as if the receiver had lost it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.services import free_port


@dataclass(frozen=True)
class Delivery:
    headers: dict[str, str]  # lower-cased names
    body: bytes


class WebhookReceiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hooks/modscan"
        self.accepted: list[Delivery] = []
        self.refused: list[Delivery] = []
        self.requests = 0
        self.fail_next = 0
        self.block_on: int | None = None
        self.blocked = threading.Event()
        self.unblock = threading.Event()
        self._lock = threading.Lock()

    def handle(self, delivery: Delivery) -> tuple[int, bool]:
        """The status to answer, and whether to hang first."""
        with self._lock:
            self.requests += 1
            if self.block_on is not None and self.requests == self.block_on:
                return 200, True
            if self.fail_next > 0:
                self.fail_next -= 1
                self.refused.append(delivery)
                return 500, False
            self.accepted.append(delivery)
            return 200, False

    def event_ids(self) -> list[str]:
        with self._lock:
            return [delivery.headers["x-modscan-event-id"] for delivery in self.accepted]


def _handler(receiver: WebhookReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {name.lower(): value for name, value in self.headers.items()}
            status, hang = receiver.handle(Delivery(headers, body))
            if hang:
                receiver.blocked.set()
                receiver.unblock.wait(60)
            try:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
            except OSError:
                pass  # the relay died while we hung

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    server = ThreadingHTTPServer(("127.0.0.1", receiver.port), _handler(receiver))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.unblock.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)

"""Fault injection over real sockets: an HTTP proxy in front of moto that can answer
S3 object GETs with 503 SlowDown, or delete the object just before forwarding the GET.

boto3's Stubber skips the retry loop, so retry behaviour is tested against this proxy:
the worker's boto3 client talks HTTP to it exactly as it would to S3.
"""

from __future__ import annotations

import http.client
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

SLOWDOWN_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message>"
    b"<RequestId>fault-proxy</RequestId></Error>"
)
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
}


@dataclass
class _Rule:
    fail_times: int | None  # None: fail every time
    before_forward: Callable[[], None] | None = None
    failed: int = 0


@dataclass
class FaultProxy:
    """Forwards every request to `upstream`; object GETs matching a rule get faults.

    Paths are path-style S3 paths, unquoted: "/bucket/key with spaces.jpg".
    """

    upstream: str
    url: str = ""
    gets: Counter[str] = field(default_factory=Counter)  # object path → GETs received
    responses: Counter[tuple[str, int]] = field(default_factory=Counter)  # (path, status)
    _rules: dict[str, _Rule] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def slow_down(self, bucket: str, key: str, times: int | None) -> None:
        """Answer the next `times` GETs of the object with 503 SlowDown (None: always)."""
        with self._lock:
            self._rules[f"/{bucket}/{key}"] = _Rule(fail_times=times)

    def before_first_get(self, bucket: str, key: str, action: Callable[[], None]) -> None:
        """Run `action` (e.g. delete the object) when the first GET arrives, then forward."""
        with self._lock:
            self._rules[f"/{bucket}/{key}"] = _Rule(fail_times=0, before_forward=action)

    def got(self, bucket: str, key: str, status: int) -> int:
        with self._lock:
            return self.responses[(f"/{bucket}/{key}", status)]

    # -- called by the handler ------------------------------------------------------------

    def _decide(self, method: str, path: str) -> tuple[bool, Callable[[], None] | None]:
        """(answer 503?, action to run before forwarding)."""
        if method != "GET":
            return False, None
        with self._lock:
            self.gets[path] += 1
            rule = self._rules.get(path)
            if rule is None:
                return False, None
            if rule.fail_times is None or rule.failed < rule.fail_times:
                rule.failed += 1
                return True, None
            action, rule.before_forward = rule.before_forward, None
            return False, action

    def _record(self, path: str, status: int) -> None:
        with self._lock:
            self.responses[(path, status)] += 1


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    upstream = urlsplit(proxy.upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _handle(self) -> None:
            path = unquote(urlsplit(self.path).path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            fail, action = proxy._decide(self.command, path)
            if fail:
                proxy._record(path, 503)
                self.send_response(503, "Slow Down")
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(SLOWDOWN_BODY)))
                self.end_headers()
                self.wfile.write(SLOWDOWN_BODY)
                return
            if action is not None:
                action()
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            conn = http.client.HTTPConnection(upstream.netloc, timeout=60)
            try:
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                status, reason, out_headers = (
                    response.status,
                    response.reason,
                    response.getheaders(),
                )
            finally:
                conn.close()
            proxy._record(path, status)
            self.send_response(status, reason)
            for name, value in out_headers:
                if name.lower() not in _HOP_BY_HOP:
                    self.send_header(name, value)
            if self.command == "HEAD":
                declared = dict((k.lower(), v) for k, v in out_headers).get("content-length")
                self.send_header("Content-Length", declared or "0")
                self.end_headers()
                return
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

    return Handler


@contextmanager
def fault_proxy(upstream: str) -> Iterator[FaultProxy]:
    """A FaultProxy listening on a free local port, in a daemon thread of this process."""
    proxy = FaultProxy(upstream=upstream)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(proxy))
    server.daemon_threads = True
    proxy.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="fault-proxy", daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()

"""A local S3/SQS endpoint: moto's standalone server as a child process on a free port.

`modscan bench` uses it when no MODSCAN_S3_ENDPOINT_URL is set, and the test suite uses it
for every S3 and SQS call, so both start moto the same way.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    """Return once something accepts connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on port {port} after {timeout}s")


@contextmanager
def moto_server(timeout: float = 30.0) -> Iterator[str]:
    """moto's S3/SQS server on a free port, as a separate process; yields its endpoint URL.

    moto accepts any credentials; the caller sets AWS_ACCESS_KEY_ID and friends if the
    environment has none.
    """
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, timeout)
        if process.poll() is not None:
            raise RuntimeError(f"moto's server exited with {process.returncode}")
        yield f"http://{HOST}:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

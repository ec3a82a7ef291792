"""The load test's virtual users send their requests as a browser does.

A GET sent with a chunked empty body (what geventhttpclient made of locust's GETs) had its
last chunk held back by TCP until the first part was acknowledged: 40 ms at nginx on every
page before it reached the app, in every latency the load test reported and in its baseline.
Here a recording server sees exactly the bytes a virtual user sends.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration

PAGE = b'<form method="post" action="/signout"></form>'

# In its own process: importing locust monkey-patches the standard library with gevent.
_ONE_USER_LOOKS_AROUND = """
import json, sys
from locust.env import Environment
sys.path.insert(0, "tests/load")
import locustfile

locustfile.LightUser.host = sys.argv[1]
env = Environment(user_classes=[locustfile.LightUser])
env.create_local_runner()
user = locustfile.LightUser(env)
user.number = 0
user._prepare()
user.dashboard()
user.analytics()
print(json.dumps({"failures": len(env.stats.errors)}))
"""


class Recorder:
    """A keep-alive HTTP server on loopback that keeps each request's header block and any
    bytes that follow it (a body), and answers every request with a signed-in page."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.requests: list[tuple[str, bytes]] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        with connection:
            buffered = b""
            while True:
                connection.settimeout(10)
                while b"\r\n\r\n" not in buffered:
                    data = connection.recv(65536)
                    if not data:
                        return
                    buffered += data
                head, _, rest = buffered.partition(b"\r\n\r\n")
                # Whatever else belongs to this request comes within moments (the held-back
                # chunk came 40 ms later).
                connection.settimeout(0.3)
                try:
                    rest += connection.recv(65536)
                except TimeoutError:
                    pass
                self.requests.append((head.decode("latin-1"), rest))
                buffered = b""
                connection.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                    + b"Content-Length: %d\r\n\r\n" % len(PAGE)
                    + PAGE
                )

    def close(self) -> None:
        self.listener.close()


def test_a_virtual_user_sends_a_get_as_headers_alone_in_one_piece() -> None:
    server = Recorder()
    try:
        result = subprocess.run(
            [sys.executable, "-c", _ONE_USER_LOOKS_AROUND, f"http://127.0.0.1:{server.port}"],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
    finally:
        server.close()
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"failures": 0}
    assert [head.split(" ", 2)[:2] for head, _ in server.requests] == [
        ["GET", "/"],
        ["GET", "/analytics"],
    ]
    for head, after in server.requests:
        fields = [line.split(":", 1)[0].lower() for line in head.split("\r\n")[1:]]
        assert "transfer-encoding" not in fields and "content-length" not in fields, head
        assert after == b"", f"a GET sent a body: {after!r}"

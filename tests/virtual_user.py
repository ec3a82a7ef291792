"""One of the load test's virtual users (``tests/load/locustfile.py``) against a server of
the test's own on loopback, to see what it sends and how it uses its connections.

The user runs in its own process: importing locust monkey-patches the standard library with
gevent, which the test process must not get.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# A page the virtual user takes for a signed-in one, and the answer that carries it.
PAGE = b'<form method="post" action="/signout"></form>'
ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
    + b"Content-Length: %d\r\n\r\n" % len(PAGE)
    + PAGE
)

_USER = """
import json, sys, time
from locust.env import Environment
sys.path.insert(0, "tests/load")
import locustfile
"""
_USER_READY = """
locustfile.LightUser.host = sys.argv[1]
env = Environment(user_classes=[locustfile.LightUser])
env.create_local_runner()
user = locustfile.LightUser(env)
user.number = 0
user._prepare()
"""
_USER_DONE = """
print(json.dumps({"failures": len(env.stats.errors), "requests": env.stats.total.num_requests}))
"""


class LoopbackServer:
    """A server on a free loopback port that serves each connection in a thread of its own
    (``_serve``) and counts the connections it was given."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: Any) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.listener.close()


def request_head(connection: Any, buffered: bytes) -> tuple[bytes, bytes] | None:
    """The next request's header block and what came after it, read on from ``buffered``;
    None once the client closed the connection."""
    while b"\r\n\r\n" not in buffered:
        data = connection.recv(65536)
        if not data:
            return None
        buffered += data
    head, _, rest = buffered.partition(b"\r\n\r\n")
    return head, rest


def run_user(
    server: LoopbackServer,
    url: str,
    actions: str,
    *,
    setup: str = "",
    env: dict[str, str] | None = None,
) -> dict[str, int]:
    """One virtual user of ``url`` doing ``actions`` (code using ``user``), after ``setup``
    (code run once locustfile is imported); the server is closed afterwards. Returns the
    user's failures and requests as locust counted them."""
    script = _USER + setup + _USER_READY + actions + _USER_DONE
    try:
        result = subprocess.run(
            [sys.executable, "-c", script, url],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
    finally:
        server.close()
    assert result.returncode == 0, result.stderr[-3000:]
    counts: dict[str, int] = json.loads(result.stdout.strip().splitlines()[-1])
    return counts

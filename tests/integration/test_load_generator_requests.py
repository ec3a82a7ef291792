"""The load test's virtual users send their requests as a browser does.

A GET sent with a chunked empty body (what geventhttpclient made of locust's GETs) had its
last chunk held back by TCP until the first part was acknowledged: 40 ms at nginx on every
page before it reached the app, in every latency the load test reported and in its baseline.
Here a recording server sees exactly the bytes a virtual user sends.
"""

from __future__ import annotations

import socket

import pytest

from tests.virtual_user import ANSWER
from tests.virtual_user import LoopbackServer
from tests.virtual_user import request_head
from tests.virtual_user import run_user

pytestmark = pytest.mark.integration


class Recorder(LoopbackServer):
    """A keep-alive HTTP server on loopback that keeps each request's header block and any
    bytes that follow it (a body), and answers every request with a signed-in page."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, bytes]] = []
        super().__init__()

    def _serve(self, connection: socket.socket) -> None:
        with connection:
            while True:
                connection.settimeout(10)
                request = request_head(connection, b"")
                if request is None:
                    return
                head, rest = request
                # Whatever else belongs to this request comes within moments (the held-back
                # chunk came 40 ms later).
                connection.settimeout(0.3)
                try:
                    rest += connection.recv(65536)
                except TimeoutError:
                    pass
                self.requests.append((head.decode("latin-1"), rest))
                connection.sendall(ANSWER)


def test_a_virtual_user_sends_a_get_as_headers_alone_in_one_piece() -> None:
    server = Recorder()
    looked = run_user(
        server, f"http://127.0.0.1:{server.port}", "user.dashboard()\nuser.analytics()\n"
    )
    assert looked["failures"] == 0
    assert [head.split(" ", 2)[:2] for head, _ in server.requests] == [
        ["GET", "/"],
        ["GET", "/analytics"],
    ]
    for head, after in server.requests:
        fields = [line.split(":", 1)[0].lower() for line in head.split("\r\n")[1:]]
        assert "transfer-encoding" not in fields and "content-length" not in fields, head
        assert after == b"", f"a GET sent a body: {after!r}"

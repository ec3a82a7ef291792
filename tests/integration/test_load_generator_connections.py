"""The load test's virtual users keep their HTTPS connection between pages, as browsers do.

geventhttpclient 2.4 dropped a kept-alive connection whenever it had anything to read while
idle. Over TLS 1.3 that can be records that carry no data; under load nginx's came that way
on about half the connections, and those people then opened a new connection, with a full
TLS handshake, for every page: a third of all requests at 2,000 users, costing the front
and the generator CPU no real visitor costs them. Here a TLS server on loopback sends such a
record after every answer (a TLS 1.3 post-handshake certificate request, which a client reads
and answers without any data for the application), or closes the connection, and counts the
connections a virtual user opens.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests import local_nginx

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration

PAGE = b'<form method="post" action="/signout"></form>'
PAGES = 3

# In its own process: importing locust monkey-patches the standard library with gevent.
# The user's TLS context is the load test's (the CA from TAS_LOAD_CA_FILE, the host name
# checked) and also accepts post-handshake authentication, so the test server may send a
# record without data to an idle connection.
_ONE_USER_READS_PAGES = f"""
import json, sys, time
from locust.env import Environment
sys.path.insert(0, "tests/load")
import locustfile

site_context = locustfile._trusting_context

def context(**kwargs):
    made = site_context(**kwargs)
    made.post_handshake_auth = True
    return made

locustfile.LightUser.ssl_context_factory = staticmethod(context)
locustfile.LightUser.host = sys.argv[1]
env = Environment(user_classes=[locustfile.LightUser])
env.create_local_runner()
user = locustfile.LightUser(env)
user.number = 0
user._prepare()
for _ in range({PAGES}):
    user.dashboard()
    time.sleep(0.3)  # between pages: what the server sends now waits on the idle connection
print(json.dumps({{"failures": len(env.stats.errors), "requests": env.stats.total.num_requests}}))
"""


class TlsServer:
    """HTTPS on loopback answering every request with a signed-in page over keep-alive
    connections. After each answer it either sends a record without data
    (``after="record"``) or closes the connection (``after="close"``)."""

    def __init__(self, folder: Path, after: str) -> None:
        self.after = after
        self.ca = local_nginx.self_signed_certificate(
            folder, "localhost", ec.generate_private_key(ec.SECP256R1())
        )
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_3
        self.context.load_cert_chain(self.ca, folder / "privkey.pem")
        # A client certificate may be asked for after the handshake; none is needed.
        self.context.verify_mode = ssl.CERT_OPTIONAL
        self.context.load_verify_locations(self.ca)
        self.context.post_handshake_auth = True
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.answered = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        raw.settimeout(10)
        try:
            with self.context.wrap_socket(raw, server_side=True) as connection:
                buffered = b""
                while True:
                    while b"\r\n\r\n" not in buffered:
                        data = connection.recv(65536)
                        if not data:
                            return
                        buffered += data
                    buffered = buffered.partition(b"\r\n\r\n")[2]
                    connection.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                        + b"Content-Length: %d\r\n\r\n" % len(PAGE)
                        + PAGE
                    )
                    self.answered += 1
                    if self.after == "close":
                        connection.unwrap()  # close_notify, then the connection goes
                        return
                    connection.verify_client_post_handshake()
                    connection.do_handshake()  # sends the request: a record with no data
        except (OSError, ValueError):
            return

    def close(self) -> None:
        self.listener.close()


def _user_reads_pages(server: TlsServer) -> dict[str, int]:
    try:
        result = subprocess.run(
            [sys.executable, "-c", _ONE_USER_READS_PAGES, f"https://localhost:{server.port}"],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "TAS_LOAD_CA_FILE": str(server.ca)},
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
    finally:
        server.close()
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_virtual_user_keeps_its_connection_when_tls_records_without_data_arrive(
    tmp_path: Path,
) -> None:
    server = TlsServer(tmp_path, after="record")
    assert _user_reads_pages(server) == {"failures": 0, "requests": PAGES}
    assert server.answered == PAGES
    assert server.connections == 1, "the user opened a new connection (a TLS handshake) per page"


def test_a_virtual_user_opens_a_new_connection_when_the_server_closed_its_own(
    tmp_path: Path,
) -> None:
    server = TlsServer(tmp_path, after="close")
    assert _user_reads_pages(server) == {"failures": 0, "requests": PAGES}
    assert server.answered == PAGES
    assert server.connections == PAGES

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

import socket
import ssl
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests import local_nginx
from tests.virtual_user import ANSWER
from tests.virtual_user import LoopbackServer
from tests.virtual_user import request_head
from tests.virtual_user import run_user

pytestmark = pytest.mark.integration

PAGES = 3

# The user's TLS context is the load test's (the CA from TAS_LOAD_CA_FILE, the host name
# checked) and also accepts post-handshake authentication, so the test server may send a
# record without data to an idle connection.
_ACCEPTS_POST_HANDSHAKE_AUTH = """
site_context = locustfile._trusting_context

def context(**kwargs):
    made = site_context(**kwargs)
    made.post_handshake_auth = True
    return made

locustfile.LightUser.ssl_context_factory = staticmethod(context)
"""
# Between pages, what the server sends meanwhile waits on the idle connection.
_READS_PAGES = f"""
for _ in range({PAGES}):
    user.dashboard()
    time.sleep(0.3)
"""


class TlsServer(LoopbackServer):
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
        self.answered = 0
        super().__init__()

    def _serve(self, raw: socket.socket) -> None:
        raw.settimeout(10)
        try:
            with self.context.wrap_socket(raw, server_side=True) as connection:
                buffered = b""
                while (request := request_head(connection, buffered)) is not None:
                    buffered = request[1]
                    connection.sendall(ANSWER)
                    self.answered += 1
                    if self.after == "close":
                        connection.unwrap()  # close_notify, then the connection goes
                        return
                    connection.verify_client_post_handshake()
                    connection.do_handshake()  # sends the request: a record with no data
        except (OSError, ValueError):
            return


def _user_reads_pages(tmp_path: Path, after: str) -> TlsServer:
    """A user reads PAGES pages without a failure from a server doing ``after``."""
    server = TlsServer(tmp_path, after)
    counts = run_user(
        server,
        f"https://localhost:{server.port}",
        _READS_PAGES,
        setup=_ACCEPTS_POST_HANDSHAKE_AUTH,
        env={"TAS_LOAD_CA_FILE": str(server.ca)},
    )
    assert counts == {"failures": 0, "requests": PAGES}
    assert server.answered == PAGES
    return server


def test_a_virtual_user_keeps_its_connection_when_tls_records_without_data_arrive(
    tmp_path: Path,
) -> None:
    server = _user_reads_pages(tmp_path, after="record")
    assert server.connections == 1, "the user opened a new connection (a TLS handshake) per page"


def test_a_virtual_user_opens_a_new_connection_when_the_server_closed_its_own(
    tmp_path: Path,
) -> None:
    server = _user_reads_pages(tmp_path, after="close")
    assert server.connections == PAGES

"""The nginx site as provisioning renders it: nginx accepts it, and it serves what it says.

nginx runs for real from a temporary prefix, as this user: the rendered site with only
what needs root on a server swapped (a throwaway certificate for Let's Encrypt's, free
ports of 127.0.0.1 for 80/443, a socket of the test's for /run/tas.sock), in front of the
app, of nothing (the app restarting) and of an app that never answers.
"""

from __future__ import annotations

import contextlib
import getpass
import http.client
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from werkzeug.serving import WSGIRequestHandler
from werkzeug.serving import make_server

import service
from releases import front_log
from releases.remote import render
from service import create_app
from service.security import CONTENT_SECURITY_POLICY
from tests import local_nginx
from tests.conftest import app_config

pytestmark = pytest.mark.integration

DOMAIN = "tas.test"
STATIC = Path(service.__file__).parent / "static"
# Set by the app on every answer (service/security.py); nginx must not add them again.
APP_HEADERS = (
    "Content-Security-Policy",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "Referrer-Policy",
    "Permissions-Policy",
    "Cross-Origin-Opener-Policy",
)
HSTS = "Strict-Transport-Security"


def _nginx_binary() -> str:
    path = os.environ.get("NGINX", shutil.which("nginx") or "/usr/sbin/nginx")
    if os.path.isfile(path) and os.access(path, os.X_OK):
        return path
    reason = f"needs nginx at {path} (install it, or set NGINX to its path)"
    if os.environ.get("CI_REQUIRE_ALL") == "1":
        pytest.fail(f"{reason} (CI_REQUIRE_ALL=1: not skipping)", pytrace=False)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Site:
    root: Path
    app_socket: Path
    https_port: int = 0
    http_port: int = 0

    @property
    def access_log(self) -> Path:
        """The site's timed log (releases.front_log), in the test's folder."""
        return self.root / "logs" / local_nginx.TIMED_LOG

    def render(self, *, local_ports: bool, read_timeout: str = "60s") -> Path:
        """The site as provisioning writes it, with what needs root swapped out."""
        text = local_nginx.site(
            self.root,
            DOMAIN,
            upstream=f"unix:{self.app_socket}",
            listen=("127.0.0.1", self.http_port, self.https_port) if local_ports else None,
            read_timeout=read_timeout,
        )
        return local_nginx.main_conf(
            self.root,
            text,
            # Workers as this user (root's default is nobody, who can't reach the test's files).
            top=[
                f"user {getpass.getuser()};",
                "worker_processes 1;",
                "error_log stderr;",
                "events { worker_connections 64; }",
            ],
            http=[],
        )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    _nginx_binary()
    root = local_nginx.make_root(tmp_path_factory.mktemp("nginx"), STATIC)
    # An RSA certificate: RSA key exchange is possible with it, so the cipher list is what
    # refuses it (certbot makes ECDSA keys by default, RSA ones when asked).
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    local_nginx.self_signed_certificate(root / "cert", DOMAIN, key)
    return Site(root=root, app_socket=root / "app.sock")


def _nginx(site: Site, conf: Path, *args: str) -> list[str]:
    """nginx on the test's prefix, logging to stderr (not to /var/log/nginx)."""
    return local_nginx.command(_nginx_binary(), site.root, conf, "-e", "stderr", *args)


def test_nginx_accepts_the_rendered_site(site: Site) -> None:
    conf = site.render(local_ports=False)
    check = subprocess.run(_nginx(site, conf, "-t"), capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert "test is successful" in check.stderr


def test_the_error_pages_nginx_serves_ship_with_the_app() -> None:
    text = render(
        "nginx-site.conf",
        domain=DOMAIN,
        acme_webroot="/a",
        app_root="/srv/tas",
        max_upload_mb=1,
        load_keys_dir="/k",
    )
    assert "error_page 502 /static/errors/502.html;" in text
    assert "error_page 504 /static/errors/504.html;" in text
    for status in (502, 504):
        page = (STATIC / "errors" / f"{status}.html").read_text()
        assert f"Error {status}." in page and "<script" not in page and "style=" not in page
    # The 80 server and the 443 server both hide nginx's version.
    assert text.count("server_tokens off;") == text.count("server {") == 2


@pytest.fixture(scope="module")
def nginx(site: Site) -> Iterator[Site]:
    site.https_port, site.http_port = _free_port(), _free_port()
    conf = site.render(local_ports=True, read_timeout="1s")
    log = site.root / "logs" / "nginx.stderr"
    with open(log, "w") as stderr:
        process = subprocess.Popen(_nginx(site, conf, "-g", "daemon off;"), stderr=stderr)
    try:
        for _ in range(200):
            assert process.poll() is None, log.read_text()
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", site.https_port), timeout=1).close()
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"nginx does not answer on {site.https_port}:\n{log.read_text()}")
        yield site
    finally:
        process.terminate()
        process.wait(timeout=30)


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: str

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]

    def one(self, name: str) -> str:
        values = self.all(name)
        assert len(values) == 1, f"{name}: {values}"
        return values[0]


def _client_context(**options: Any) -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the throwaway certificate
    for name, value in options.items():
        if name == "ciphers":
            context.set_ciphers(value)
        else:
            setattr(context, name, value)
    return context


def _https(
    site: Site, path: str, method: str = "GET", extra: dict[str, str] | None = None, **tls: Any
) -> Answer:
    connection = http.client.HTTPSConnection(
        "127.0.0.1", site.https_port, context=_client_context(**tls), timeout=30
    )
    try:
        body = "csrf_token=x" if method == "POST" else None
        headers = {"Host": DOMAIN, "Content-Type": "application/x-www-form-urlencoded"}
        headers.update(extra or {})
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return Answer(response.status, response.getheaders(), response.read().decode())
    finally:
        connection.close()


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


@contextlib.contextmanager
def _serving(socket_path: Path, wsgi: Any) -> Iterator[None]:
    """``wsgi`` answering on the unix socket nginx forwards to, until the block ends."""
    server = make_server(f"unix://{socket_path}", 0, wsgi, threaded=True, request_handler=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        socket_path.unlink(missing_ok=True)


@contextlib.contextmanager
def _app_on(socket_path: Path, database_url: str) -> Iterator[None]:
    app = create_app(app_config(database_url, PROXY_COUNT=1))
    try:
        with _serving(socket_path, app):
            yield
    finally:
        app.extensions["db_engine"].dispose()


@contextlib.contextmanager
def _silent_app_on(socket_path: Path) -> Iterator[None]:
    """An app that takes connections and never answers (a hung worker)."""
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(socket_path))
    listener.listen(16)
    try:
        yield
    finally:
        listener.close()
        socket_path.unlink(missing_ok=True)


def test_each_header_comes_from_one_place_through_nginx(nginx: Site, database_url: str) -> None:
    with _app_on(nginx.app_socket, database_url):
        page = _https(nginx, "/signin")
    assert page.status == 200 and "Sign in" in page.body
    for name in APP_HEADERS:
        page.one(name)  # once: the app's, nginx adds none of its own
    assert page.one("Referrer-Policy") == "same-origin"
    assert page.one("Content-Security-Policy") == CONTENT_SECURITY_POLICY
    assert page.one(HSTS).startswith("max-age=63072000")
    assert page.one("Server") == "nginx"  # no version

    static = _https(nginx, "/static/css/app.css?v=1")  # from disk, without the app
    assert static.status == 200
    assert static.one("X-Content-Type-Options") == "nosniff"
    assert static.one(HSTS).startswith("max-age=63072000")
    assert static.one("Cache-Control") == "public, max-age=31536000, immutable"


def test_nginx_times_each_request_and_the_apps_part_for_capacity_runs(
    nginx: Site, database_url: str
) -> None:
    """The access log a capacity run reads: each request's time at nginx and the app's
    part of it. Static files are not logged (the site's choice)."""

    def logged() -> list[front_log.Entry]:
        return front_log.parse(nginx.access_log.read_text().splitlines())

    before = len(logged())
    started = time.time()
    with _app_on(nginx.app_socket, database_url):
        assert _https(nginx, "/signin").status == 200
    assert _https(nginx, "/static/css/app.css").status == 200
    assert _https(nginx, "/signin").status == 502  # the app is gone
    for _ in range(100):  # nginx logs a request after answering it
        if len(logged()) >= before + 2:
            break
        time.sleep(0.05)
    entries = logged()[before:]
    assert [e.status for e in entries] == [200, 502]
    page, gone = entries
    # Both are whole milliseconds, read from different clocks: the app's may show 1 more.
    assert page.app_ms is not None and 0 <= page.app_ms <= page.front_ms + 1
    assert gone.app_ms == 0  # nginx tried the app's socket: refused at once
    assert all(started - 1 <= e.ended <= time.time() + 1 for e in entries)


def test_a_restarting_app_gets_the_friendly_502_page(nginx: Site) -> None:
    assert not nginx.app_socket.exists()  # nothing behind nginx
    for method, path in (("GET", "/"), ("POST", "/signin"), ("GET", "/analytics")):
        page = _https(nginx, path, method)
        assert page.status == 502, (method, path)
        assert "Back in a moment" in page.body and "Error 502." in page.body
        assert "Bad Gateway" not in page.body  # nginx's own page
        _assert_static_page_headers(page)
    # What the page links loads too (nginx serves it from disk).
    assert _https(nginx, "/static/css/app.css").status == 200
    assert _https(nginx, "/static/favicon.svg").status == 200


def test_an_app_that_does_not_answer_in_time_gets_the_friendly_504_page(nginx: Site) -> None:
    with _silent_app_on(nginx.app_socket):
        page = _https(nginx, "/")  # the test's site waits 1 s instead of 60
    assert page.status == 504
    assert "That took too long" in page.body and "Error 504." in page.body
    _assert_static_page_headers(page)


def _assert_static_page_headers(page: Answer) -> None:
    directives = dict(
        part.strip().split(" ", 1) for part in page.one("Content-Security-Policy").split(";")
    )
    assert directives["default-src"] == "'none'" and directives["frame-ancestors"] == "'none'"
    assert page.one("X-Frame-Options") == "DENY"
    assert page.one("X-Content-Type-Options") == "nosniff"
    assert page.one("Referrer-Policy") == "same-origin"
    assert page.one("Cache-Control") == "no-store"
    assert page.one(HSTS).startswith("max-age=63072000")
    assert page.one("Server") == "nginx"


@pytest.mark.parametrize(
    ("cipher", "accepted"),
    [
        ("ECDHE-RSA-AES128-GCM-SHA256", True),
        ("ECDHE-RSA-AES256-GCM-SHA384", True),
        ("ECDHE-RSA-CHACHA20-POLY1305", True),
        ("AES128-GCM-SHA256", False),  # RSA key exchange: no forward secrecy
        ("AES256-SHA256", False),  # RSA key exchange and CBC
        ("ECDHE-RSA-AES128-SHA256", False),  # CBC
        ("ECDHE-RSA-AES256-SHA", False),  # CBC
    ],
)
def test_tls_1_2_offers_only_forward_secret_aead_ciphers(
    nginx: Site, cipher: str, accepted: bool
) -> None:
    tls12 = {"maximum_version": ssl.TLSVersion.TLSv1_2, "ciphers": f"{cipher}:@SECLEVEL=0"}
    try:
        answer = _https(nginx, "/static/favicon.svg", **tls12)
    except ssl.SSLError:
        assert not accepted, f"{cipher} refused"
    else:
        assert accepted, f"{cipher} accepted"
        assert answer.status == 200


def test_tls_1_3_still_works(nginx: Site) -> None:
    answer = _https(nginx, "/static/favicon.svg", minimum_version=ssl.TLSVersion.TLSv1_3)
    assert answer.status == 200


@contextlib.contextmanager
def _echo_on(socket_path: Path) -> Iterator[None]:
    """An app that answers every request with the X-Forwarded-For nginx sent it, and the
    load test's run nginx named (``X-TAS-Load-Run``) after a bar when there is one."""

    def echo(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        run = environ.get("HTTP_X_TAS_LOAD_RUN")
        forwarded = environ.get("HTTP_X_FORWARDED_FOR", "")
        return [(forwarded + (f" | run {run}" if run is not None else "")).encode()]

    with _serving(socket_path, echo):
        yield


def _reload(site: Site) -> None:
    conf = site.root / "nginx.conf"
    subprocess.run(_nginx(site, conf, "-s", "reload"), check=True, capture_output=True)
    time.sleep(0.5)  # the old workers hand over to the new ones


def test_only_a_running_load_test_key_skips_the_sign_in_limit_and_keeps_its_addresses(
    nginx: Site,
) -> None:
    """Issue 15: `invoke loadtest --host` lets its virtual users through the sign-in limit
    with a per-run key nginx reads from a file that exists only while the run does.
    Runs last in this module: it uses up 127.0.0.1's sign-in allowance."""
    key = "Zk3-" + os.urandom(12).hex()
    key_file = nginx.root / "load-keys" / "run1.conf"
    key_file.write_text(f'"{key}" run1;\n')
    _reload(nginx)
    spread = {"X-TAS-Load-Key": key, "X-Forwarded-For": "10.9.8.7"}
    try:
        with _echo_on(nginx.app_socket):
            # The key's holder: never limited (10 a minute, burst 5, for everyone else),
            # and the app sees the per-user address the load generator sent, and the run
            # (its sign-ups are that run's accounts).
            answers = [_https(nginx, "/signin", "POST", extra=spread) for _ in range(12)]
            assert [a.status for a in answers] == [200] * 12
            assert {a.body for a in answers} == {"10.9.8.7 | run run1"}

            # A stranger's made-up headers: the address is nginx's view, no run is passed
            # on (not even the one the stranger names), limits apply.
            forged = {
                "X-TAS-Load-Key": "guess",
                "X-Forwarded-For": "10.9.8.7",
                "X-TAS-Load-Run": "run1",
            }
            page = _https(nginx, "/", extra=forged)
            assert page.body == "10.9.8.7, 127.0.0.1"
            statuses = [_https(nginx, "/signin", "POST", extra=forged).status for _ in range(8)]
            assert 429 in statuses and statuses[0] == 200

            # The run is over: its key file goes, and the key is worth nothing any more.
            key_file.unlink()
            _reload(nginx)
            after = _https(nginx, "/", extra=spread)
            assert after.body == "10.9.8.7, 127.0.0.1"
            assert _https(nginx, "/signin", "POST", extra=spread).status == 429
    finally:
        key_file.unlink(missing_ok=True)

"""The production nginx site, run on this machine: what needs a real server swapped out.

Provisioning renders ``releases/templates/nginx-site.conf`` for a server (Let's Encrypt's
certificate, the app's socket ``/run/tas.sock``, ports 80 and 443). The nginx tests
(``tests/integration/test_nginx_site.py``) and the front benchmark
(``tests/load/bench_front.py``) run that same site from a folder of their own: a throwaway
certificate, their own upstream and listen addresses, everything else as on the server.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from releases.front_log import FRONT_LOG
from releases.remote import render

# The folders a site root holds (what the template's paths point into).
FOLDERS = ("cert", "logs", "temp", "acme", "srv/current", "load-keys")
TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
# The site's timed access log (releases.front_log), in the root's logs folder.
TIMED_LOG = "timed.log"


def make_root(root: Path, static: Path) -> Path:
    """The folders, and the release's static files linked as the deploy links them."""
    for folder in FOLDERS:
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "srv/current/static").symlink_to(static)
    return root


def swap(text: str, old: str, new: str) -> str:
    if old not in text:
        raise RuntimeError(f"the site template no longer has {old!r}: update tests/local_nginx.py")
    return text.replace(old, new)


def self_signed_certificate(folder: Path, domain: str, key: Any) -> Path:
    """``fullchain.pem`` and ``privkey.pem`` for ``domain`` signed by ``key`` itself (usable as
    its own CA file); returns the certificate's path."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    now = dt.datetime.now(dt.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    chain = folder / "fullchain.pem"
    chain.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (folder / "privkey.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return chain


def site(
    root: Path,
    domain: str,
    *,
    upstream: str,
    listen: tuple[str, int, int] | None = None,
    read_timeout: str = "60s",
) -> str:
    """The site as provisioning writes it, from ``root``'s folders, proxying to ``upstream``
    (``unix:/path`` or ``host:port``); ``listen`` = (address, http port, https port) instead
    of the server's ports 80 and 443 on every address."""
    text = render(
        "nginx-site.conf",
        domain=domain,
        acme_webroot=str(root / "acme"),
        app_root=str(root / "srv"),
        max_upload_mb=20,
        load_keys_dir=str(root / "load-keys"),
    )
    text = swap(text, f"/etc/letsencrypt/live/{domain}/", f"{root}/cert/")
    text = swap(text, "unix:/run/tas.sock", upstream)
    text = swap(text, "/var/log/nginx/access.log;", f"{root}/logs/access.log;")
    text = swap(text, f"{FRONT_LOG} tas_timed;", f"{root}/logs/{TIMED_LOG} tas_timed;")
    text = swap(text, "proxy_read_timeout 60s;", f"proxy_read_timeout {read_timeout};")
    if listen is not None:
        address, http_port, https_port = listen
        text = swap(text, "listen [::]:80;\n", "")
        text = swap(text, "listen [::]:443 ssl http2;\n", "")
        text = swap(text, "listen 80;", f"listen {address}:{http_port};")
        text = swap(text, "listen 443 ssl", f"listen {address}:{https_port} ssl")
    return text


def main_conf(root: Path, site_text: str, *, top: list[str], http: list[str]) -> Path:
    """``nginx.conf`` for ``root`` including ``site_text``: ``top`` lines at the top level,
    ``http`` lines in the http block (workers, logs: what differs between uses)."""
    site_file = root / "site.conf"
    site_file.write_text(site_text)
    conf = root / "nginx.conf"
    lines = [*top, f"pid {root}/nginx.pid;", "http {"]
    lines += ["    include /etc/nginx/mime.types;", "    default_type application/octet-stream;"]
    lines += [f"    {line}" for line in http]
    lines += [f"    {kind}_temp_path {root}/temp/{kind};" for kind in TEMP_PATHS]
    lines += [f"    include {site_file};", "}"]
    conf.write_text("\n".join(lines) + "\n")
    return conf


def command(binary: str, root: Path, conf: Path, *args: str) -> list[str]:
    """nginx on ``root`` as its prefix (its own pid file, temp files and logs)."""
    return [binary, "-p", f"{root}/", "-c", str(conf), *args]

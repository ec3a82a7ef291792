"""Capacity through the real front: the step ramp against nginx + TLS + gunicorn, and without.

    .venv/bin/python tests/load/bench_front.py --steps 500,1000,1500,2000,2500,3000 \
        --step-seconds 60 --settle-seconds 20 [--direct] [--processes 2] [--server-python P]

Runs on one machine, as the issue asks (load generator, nginx, gunicorn and PostgreSQL
share its cores): a scratch database on the PostgreSQL at ``--server`` (migrated), gunicorn
with production settings, and unless ``--direct``, nginx from the site template provisioning
writes (``releases/templates/nginx-site.conf``), on loopback ports, with a throwaway ECDSA
certificate and this run's load-test key, in front of it. The hops are a server's: nginx
reaches gunicorn through a unix socket (tas.socket there) and the app reaches PostgreSQL
through its unix socket (``--db-socket``); a ``--direct`` run's gunicorn listens on a
loopback port instead, for the load generator. The load is
``releases.loadtest.run_loadtest`` (the same as ``invoke loadtest --url``) against
``https://tas.bench`` (nginx on 127.0.0.3:443) or ``http://127.0.0.1:<port>``. Prints the
report and writes it (JSON + HTML, and nginx's access log with its timing of each request)
into ``--out``. Needs root for nginx to bind and read its files as it does on a server.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "load"))

from bench_pages import scratch_database  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from db import migrate  # noqa: E402
from releases import capacity  # noqa: E402
from releases import front_log  # noqa: E402
from releases import loadtest  # noqa: E402
from releases import provision  # noqa: E402
from releases.loadtest_host import add_app_cpu_per_request  # noqa: E402
from releases.loadtest_host import before_figures  # noqa: E402
from releases.loadtest_host import server_figures  # noqa: E402
from tests import local_nginx  # noqa: E402

DOMAIN = "tas.bench"
# nginx listens on the standard ports as on a server (the app compares a form's Referer with
# its Host, which nginx passes without the port), on a loopback address of its own.
ADDRESS = "127.0.0.3"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(
    port: int,
    what: str,
    process: subprocess.Popen[bytes],
    host: str = "127.0.0.1",
    unix: Path | None = None,
) -> None:
    for _ in range(600):
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited {process.returncode}")
        with contextlib.suppress(OSError):
            if unix:
                with socket.socket(socket.AF_UNIX) as sock:
                    sock.connect(str(unix))
            else:
                socket.create_connection((host, port), timeout=1).close()
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} does not answer on {port}")


@contextlib.contextmanager
def gunicorn(
    database_url: str, workers: int, python: str, socket_path: Path | None
) -> Iterator[tuple[str, int]]:
    """gunicorn with production settings; yields its address: ``unix:<socket_path>`` (as
    tas.socket on a server, where only nginx reaches it) or ``127.0.0.1:<port>``, and the
    process id of its master (the app is that process and its workers)."""
    port = _free_port()
    bind = f"unix:{socket_path}" if socket_path else f"127.0.0.1:{port}"
    env = {
        **os.environ,
        "APP_ENV": "production",
        "DATA_DIR": tempfile.mkdtemp(prefix="tas-bench-data-"),
        "SECRET_KEY": secrets.token_hex(32),
        "DATABASE_URL": database_url,
        "PROXY_COUNT": "1",
        "MAX_USERS": "100000",
        "LOG_LEVEL": "WARNING",
    }
    if workers:
        env["GUNICORN_WORKERS"] = str(workers)
    command = [python, "-m", "gunicorn", "-c", "python:service.gunicorn_conf"]
    command += ["--bind", bind, "service.wsgi:app"]  # its access log: none, as a server's
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    try:
        _wait(port, "gunicorn", process, unix=socket_path)
        yield bind, process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


@contextlib.contextmanager
def nginx(upstream: str, key: str, run: str) -> Iterator[tuple[Path, Path]]:
    """nginx with the production site (only what needs a real server swapped), as root.
    Yields the certificate's CA file and the access log (in ``front_log.LOG_FORMAT``)."""
    root = Path(tempfile.mkdtemp(prefix="tas-bench-nginx-"))
    os.chmod(root, 0o755)
    local_nginx.make_root(root, ROOT / "service" / "static")
    ca = local_nginx.self_signed_certificate(
        root / "cert",
        DOMAIN,
        ec.generate_private_key(ec.SECP256R1()),  # certbot's default
    )
    (root / "load-keys" / "bench.conf").write_text(f'"{key}" {run};\n')
    site = local_nginx.site(root, DOMAIN, upstream=upstream, listen=(ADDRESS, 80, 443))
    # As Debian's nginx.conf with provisioning's limits: a worker per core, keep-alive to
    # clients, the server's connections per worker. The site logs every request, and its
    # timing, into the run's own folder here.
    conf = local_nginx.main_conf(
        root,
        site,
        top=[
            "worker_processes auto;",
            f"error_log {root}/logs/error.log;",
            f"events {{ worker_connections {provision.NGINX_WORKER_CONNECTIONS}; }}",
            f"worker_rlimit_nofile {provision.NGINX_WORKER_FILES};",
        ],
        http=["sendfile on;", "tcp_nopush on;"],
    )
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    process = subprocess.Popen(local_nginx.command(binary, root, conf, "-g", "daemon off;"))
    try:
        _wait(443, "nginx", process, ADDRESS)
        yield ca, root / "logs" / local_nginx.TIMED_LOG
    finally:
        process.send_signal(signal.SIGQUIT)
        process.wait(timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def _describe(python: str) -> str:
    """Which interpreter served the app: its path, version and build."""
    probe = "import sys; print(sys.executable, sys.version.replace(chr(10), ' '))"
    return subprocess.run([python, "-c", probe], capture_output=True, text=True).stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--steps", default="500,1000,1500,2000,2500,3000")
    parser.add_argument("--step-seconds", type=float, default=60)
    parser.add_argument("--settle-seconds", type=float, default=20)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--workers", type=int, default=0, help="gunicorn workers (default: its)")
    parser.add_argument("--direct", action="store_true", help="no nginx: gunicorn directly")
    parser.add_argument(
        "--server-python",
        default=sys.executable,
        help="the interpreter gunicorn runs under (a venv's python): for the figures a server "
        "gets, a venv made from the distribution's python3 with requirements/runtime.lock, "
        "as provisioning makes them (default: this one)",
    )
    parser.add_argument(
        "--db-socket",
        default="/var/run/postgresql" if Path("/var/run/postgresql").is_dir() else "",
        help="the app reaches PostgreSQL through its unix socket in this folder, as on a "
        "server (default: Debian's, if there; empty: TCP to --server)",
    )
    parser.add_argument("--baseline-seconds", type=float, default=15)
    parser.add_argument("--out", default=str(capacity.REPORTS_DIR / "bench"))
    args = parser.parse_args()

    settings = loadtest.LoadSettings(
        steps=tuple(int(s) for s in args.steps.split(",")),
        step_seconds=args.step_seconds,
        settle_seconds=args.settle_seconds,
        processes=args.processes,
    )
    gates = capacity.Gates()
    with scratch_database(args.server, keep=False) as url:
        sa_url = url.replace("postgresql://", "postgresql+psycopg://", 1)
        migrate.upgrade(sa_url)
        app_url = sa_url
        if args.db_socket:
            socket_url = make_url(sa_url).set(host="", port=None, query={"host": args.db_socket})
            app_url = socket_url.render_as_string(hide_password=False)
        with contextlib.ExitStack() as stack:
            # nginx reaches gunicorn through a unix socket, as tas.socket on a server; the
            # load generator of a --direct run needs TCP. The folder goes however the run ends.
            socket_path = None
            access_log = None
            if not args.direct:
                sockets = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tas-sock-")))
                os.chmod(sockets, 0o755)  # nginx's workers do not run as root
                socket_path = sockets / "tas.sock"
            app_bind, app_pid = stack.enter_context(
                gunicorn(app_url, args.workers, args.server_python, socket_path)
            )
            run = loadtest.new_run_name()  # nginx names it for the key's holders
            if args.direct:
                base = f"http://{app_bind}"
                path = "load generator -> gunicorn (TCP, loopback)"
            else:
                key = secrets.token_urlsafe(32)
                ca, access_log = stack.enter_context(nginx(app_bind, key, run))
                base = f"https://{DOMAIN}"
                settings = dataclasses.replace(
                    settings, ca_file=str(ca), connect_to=ADDRESS, load_key=key
                )
                path = "load generator -> nginx (TLS 1.3, loopback) -> gunicorn (unix socket)"
            path += "; app -> PostgreSQL " + (
                f"(unix socket in {args.db_socket})" if args.db_socket else "(TCP, loopback)"
            )
            print(f"bench_front: {path}: {base}", flush=True)
            # The machine's CPU (steal included) and load per step, with the sampler the
            # live load test runs on a server (this machine is the server here).
            samples_file = Path(tempfile.mkdtemp(prefix="tas-bench-samples-")) / "s.jsonl"
            sampler = subprocess.Popen(
                [
                    sys.executable,
                    str(ROOT / "releases/scripts/load_sampler.py"),
                    str(samples_file),
                    "2",
                    str(app_pid),
                ]
            )
            time.sleep(6)  # the machine at rest first
            started = time.time()
            report, json_path, _ = loadtest.run_loadtest(
                base,
                settings,
                gates,
                database_url=sa_url,
                out_dir=Path(args.out),
                ca_file=settings.ca_file or None,
                baseline_seconds=args.baseline_seconds,
                run=run,
            )
            sampler.terminate()
            sampler.wait(timeout=30)
            samples = [json.loads(x) for x in samples_file.read_text().splitlines() if x.strip()]
            snapshots = json.loads(
                (Path(args.out) / f"{report.files['locust_html'][: -len('.locust.html')]}"
                 ".snapshots.json").read_text()
            )  # fmt: skip
            report.server = server_figures(samples, snapshots, list(settings.steps))
            add_app_cpu_per_request(report)
            if access_log is not None:
                with access_log.open() as lines:
                    front_log.add_to_steps(
                        report.server, lines, snapshots, settings.settle_seconds, gates.p95_ms
                    )
                # Kept next to the report: nginx's timing of every request of the run.
                shutil.copy(access_log, Path(json_path).with_suffix(".access.log"))
            report.target["path"] = path
            report.target["server_python"] = _describe(args.server_python)
            report.target["machine_before"] = before_figures(samples, started)
            capacity.write_report(report, Path(args.out))
    for line in capacity.table(report):
        print(line)
    print(f"bench_front: report {json_path}; machine {report.machine}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""gunicorn settings shared by ``invoke serve`` and the systemd unit.

Every value can be overridden on the command line; the environment gives the defaults.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
from typing import Any

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# One more sync worker than cores: the app is CPU-bound (PostgreSQL answers in well under a
# millisecond), so the usual 2 x cores + 1 only adds switching between processes. On the
# 2-core box, 3 workers used 16 % less CPU per request than 5 (docs/benchmarks.md).
workers = int(os.environ.get("GUNICORN_WORKERS", str(multiprocessing.cpu_count() + 1)))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
# A request that takes this long is stuck; the worker is replaced.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
keepalive = 5
# Let the app (not the master) open database connections: each worker gets its own pool.
preload_app = False
# No access log of gunicorn's own: on a server nginx logs every request
# (/var/log/nginx/access.log), those gunicorn never sees too. A second line per request in
# journald cost CPU on every request and pushed the app's own messages (what a failed
# restart reports from the unit's last lines) out of sight. GUNICORN_ACCESS_LOG=- logs
# requests to stdout (journald under systemd) again, for a while of debugging.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "").strip() or None
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def post_worker_init(worker: Any) -> None:
    """The app is loaded: what it built (modules, routes, SQLAlchemy's mappers, the
    templates' environment) lives as long as the worker, so the garbage collector stops
    looking at it (``gc.freeze``). Each full collection otherwise went through all of it
    again, 140,000 objects, tens of milliseconds in the middle of a request."""
    gc.collect()
    gc.freeze()

"""The baseline of a capacity report: how many requests a second the smallest page reaches.

``GET /healthz/live`` (no database, no session) through the same path as the load test
(gunicorn's settings; for ``--host`` also nginx and TLS), from the same generator, with no
think time. A report's capacity in users means little on its own across machines; next to
this figure from the same run and machine it can be judged (``docs/benchmarks.md``).

Settings come from ``TAS_LOAD_*`` like the journey's (``releases.loadtest.LoadSettings``):
the CA, the address to connect to and the run's key. ``TAS_BASELINE_OUT`` names the JSON
file the totals go to when the run stops.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from locust import FastHttpUser
from locust import constant
from locust import events
from locust import task

# The journey's settings, its TLS check and --connect-to (locust puts this folder on the path).
from locustfile import NO_BODY
from locustfile import SETTINGS
from locustfile import _trusting_context

from releases.loadtest import address_for


class Baseline(FastHttpUser):
    wait_time = constant(0)
    concurrency = 1
    insecure = False
    ssl_context_factory = staticmethod(_trusting_context)
    numbers = iter(range(1_000_000))

    def on_start(self) -> None:
        self.headers = {"X-Forwarded-For": address_for(next(Baseline.numbers))}
        if SETTINGS.load_key:
            self.headers["X-TAS-Load-Key"] = SETTINGS.load_key

    @task
    def live(self) -> None:
        with self.client.get(
            "/healthz/live",
            headers=self.headers,
            data=NO_BODY,
            name="/healthz/live",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}")


@events.test_stop.add_listener
def _write_totals(environment: Any, **_: Any) -> None:
    out = os.environ.get("TAS_BASELINE_OUT")
    if not out or environment.runner is None:
        return
    total = environment.runner.stats.total
    seconds = max(1e-9, total.last_request_timestamp - total.start_time)
    Path(out).write_text(
        json.dumps(
            {
                "path": "/healthz/live",
                "users": getattr(environment.parsed_options, "num_users", None),
                "requests": total.num_requests,
                "failures": total.num_failures,
                "seconds": round(seconds, 1),
                "rps": round(total.num_requests / seconds, 1),
                "p50_ms": total.get_response_time_percentile(0.5),
                "p95_ms": total.get_response_time_percentile(0.95),
            }
        )
    )

"""The accounts of a load test: made in bulk for one run, removed again by that run's name.

``invoke loadtest`` needs hundreds of signed-in people with a history, and sign-up is rate
limited per address (10 a minute in the app and in nginx): making them over HTTP would
measure the limiter, not the app. So they are inserted with SQL, each with six tasks and a
spread of completed attempts over 90 days, and each gets a sign-in key derived from the
run's secret (no key list to ship to the load generator).

Every account made is listed in ``load_test_accounts`` with the run's name and an expiry,
in the same transaction that makes it. Removing a run deletes exactly those accounts
(everything they own cascades), never accounts found by a name pattern: a person may have
picked a name that looks like a load account's. :func:`remove_expired` is the safety net for
a run whose clean-up never came (the load generator killed, the connection lost): the
nightly clean-up timer calls it.

Used by the local load test (``invoke loadtest --url``, with the database's URL) and on a
server by ``flask load-accounts`` (``invoke loadtest --host``), through the app's engine.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import math
import re
import time
from typing import Any

from sqlalchemy import Engine

KEY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
# A run's name goes into usernames and unit names: short, lower-case letters and digits.
RUN_NAME = re.compile(r"^[a-z0-9]{4,32}$")

TASK_NAMES = (
    ("Answer email", "routine", 20),
    ("Write weekly report", "recurring", 45),
    ("Tidy the kitchen", "routine", 15),
    ("Go for a run", "recurring", 30),
    ("File taxes", "project", 120),
    ("Call the dentist", "one-time", 10),
)


def check_run(run: str) -> str:
    if not RUN_NAME.match(run):
        raise ValueError(f"a run's name is 4-32 lower-case letters and digits, not {run!r}")
    return run


def run_prefix(run: str) -> str:
    """The usernames of a run's accounts start with this (they pass the sign-up rules)."""
    return f"load-{check_run(run)}-"


def load_username(prefix: str, number: int) -> str:
    return f"{prefix}{number:05d}"


def load_user_key(secret: str, username: str) -> str:
    """The sign-in key of a load account: derived, so no key list needs to be shipped.

    Same shape as the app's keys (5 groups of 5 from its alphabet).
    """
    digest = hmac.new(secret.encode(), username.lower().encode(), hashlib.sha256).digest()
    raw = "".join(KEY_ALPHABET[b % len(KEY_ALPHABET)] for b in digest[:25])
    return "-".join(raw[i : i + 5] for i in range(0, 25, 5))


def key_hash(key: str) -> str:
    """What the app stores for a key (service.accounts.services.key_hash, kept in step)."""
    return hashlib.sha256(key.strip().lower().replace(" ", "").encode()).hexdigest()


def _driver(conn: Any) -> Any:
    """The psycopg connection under a SQLAlchemy one (for COPY)."""
    return conn.connection.driver_connection


def seed(
    engine: Engine,
    *,
    run: str,
    count: int,
    secret: str,
    history: int = 40,
    ttl_seconds: float = 3600,
) -> int:
    """Make ``count`` accounts ``load-<run>-00000``… for ``run``; return how many are new.

    Each has six tasks and about ``history`` completed attempts over the last 90 days. A
    name someone already has is skipped (that virtual user then fails to sign in, which the
    report shows); an account of this run made before is kept.
    """
    check_run(run)
    if count < 1:
        raise ValueError("count must be at least 1")
    if not secret:
        raise ValueError("a run needs its secret (the accounts' keys derive from it)")
    prefix = run_prefix(run)
    expires = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=ttl_seconds)
    rows = []
    for number in range(count):
        name = load_username(prefix, number)
        rows.append((name, key_hash(load_user_key(secret, name))))
    with engine.begin() as conn:
        cur = _driver(conn).cursor()
        cur.execute("CREATE TEMP TABLE load_seed (username text, key_hash text) ON COMMIT DROP")
        with cur.copy("COPY load_seed (username, key_hash) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cur.execute(
            """
            INSERT INTO users (username, timezone, signin_key_hash)
            SELECT s.username, 'Europe/Berlin', s.key_hash FROM load_seed s
            WHERE NOT EXISTS (
                SELECT 1 FROM users u WHERE lower(u.username) = lower(s.username))
            RETURNING id
            """
        )
        new_ids = [r[0] for r in cur.fetchall()]
        if not new_ids:
            return 0
        cur.execute(
            """
            INSERT INTO load_test_accounts (user_id, run, expires_at)
            SELECT id, %s, %s FROM unnest(%s::bigint[]) AS u(id)
            """,
            (run, expires, new_ids),
        )
        cur.execute(
            """
            INSERT INTO tasks (user_id, name, kind, default_estimate_minutes)
            SELECT u.id, t.name, t.kind, t.estimate
            FROM unnest(%s::bigint[]) AS u(id),
                 jsonb_to_recordset(%s::jsonb) AS t(name text, kind text, estimate float)
            """,
            (
                new_ids,
                json.dumps([{"name": n, "kind": k, "estimate": e} for n, k, e in TASK_NAMES]),
            ),
        )
        cur.execute(
            """
            INSERT INTO attempts (
                user_id, task_id, task_version, status, initialized_at, started_at,
                completed_at, minutes_spent, expected_aversion, expected_relief,
                expected_cognitive_load, expected_emotional_load, expected_physical_load,
                motivation, time_estimate_minutes, actual_relief, actual_cognitive_load,
                actual_emotional_load, actual_physical_load, completion_percent,
                stress, net_wellbeing, relief_duration_score, behavioral_score)
            SELECT t.user_id, t.id, 1, 'completed', h.done - interval '2 hours',
                   h.done - make_interval(mins => h.minutes), h.done, h.minutes,
                   h.a, h.r, h.c, h.e, h.p, h.m, t.default_estimate_minutes,
                   h.r2, h.c, h.e, h.p, 100,
                   (h.c + h.e + h.p) / 3.0, h.r2 - (h.c + h.e + h.p) / 3.0,
                   h.r2 * h.minutes / 60.0, 50
            FROM tasks t
            JOIN unnest(%s::bigint[]) AS u(id) ON u.id = t.user_id
            CROSS JOIN LATERAL (
                SELECT now() - random() * interval '90 days' AS done,
                       (5 + random() * 60)::int AS minutes,
                       (random() * 100)::int AS a, (random() * 100)::int AS r,
                       (random() * 100)::int AS r2, (random() * 100)::int AS c,
                       (random() * 100)::int AS e, (random() * 100)::int AS p,
                       (random() * 100)::int AS m, t.id AS task
                FROM generate_series(1, %s)
            ) h
            """,
            (new_ids, max(1, math.ceil(history / len(TASK_NAMES)))),
        )
    # Statistics for the rows just written, as autovacuum gives them on a server that runs it
    # (it is off on some machines). Without them the run measures the planner's guesses for
    # tables it believes empty, and the dead rows of earlier runs.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        _driver(conn).execute("VACUUM (ANALYZE) users, tasks, attempts")
    return len(new_ids)


def _delete(engine: Engine, where: str, params: tuple[Any, ...]) -> int:
    import psycopg

    # Requests still in flight when the load stops can write for these accounts; their
    # triggers and the cascading delete may then deadlock. PostgreSQL aborts one side:
    # wait for the stragglers and try again.
    for attempt in range(5):
        try:
            with engine.begin() as conn:
                cur = _driver(conn).cursor()
                cur.execute(
                    "DELETE FROM users WHERE id IN"
                    f" (SELECT user_id FROM load_test_accounts WHERE {where})",
                    params,
                )
                return int(cur.rowcount)
        except psycopg.errors.DeadlockDetected:
            if attempt == 4:
                raise
            time.sleep(2)
    return 0


def remove_run(engine: Engine, run: str) -> int:
    """Delete the accounts of ``run`` (everything they own cascades); return how many."""
    return _delete(engine, "run = %s", (check_run(run),))


def remove_expired(engine: Engine) -> int:
    """Delete the accounts of every run whose expiry has passed (a run that died)."""
    return _delete(engine, "expires_at < now()", ())


def count(engine: Engine, run: str | None = None) -> int:
    """Load accounts there are (of ``run``, or of every run)."""
    with engine.connect() as conn:
        cur = _driver(conn).cursor()
        if run is None:
            cur.execute("SELECT count(*) FROM load_test_accounts")
        else:
            cur.execute("SELECT count(*) FROM load_test_accounts WHERE run = %s", (run,))
        row = cur.fetchone()
    return int(row[0]) if row else 0

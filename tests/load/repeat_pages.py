"""The app's CPU for one page asked again and again, in process: the fixed cost of a request.

A scratch database with two load-test accounts (``db.load_accounts``); one signs in and
views the dashboard until it is cached, then each page is asked ``--times`` times by the
same client (the signed-in person, or a visitor without a session for ``--anonymous``)
and the mean CPU time of the process per request is printed. The WSGI environ is built
for each request as in ``profile_requests.py`` and counted in, so compare figures of this
tool only with each other: the same command on two commits, alternated.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "load"))

import profile_requests as journey  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--path", action="append", help="a page (default: / and /signin)")
    parser.add_argument("--anonymous", action="append", default=[], help="a page, no session")
    parser.add_argument("--times", type=int, default=3000)
    args = parser.parse_args()

    secret = secrets.token_hex(16)
    with journey.scratch_app(args.server, 2, secret, room=18) as (_url, app):
        person = journey.Client(app, list, journey._headers(journey.address_for(0)))
        visitor = journey.Client(app, list, journey._headers(journey.address_for(1)))
        username = journey.load_username(journey.PREFIX, 0)
        person.page("/signin", "warm-up")
        key = journey.load_user_key(secret, username)
        person.post("/signin", "warm-up", {"username": username, "key": key})
        person.page("/", "warm-up")
        pages = [(path, person) for path in args.path or ["/", "/signin"]]
        pages += [(path, visitor) for path in args.anonymous]
        for path, client in pages:
            for _ in range(200):
                client.request("warm-up", "GET", path)
            started = time.process_time()
            for _ in range(args.times):
                client.request(path, "GET", path)
            took = (time.process_time() - started) / args.times * 1000
            who = "signed in" if client is person else "no session"
            print(f"{path:24} {who:10} {took:.3f} ms of CPU per request")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

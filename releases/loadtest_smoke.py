"""``invoke smoke``: one throwaway person walks the key pages over real HTTP(S).

Sign up, dashboard, create a task, initialize, start, complete, analytics, account, sign in
again with the key from a second "device", delete the account.
Every step checks the status code and something on the page a person would look for; the
account is deleted even when a step fails midway. Plain ``requests``, so TLS is verified
(``ca_file`` for a test CA) and secure cookies only travel over HTTPS, as in a browser.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import requests

from releases.loadtest import CSRF

# The key page shows it in a read-only field (earlier builds: in a <code> element).
SIGNIN_KEY = re.compile(r'<(?:input|code) id="signin-key"(?: value="|>)([^"<]+)')
SIGNED_IN = 'action="/signout"'
TIMEOUT = 15


class StepFailed(Exception):
    pass


@dataclass
class StepResult:
    name: str
    ok: bool
    detail: str
    ms: float

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name:<14} {self.ms:6.0f} ms  {self.detail}"


@dataclass
class SmokeResult:
    url: str
    steps: list[StepResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.steps) and all(step.ok for step in self.steps)


class _Visitor:
    """One browser: a cookie jar, the latest CSRF token, and checks on every answer."""

    def __init__(self, base: str, verify: bool | str) -> None:
        self.base = base.rstrip("/")
        # Passed with every request: requests ignores a session's own `verify` when
        # REQUESTS_CA_BUNDLE is set in the environment.
        self.verify = verify
        self.http = requests.Session()
        self.http.headers["User-Agent"] = "tas-smoke/1"
        self.token = ""
        self.page = self.base + "/"

    def get(self, path: str, *, expect: int = 200, contains: str = "") -> str:
        response = self.http.get(
            self.base + path, timeout=TIMEOUT, allow_redirects=False, verify=self.verify
        )
        self.page = self.base + path
        return self._check("GET", path, response, expect, contains)

    def post(
        self, path: str, data: dict[str, str], *, expect: int = 302, contains: str = ""
    ) -> str:
        response = self.http.post(
            self.base + path,
            data={"csrf_token": self.token, **data},
            # Over HTTPS the CSRF check also wants a same-site Referer, as browsers send.
            headers={"Referer": self.page},
            timeout=TIMEOUT,
            allow_redirects=False,
            verify=self.verify,
        )
        return self._check("POST", path, response, expect, contains)

    def _check(
        self, method: str, path: str, response: requests.Response, expect: int, contains: str
    ) -> str:
        text = response.text
        if response.status_code != expect:
            where = response.headers.get("Location", "")
            extra = f" -> {where}" if where else ""
            raise StepFailed(
                f"{method} {path}: {response.status_code}{extra}, expected {expect}"
                + self._secure_cookies_over_http()
            )
        if contains and contains not in text:
            raise StepFailed(f"{method} {path}: the page lacks {contains!r}")
        match = CSRF.search(text)
        if match:
            self.token = match.group(1)
        return text

    def _secure_cookies_over_http(self) -> str:
        """Why nothing that needs a session can work: its cookie never comes back."""
        secure = sorted({cookie.name for cookie in self.http.cookies if cookie.secure})
        if not self.base.startswith("http://") or not secure:
            return ""
        return (
            f" (the server sets its cookies ({', '.join(secure)}) Secure, as production does:"
            " they are only sent back over HTTPS, so over plain http:// the session and its"
            " CSRF token are lost. Use the https:// address, e.g. through nginx)"
        )


def _one_id(pattern: str, page: str, what: str) -> str:
    found = re.findall(pattern, page)
    if not found:
        raise StepFailed(f"the dashboard shows no {what}")
    return str(found[0])


def run_smoke(
    url: str,
    *,
    ca_file: str | None = None,
    expect_version: str | None = None,
    echo: Callable[[str], None] = print,
) -> SmokeResult:
    result = SmokeResult(url)
    verify: bool | str = ca_file or True
    person = _Visitor(url, verify)
    username = f"smoke-{secrets.token_hex(4)}"
    state: dict[str, Any] = {"signed_up": False, "deleted": False}

    @contextmanager
    def step(name: str) -> Iterator[dict[str, str]]:
        outcome = {"detail": ""}
        started = time.perf_counter()
        try:
            yield outcome
        except (StepFailed, requests.RequestException, ValueError, KeyError) as exc:
            done = StepResult(name, False, str(exc), (time.perf_counter() - started) * 1000)
            result.steps.append(done)
            echo(done.line())
            raise StepFailed(name) from exc
        done = StepResult(name, True, outcome["detail"], (time.perf_counter() - started) * 1000)
        result.steps.append(done)
        echo(done.line())

    try:
        with step("healthz") as out:
            response = person.http.get(person.base + "/healthz", timeout=TIMEOUT)
            body = response.json()
            if response.status_code != 200 or body.get("status") != "ok":
                raise StepFailed(f"/healthz {response.status_code}: {body}")
            version = str(body.get("version"))
            if expect_version and version != expect_version:
                raise StepFailed(f"version {version}, expected {expect_version}")
            out["detail"] = f"version {version}, schema {body.get('schema')}"

        with step("signup") as out:
            page = person.get("/signup")
            if 'name="username"' not in page:
                raise StepFailed("sign-up is closed (the user cap is reached?)")
            page = person.post("/signup", {"username": username, "timezone": "UTC"}, expect=200)
            key = SIGNIN_KEY.search(page)
            if not key:
                raise StepFailed("no sign-in key on the page after sign-up")
            state["signed_up"], state["key"] = True, key.group(1).strip()
            out["detail"] = f"signed up {username}"

        with step("dashboard") as out:
            person.get("/", contains=SIGNED_IN)
            out["detail"] = "signed in, dashboard shown"

        with step("create task") as out:
            person.get("/tasks/new", contains='name="name"')
            person.post(
                "/tasks/new",
                {
                    "name": "Smoke test task",
                    "kind": "one-time",
                    "default_estimate_minutes": "15",
                    "description": "made by invoke smoke",
                },
            )
            page = person.get("/", contains="Smoke test task")
            state["task"] = _one_id(r'href="/tasks/(\d+)/initialize"', page, "task")
            out["detail"] = f"task {state['task']} on the dashboard"

        with step("initialize") as out:
            path = f"/tasks/{state['task']}/initialize"
            person.get(path, contains="expected_aversion")
            prediction = {
                "expected_aversion": "60",
                "expected_relief": "70",
                "expected_cognitive_load": "40",
                "expected_emotional_load": "30",
                "expected_physical_load": "10",
                "motivation": "55",
                "time_estimate_minutes": "15",
                "physical_context": "Home",
            }
            person.post(path, prediction)
            page = person.get("/")
            state["attempt"] = _one_id(r'action="/attempts/(\d+)/start"', page, "Start button")
            out["detail"] = f"attempt {state['attempt']} ready to start"

        with step("start") as out:
            person.post(f"/attempts/{state['attempt']}/start", {})
            person.get("/", contains=f'href="/attempts/{state["attempt"]}/complete"')
            out["detail"] = "running on the dashboard"

        with step("complete") as out:
            path = f"/attempts/{state['attempt']}/complete"
            person.get(path, contains="actual_relief")
            outcome = {
                "actual_relief": "80",
                "actual_cognitive_load": "35",
                "actual_emotional_load": "20",
                "actual_physical_load": "10",
                "completion_percent": "100",
                "minutes_spent": "12",
                "notes": "smoke",
            }
            person.post(path, outcome)
            page = person.get("/", contains="Smoke test task")
            if f'action="/attempts/{state["attempt"]}/start"' in page:
                raise StepFailed("the attempt is still waiting to start after completing")
            out["detail"] = "completed"

        with step("analytics") as out:
            response = person.http.get(person.base + "/analytics", timeout=TIMEOUT)
            if response.status_code != 200 or SIGNED_IN not in response.text:
                raise StepFailed(f"/analytics answered {response.status_code}")
            out["detail"] = "shown"

        with step("account") as out:
            person.get("/account", contains=username)
            out["detail"] = "shows the username"

        with step("key sign-in") as out:
            other = _Visitor(url, verify)
            other.get("/signin", contains='name="key"')
            other.post("/signin", {"username": username, "key": state["key"]})
            other.get("/", contains=SIGNED_IN)
            out["detail"] = "the key signs in from a second browser"

        with step("delete") as out:
            _delete(person, username)
            state["deleted"] = True
            again = _Visitor(url, verify)
            again.get("/signin")
            page = again.post("/signin", {"username": username, "key": state["key"]}, expect=200)
            if SIGNED_IN in page:
                raise StepFailed("the deleted account can still sign in")
            out["detail"] = f"{username} deleted; its key no longer signs in"
    except StepFailed:
        pass
    finally:
        if state["signed_up"] and not state["deleted"]:
            try:
                _delete(person, username)
                echo(f"cleanup: deleted {username}")
            except (StepFailed, requests.RequestException) as exc:
                echo(f"cleanup: could not delete {username}: {exc}")
    return result


def _delete(person: _Visitor, username: str) -> None:
    person.get("/account", contains=username)
    person.post("/account/delete", {"confirm": username})

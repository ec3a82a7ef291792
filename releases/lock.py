"""The deploy lock: one deploy or rollback at a time per server, and never a silent stale one.

Taking it is an atomic ``mkdir /srv/tas/shared/deploy.lock`` on the server (two deploys
racing cannot both succeed). Inside: ``info.json`` (who, from which machine and process,
when, what) and ``session`` — the PID and start time of the server's ``sshd`` process
serving the holder's SSH connection. While that connection lives the lock is held; when it
is gone (a laptop closed mid-deploy) the lock is *stale*, and so is one older than
``stale_after`` seconds. A stale lock is reported, never taken over silently:
``invoke unlock --reason`` removes it and writes the reason into the deploy log.
"""

from __future__ import annotations

import json
import secrets
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from releases import scripts
from releases.provision import APP_ROOT
from releases.remote import Remote
from releases.shell import sudo_input

LOCK_DIR = f"{APP_ROOT}/shared/deploy.lock"
DEPLOY_LOG = f"{APP_ROOT}/shared/deploys.log"
STALE_AFTER = 30 * 60


class LockHeld(RuntimeError):
    """Someone else holds the deploy lock (or a stale lock is in the way)."""


@dataclass(frozen=True)
class LockState:
    held: bool
    info: dict[str, Any] | None = None
    age: float = 0.0
    # None while the holder is still writing its session file.
    session_alive: bool | None = None
    # The server-side unit the holder handed its work to (it holds the lock while it runs).
    unit: str = ""
    unit_active: bool = False

    @classmethod
    def from_status(cls, output: str) -> LockState:
        """What ``scripts/lock_status.py`` printed about the lock."""
        data = json.loads(output)
        return cls(
            held=data["held"],
            info=data.get("info"),
            age=float(data.get("age", 0.0)),
            session_alive=data.get("session_alive"),
            unit=data.get("unit", ""),
            unit_active=bool(data.get("unit_active")),
        )

    def stale(self, stale_after: float = STALE_AFTER) -> str:
        """Why the lock is stale, or "" when its holder is still there."""
        if not self.held or self.unit_active:
            return ""
        if self.session_alive is False:
            return "the holder's SSH session is gone" + (
                f" and its unit {self.unit} has ended" if self.unit else ""
            )
        if self.age > stale_after:
            return f"it is older than {stale_after / 60:.0f} minutes"
        if self.info is None and self.age > 60:
            return "it has no holder information"
        return ""

    def describe(self, stale_after: float = STALE_AFTER) -> str:
        if not self.held:
            return "free"
        info = self.info or {}
        holder = (
            f"{info.get('who', '?')} (pid {info.get('pid', '?')}) "
            f"{info.get('action', 'deploy')} {info.get('version', '?')} "
            f"since {info.get('started', '?')} ({self.age:.0f}s ago)"
        )
        if self.unit_active:
            holder += f"; the server is finishing it in unit {self.unit}"
        why = self.stale(stale_after)
        return f"held by {holder}" + (f"; STALE: {why}" if why else "")


def lock_state(remote: Remote) -> LockState:
    result = sudo_input(
        remote, f"python3 - {shlex.quote(LOCK_DIR)}", scripts.text("lock_status.py")
    )
    return LockState.from_status(result.stdout)


@dataclass
class DeployLock:
    """Held for one deploy or rollback; :meth:`release` removes it only if it is ours."""

    remote: Remote
    info: dict[str, Any]
    token: str

    def release(self) -> None:
        q = shlex.quote(LOCK_DIR)
        self.remote.sudo(
            f"grep -qF {shlex.quote(self.token)} {q}/info.json 2>/dev/null && rm -rf {q} || true"
        )

    def hand_over(self, unit: str) -> None:
        """The server-side unit ``unit`` now does the work: the lock is held while it runs,
        and it frees the lock itself if this client is gone when it ends."""
        q = shlex.quote(LOCK_DIR)
        self.remote.sudo(
            f"grep -qF {shlex.quote(self.token)} {q}/info.json && "
            f"echo {shlex.quote(unit)} > {q}/unit"
        )

    def renew_session(self) -> bool:
        """After a reconnect: record this client's new SSH session in the lock (its old one
        is gone, so the lock would look stale, and the unit would free it under a client
        still at work). False when the lock is no longer ours (the unit freed it)."""
        command = f"sh -c {shlex.quote(scripts.text('lock_acquire.sh'))} lock " + " ".join(
            shlex.quote(arg) for arg in (LOCK_DIR, "--renew", self.token)
        )
        result = self.remote.sudo(command, warn=True)
        if result.exited not in (0, 75):
            # Cut off again (or sudo failed): the caller retries as for a lost connection.
            raise ConnectionError(f"renewing the lock's session failed (exit {result.exited})")
        return result.exited == 0

    def detach(self) -> None:
        """This client stops following (interrupted): the unit frees the lock when done."""
        q = shlex.quote(LOCK_DIR)
        self.remote.sudo(
            f"grep -qF {shlex.quote(self.token)} {q}/info.json 2>/dev/null && "
            f"touch {q}/detached || true"
        )


def acquire(
    remote: Remote,
    info: dict[str, Any],
    *,
    wait: float = 0,
    stale_after: float = STALE_AFTER,
    echo: Callable[[str], None] = print,
    poll: float = 1.0,
) -> DeployLock:
    """Take the lock, polling for up to ``wait`` seconds while someone else holds it.

    A stale lock is never taken over: the error says why it is stale and how to remove it.
    """
    token = secrets.token_hex(8)
    info = {**info, "token": token, "started": _now()}
    deadline = time.monotonic() + wait
    announced = False
    script = scripts.text("lock_acquire.sh")
    while True:
        command = f"sh -c {shlex.quote(script)} lock {shlex.quote(LOCK_DIR)}"
        result = sudo_input(remote, command, json.dumps(info), warn=True)
        if result.exited == 0:
            return DeployLock(remote, info, token)
        if result.exited != 75:
            raise RuntimeError(f"taking the deploy lock failed: {result.stderr.strip()}")
        state = lock_state(remote)
        if not state.held:
            continue  # released between our mkdir and our look: try again at once
        why = state.stale(stale_after)
        if why:
            raise LockHeld(
                f"the deploy lock is stale ({why}): {state.describe(stale_after)}. "
                f"If nobody is deploying, remove it: invoke unlock --host ... --reason '...'"
            )
        if time.monotonic() >= deadline:
            waited = f" after waiting {wait:.0f}s" if wait else ""
            raise LockHeld(f"another deploy is running{waited}: lock {state.describe(stale_after)}")
        if not announced:
            echo(f"lock: {state.describe(stale_after)}; waiting up to {wait:.0f}s")
            announced = True
        time.sleep(min(poll, max(0.0, deadline - time.monotonic())))


def force_unlock(remote: Remote, reason: str, who: str) -> LockState:
    """Remove the lock whoever holds it, and log who did it, why, and what it said."""
    state = lock_state(remote)
    if not state.held:
        return state
    entry = {
        "event": "unlock",
        "at": _now(),
        "who": who,
        "reason": reason,
        "holder": state.info,
        "stale": state.stale() or None,
        "lock_age_s": round(state.age, 1),
    }
    append_log(remote, entry)
    remote.sudo(f"rm -rf {shlex.quote(LOCK_DIR)}")
    return state


def append_log(remote: Remote, entry: dict[str, Any]) -> None:
    """One JSON line in the server's deploy log (root-owned, readable by the tas group)."""
    line = json.dumps(entry, sort_keys=True) + "\n"
    log = shlex.quote(DEPLOY_LOG)
    sudo_input(remote, f"touch {log} && chmod 640 {log} && chgrp tas {log} && cat >> {log}", line)


def read_log(remote: Remote) -> list[dict[str, Any]]:
    """The deploy log, one entry per deploy, rollback or unlock, oldest first."""
    return merge_log(remote.read(DEPLOY_LOG) or "")


def merge_log(text: str) -> list[dict[str, Any]]:
    """Lines of one run (same ``run`` id: started, backed up, finished, cleaned up) make
    one entry, at the place of its first line, later lines' fields winning."""
    entries: list[dict[str, Any]] = []
    runs: dict[str, dict[str, Any]] = {}
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if not isinstance(entry, dict):
            continue
        run = entry.get("run")
        if run and run in runs:
            runs[run].update(entry)
            continue
        if run:
            runs[run] = entry
        entries.append(entry)
    return entries


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

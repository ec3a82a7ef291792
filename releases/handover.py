"""Hand the live part of a deploy or rollback to the server, and follow it from here.

:func:`start` uploads ``releases/scripts/runner.py`` (and ``migrate.py``) with a plan into
``/srv/tas/shared/runs/<id>/`` and starts the runner as the transient unit
``tas-run-<id>``; the deploy lock is handed over to that unit. :func:`follow` prints the
runner's progress as it comes and returns its result (the finished log entry).

What the operator's side may suffer, and what then happens:

* **Ctrl-C** (SIGINT) while following: the client detaches (the lock is marked so) and
  says where to look; the unit finishes or undoes the change, logs it, frees the lock.
* **The client killed** (SIGKILL) or **the SSH connection dropped**: the same, except the
  lock is freed by the unit because the holder's SSH session is gone. A dropped
  connection is re-opened a few times to keep following before giving up; once it is,
  the lock records the new SSH session (:meth:`DeployLock.renew_session`), so a client
  still at work is never reported stale nor loses the lock to the unit at its end.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from paramiko.ssh_exception import SSHException

from releases import scripts
from releases.lock import DeployLock
from releases.provision import APP_ROOT
from releases.remote import Remote

RUNS_DIR = f"{APP_ROOT}/shared/runs"
KEEP_RUNS = 30


class Detached(RuntimeError):
    """The client stopped following; the server finishes the run on its own."""


def new_run_id(kind: str) -> str:
    """``deploy-20261203T120000Z-a1b2c3``: the run's unit, directory and log lines."""
    return f"{kind}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{os.urandom(3).hex()}"


@dataclass(frozen=True)
class Run:
    id: str
    unit: str
    dir: str


def start(
    remote: Remote,
    run_id: str,
    plan: dict[str, Any],
    held: DeployLock,
    echo: Callable[[str], None],
    prefix: str,
) -> Run:
    """Upload the runner and the plan, hand the lock over, start the unit. Until it returns
    the unit does not run: a failure here leaves the lock to the caller."""
    run = Run(id=run_id, unit=f"tas-run-{run_id}", dir=f"{RUNS_DIR}/{run_id}")
    q = shlex.quote(run.dir)
    remote.sudo(f"install -d -m 755 {RUNS_DIR} && install -d -m 755 {q}")
    files = {
        "runner.py": scripts.text("runner.py"),
        "migrate.py": scripts.text("migrate.py"),
        "plan.json": json.dumps(plan, indent=1),
    }
    staged = remote.scratch()
    for name, text in files.items():
        remote.connection.put(io.BytesIO(text.encode()), f"{staged}/{name}")
    names = " ".join(files)
    remote.sudo(f"cd {shlex.quote(staged)} && install -m 644 {names} {q}/")
    held.hand_over(run.unit)
    remote.sudo(
        f"systemd-run --unit={run.unit} --description='tas {plan['kind']} {run_id}' "
        f"-p KillMode=process python3 {q}/runner.py {q}"
    )
    echo(f"{prefix}: handed over to the server: unit {run.unit} finishes the {plan['kind']}")
    _prune(remote)
    return run


def _prune(remote: Remote) -> None:
    """Keep the newest run directories (the deploy log is the lasting record)."""
    remote.sudo(
        f"ls -1dt {RUNS_DIR}/*/ 2>/dev/null | tail -n +{KEEP_RUNS + 1} | xargs -r rm -rf --",
        warn=True,
    )


def follow(
    remote: Remote,
    run: Run,
    held: DeployLock,
    echo: Callable[[str], None],
    prefix: str,
    poll: float = 0.4,
    attempts: int = 6,
) -> dict[str, Any]:
    """Print the runner's progress until it ends; return its result.

    Raises :class:`Detached` when interrupted or when the server cannot be reached again.
    """
    offset = 0
    lost = 0

    def show_new_progress() -> None:
        nonlocal offset
        chunk = _ask(
            remote, f"tail -c +{offset + 1} {shlex.quote(run.dir)}/progress.jsonl 2>/dev/null"
        )
        complete, _, _ = chunk.rpartition("\n")
        if complete:
            offset += len((complete + "\n").encode())
            for line in complete.splitlines():
                _show(json.loads(line), echo, prefix)

    renew = False
    while True:
        try:
            if renew:
                # A new connection is a new SSH session: the lock must name it, or it looks
                # stale and the unit frees it at its end under a client still at work.
                if held.renew_session():
                    echo(f"{prefix}: reconnected; the deploy lock names this session again")
                renew = False
            show_new_progress()
            # Whether the unit still runs first, then its result: it writes the result
            # before it ends, so an ended unit without one really has none.
            active = _unit_running(remote, run.unit)
            result = _ask(remote, f"cat {shlex.quote(run.dir)}/result.json 2>/dev/null") or None
            if result is not None and not active:
                show_new_progress()
                return dict(json.loads(result))
            if result is None and not active:
                log = remote.sudo(f"journalctl -u {run.unit} -n 20 --no-pager -o cat", warn=True)
                raise RuntimeError(
                    f"the server-side unit {run.unit} ended without a result:\n{log.stdout.strip()}"
                )
            lost = 0
            time.sleep(poll)
        except KeyboardInterrupt:
            with contextlib.suppress(Exception):
                held.detach()
            raise Detached(_where(run, "interrupted")) from None
        except (OSError, EOFError, SSHException) as exc:
            # Fabric opens the connection again on the next command.
            lost += 1
            renew = True
            if lost >= attempts:
                raise Detached(_where(run, f"lost the connection ({exc})")) from exc
            echo(f"{prefix}: connection lost ({type(exc).__name__}: {exc}); reconnecting ...")
            time.sleep(min(2.0 * lost, 6.0))


def _ask(remote: Remote, command: str) -> str:
    """A read-only command's output. One cut off by a dropped connection (no exit status)
    is a lost connection, to be retried, never an answer."""
    result = remote.sudo(f"{command}; echo tas-ok", warn=True)
    out = result.stdout
    if result.exited != 0 or not out.endswith("tas-ok\n"):
        raise ConnectionError(f"the server's answer was cut off (exit {result.exited})")
    return out[: -len("tas-ok\n")]


def _unit_running(remote: Remote, unit: str) -> bool:
    """Whether the unit still runs (systemd's own answer)."""
    state = _ask(remote, f"systemctl is-active {unit}").strip()
    return state not in ("inactive", "failed", "")


def _where(run: Run, why: str) -> str:
    return (
        f"{why}: the server goes on by itself in unit {run.unit} — it finishes or undoes the "
        f"change, writes the deploy log and frees the lock. See `invoke releases` (the deploy "
        f"log) or `journalctl -u {run.unit}` on the server."
    )


def _show(record: dict[str, Any], echo: Callable[[str], None], prefix: str) -> None:
    kind = record.get("t")
    if kind == "start":
        echo(f"{prefix}: {record['step']} ...")
    elif kind == "done":
        detail = f": {record['detail']}" if record.get("detail") else ""
        word = "done" if record.get("ok", True) else "FAILED"
        echo(f"{prefix}: {record['step']}: {word} [{record['took']:.1f}s]{detail}")
    elif kind == "say":
        echo(f"{prefix}: {record['text']}")

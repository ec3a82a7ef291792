"""``invoke restore``: replace the server's database with a backup, safely.

Under the deploy lock: the dump is checked first (in the backup folder, readable to its
end, and at the Alembic revision the live release needs — unless ``--any-revision``),
then the operator confirms, then the server does the rest by itself
(``releases/scripts/runner.py`` in a transient unit, see :mod:`releases.handover`): stop
the app, ``tas-restore`` (the dump into a new database, a safety dump of the live one, the
two swapped by name), start the app, and the health gate through nginx over HTTPS. When
the gate fails, the replaced database is swapped back. A dropped connection or a killed
client cannot leave the app stopped: the unit finishes.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from releases import backups
from releases import handover
from releases import lock as deploy_lock
from releases import steps
from releases.inventory import RELEASES_DIR
from releases.inventory import read_state
from releases.remote import Remote
from releases.rollback import dump_time


class RestoreRefused(RuntimeError):
    """Nothing was changed; the message says why."""


class RestoreFailed(RuntimeError):
    """The restore or its health gate failed; the message says what was put back."""


@dataclass
class RestoreOptions:
    file: str
    host: str = ""
    any_revision: bool = False
    lock_wait: float = 0.0
    domain: str = ""
    ca_file: str | None = None
    health_timeout: float = 60.0


def expectation(
    remote: Remote, path: str, any_revision: bool, echo: Callable[[str], None]
) -> str | None:
    """Check the dump and say what it holds; the revision the restore must find in it.

    That is the revision the live release needs (a dump at another one would leave the
    site on a schema its code does not serve): refused unless ``any_revision``.
    """
    try:
        revision = backups.ensure_backup_present(remote, path)["revision"]
    except backups.BackupUnusable as exc:
        raise RestoreRefused(str(exc)) from exc
    state = read_state(remote)
    live = state.current_release
    needs = f"; {live.name} runs and needs {live.alembic_head or 'no schema'}" if live else ""
    echo(
        f"restore: {path} holds revision {revision or 'none'}; the database is at "
        f"{state.db_revision or 'no revision'}{needs}"
    )
    if live is None or not live.manifest or any_revision:
        return None
    if revision != live.alembic_head:
        raise RestoreRefused(
            f"{live.name} would serve a database at {revision or 'no revision'} and needs "
            f"{live.alembic_head or 'no schema'}. Roll back to the release of that revision "
            "(invoke rollback --to VERSION --restore-backup), or pass --any-revision and "
            "deploy a matching release afterwards. Nothing changed."
        )
    return str(revision)


def run_restore(
    remote: Remote,
    options: RestoreOptions,
    confirm: Callable[[str], bool],
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Restore ``options.file`` on the server; returns the deploy-log entry of the restore."""
    from releases.deploy import runner_settings
    from releases.deploy import stage_ca_file
    from releases.deploy import who

    path = backups.resolve_backup(remote, options.file)
    run = steps.Steps("restore", echo)
    run_id = handover.new_run_id("restore")
    # The lock first, then the look at the server: what is checked is what runs.
    held = deploy_lock.acquire(
        remote,
        {"who": who(), "pid": os.getpid(), "action": "restore", "version": options.file},
        wait=options.lock_wait,
        echo=run.say,
    )
    entry: dict[str, Any] = {
        "run": run_id,
        "event": "restore",
        "who": who(),
        "host": options.host,
        "dump": path,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    handed_over = followed = False
    started = time.monotonic()
    try:
        # Every attempt is on record before anything else happens, refused ones too.
        deploy_lock.append_log(remote, {**entry, "result": "started"})
        expect = expectation(remote, path, options.any_revision, echo)
        state = read_state(remote)
        live = state.current_release
        if live is None:
            raise RestoreRefused("nothing is deployed: no release to serve the restored data")
        if not confirm(f"Replace ALL data on {options.host} with {path}?"):
            raise RestoreRefused("cancelled, nothing changed")
        entry.update(release=live.name, version=live.version, alembic_before=state.db_revision)
        deploy_lock.append_log(remote, {**entry, "result": "confirmed"})
        domain = options.domain or steps.site_domain(remote)
        settings = runner_settings(
            run_id, held.token, domain, stage_ca_file(remote, options.ca_file), options
        )
        plan = {
            **settings,
            "kind": "restore",
            "entry": entry,
            "expect_before": state.db_revision,
            "new": None,
            "old": {"name": live.name, "path": live.path, "version": live.version},
            "previous_before": f"{RELEASES_DIR}/{state.previous}" if state.previous else None,
            "prepare": [
                {
                    "do": "restore",
                    "label": f"restore {path} (the app is stopped meanwhile)",
                    "command": backups.restore_command(path, expect, units=""),
                    "lost_since": dump_time(path),
                }
            ],
            "undo_schema": None,
            # Either the restore failed before the swap, or the swap was undone.
            "undone_result": "failed, the database that served before is live",
            # A dump at another revision than the live release needs cannot pass the gate:
            # the operator asked for it and deploys a matching release next.
            "no_gate": expect is None,
        }
        unit = handover.start(remote, run_id, plan, held, echo, "restore")
        handed_over = True  # from here the server finishes the restore, whatever happens here
        entry.update(handover.follow(remote, unit, held, echo, "restore"))
        followed = True
        if entry.get("result") != "ok":
            raise RestoreFailed(
                f"{entry.get('reason')}; undone: " + "; ".join(entry.get("undone", []))
            )
    except RestoreRefused as exc:
        deploy_lock.append_log(remote, {"run": run_id, "result": "refused", "reason": str(exc)})
        raise
    except BaseException as exc:
        if not handed_over:
            result = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            with contextlib.suppress(Exception):
                deploy_lock.append_log(
                    remote, {"run": run_id, "result": result, "reason": f"{exc!r}"[:2000]}
                )
        raise
    finally:
        if not handed_over or followed:
            held.release()
        entry["duration_s"] = round(time.monotonic() - started, 1)
    return entry

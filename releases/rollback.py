"""Plan a rollback from the manifests of two releases and the database's revision.

:func:`plan_rollback` is pure: it reads two release manifests (stored on the server beside
each release) and the revision the database is at, and decides how to get back:

* **code only** — the database is already at the target's revision, or every migration
  between the two only *expanded* the schema in a way the TARGET release's own code
  serves: code written for the older schema keeps working on the newer one, and the
  older release's ``/healthz`` answers 200 with ``schema_state: "ahead"``. Nothing is
  lost, nothing waits on the database.
* **downgrade** — some migration on the path is not known to be compatible with the
  target release (see below) and all of them are reversible: ``alembic downgrade <target
  revision>``, run from the NEWER release's venv (only it has the down scripts), before
  switching.
* **restore backup** — some migration on the path is irreversible: refused unless the
  operator asks for ``--restore-backup``; then the pre-deploy dump of the deploy that
  left the target's schema is restored, and every write since that dump is lost.
* **refused** — anything else (no path between the revisions, the database behind the
  target, the target is what already runs): said plainly, nothing is done.

Which release a migration is compatible with. A migration's author declares
``compatible_with_previous = True`` for an *expand* step (new tables, nullable columns,
indexes): the code of the release before the one that ships it keeps working on it. That
says nothing about older releases: a later migration may drop a column that the release
right before it stopped reading but an older one still reads. So ``invoke release`` pins
"previous" to a version: each migration in a manifest carries ``compatible_with_release``,
the release cut right before the first release that shipped it (None for a contract step,
or when no release came before). The rule is then: **a rollback is code-only only when
every migration between the target's revision and the database's was declared compatible
with the target release itself** — in practice, when all of them were first shipped by the
release cut right after the target. Rolling back two releases across migrations is a
downgrade. A manifest cut before the field existed pins nothing: its migrations never
make a rollback code-only (unknown counts as incompatible, as does a missing flag).

Not "expand": a constraint added ``NOT VALID`` skips the check of existing rows only;
PostgreSQL enforces it on every new write, so old code writing rows that violate it fails.
Such a migration is compatible with old code only if that code never writes such rows.

Why "compatible" is a flag the author sets and not something derived: whether old code
survives a new schema depends on what the old code reads and writes, which no tool can
see from the DDL alone. The migration template asks for expand-then-contract; the flag
records which of the two a migration is.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

if TYPE_CHECKING:
    from releases.inventory import Release
    from releases.inventory import ServerState
    from releases.remote import Remote

CODE_ONLY = "code-only"
DOWNGRADE = "downgrade"
RESTORE_BACKUP = "restore-backup"
REFUSED = "refused"


@dataclass(frozen=True)
class Migration:
    revision: str
    down_revisions: tuple[str, ...]
    irreversible: bool
    compatible_with_previous: bool
    # The release whose code the migration was declared compatible with (the one cut right
    # before the first release that shipped it); None: no release is known to be.
    compatible_with_release: str | None = None

    @classmethod
    def from_manifest(cls, entry: Mapping[str, Any]) -> Migration:
        down = entry.get("down_revision")
        if down is None:
            downs: tuple[str, ...] = ()
        elif isinstance(down, str):
            downs = (down,)
        else:
            downs = tuple(down)
        release = entry.get("compatible_with_release")
        return cls(
            revision=str(entry["revision"]),
            down_revisions=downs,
            irreversible=bool(entry.get("irreversible", False)),
            # Manifests cut before the flag existed say nothing: treat as a contract step.
            compatible_with_previous=bool(entry.get("compatible_with_previous", False)),
            # Manifests cut before the pin existed name no release: compatible with none.
            compatible_with_release=str(release) if release else None,
        )

    def serves(self, version: str) -> bool:
        """Whether the code of the release ``version`` works on the schema after this."""
        return self.compatible_with_previous and self.compatible_with_release == version

    def why_not(self, version: str) -> str:
        if not self.compatible_with_previous:
            return f"{self.revision} changed the schema in a way {version} cannot serve"
        if self.compatible_with_release is None:
            return f"{self.revision} names no release whose code serves it"
        return f"{self.revision} is compatible with {self.compatible_with_release}'s code only"


@dataclass(frozen=True)
class RollbackPlan:
    mode: str
    from_version: str
    to_version: str
    db_revision: str | None
    target_revision: str | None
    # Migrations to undo, newest first (empty for a code-only rollback on the same schema).
    path: tuple[Migration, ...] = ()
    reason: str = ""
    backup: str | None = None
    steps: tuple[str, ...] = field(default=())

    @property
    def refused(self) -> bool:
        return self.mode == REFUSED

    def lines(self) -> list[str]:
        """The plan in words, one line each, for dry runs and for the log."""
        head = f"rollback {self.from_version} -> {self.to_version}: {self.mode}"
        out = [head, f"  why: {self.reason}"]
        if self.path:
            revisions = ", ".join(
                m.revision
                + (" (irreversible)" if m.irreversible else "")
                + ("" if m.compatible_with_previous else " (contract)")
                for m in self.path
            )
            out.append(f"  migrations between: {revisions}")
        out += [f"  - {step}" for step in self.steps]
        return out


def _ancestors(revision: str, graph: Mapping[str, Migration]) -> set[str] | None:
    """``revision`` and every revision below it; None when some revision is unknown."""
    seen: set[str] = set()
    todo = [revision]
    while todo:
        rev = todo.pop()
        if rev in seen:
            continue
        if rev not in graph:
            return None
        seen.add(rev)
        todo.extend(graph[rev].down_revisions)
    return seen


def _graph(manifests: Iterable[Mapping[str, Any]]) -> dict[str, Migration]:
    graph: dict[str, Migration] = {}
    for manifest in manifests:
        for entry in manifest.get("migrations", []):
            migration = Migration.from_manifest(entry)
            graph.setdefault(migration.revision, migration)
    return graph


def plan_rollback(
    current: Mapping[str, Any],
    target: Mapping[str, Any],
    db_revision: str | None,
    *,
    restore_backup: bool = False,
    backup: str | None = None,
) -> RollbackPlan:
    """How to go from the release ``current`` (running, on ``db_revision``) to ``target``.

    ``backup`` is the pre-deploy dump recorded when the database left the target's
    schema (None when no such dump is known); it is used only with ``restore_backup``.
    """
    from_version, to_version = str(current["version"]), str(target["version"])
    target_rev = target.get("alembic_head")
    base: dict[str, Any] = {
        "from_version": from_version,
        "to_version": to_version,
        "db_revision": db_revision,
        "target_revision": target_rev,
    }

    def refuse(reason: str, path: tuple[Migration, ...] = ()) -> RollbackPlan:
        return RollbackPlan(REFUSED, reason=reason, path=path, **base)

    if from_version == to_version and current.get("commit") == target.get("commit"):
        return refuse(f"{to_version} is what runs already")
    switch = f"switch current to {to_version} and restart (connections queue in the socket)"
    verify = f"check /healthz answers {to_version} through nginx over HTTPS"
    if db_revision == target_rev:
        return RollbackPlan(
            CODE_ONLY,
            reason=f"the database is at {target_rev}, the revision {to_version} needs",
            steps=(switch, verify),
            **base,
        )
    if db_revision is None or target_rev is None:
        return refuse(
            f"the database is at {db_revision or 'no revision'} and {to_version} needs "
            f"{target_rev or 'no schema'}: no migration path between them"
        )
    # The newer release's manifest knows the migrations between; the target's may know
    # older ones. Both together are the revision graph.
    graph = _graph([current, target])
    db_ancestors = _ancestors(db_revision, graph)
    if db_ancestors is None:
        return refuse(
            f"the database is at {db_revision}, a revision neither {from_version} nor "
            f"{to_version} knows: plan this rollback by hand"
        )
    target_ancestors = _ancestors(target_rev, graph)
    if target_ancestors is None or target_rev not in db_ancestors:
        if target_ancestors is not None and db_revision in target_ancestors:
            return refuse(
                f"the database ({db_revision}) is older than {to_version} needs "
                f"({target_rev}): that is an upgrade, not a rollback (invoke deploy)"
            )
        return refuse(
            f"{to_version}'s revision {target_rev} is not below the database's "
            f"{db_revision}: no downgrade path"
        )
    undo = db_ancestors - target_ancestors
    path = tuple(
        sorted(
            (graph[rev] for rev in undo),
            # Newest first: a revision comes before everything below it.
            key=lambda m: -len(_ancestors(m.revision, graph) or ()),
        )
    )
    if all(m.serves(to_version) for m in path):
        return RollbackPlan(
            CODE_ONLY,
            path=path,
            reason=(
                f"every migration since {target_rev} only expanded the schema for "
                f"{to_version}'s code: it serves it as it is (healthz: schema_state ahead)"
            ),
            steps=(switch, verify, f"the database stays at {db_revision}"),
            **base,
        )
    irreversible = [m.revision for m in path if m.irreversible]
    if not irreversible:
        return RollbackPlan(
            DOWNGRADE,
            path=path,
            reason=(
                "; ".join(m.why_not(to_version) for m in path if not m.serves(to_version))
                + "; every step back is reversible"
            ),
            steps=(
                f"alembic downgrade {target_rev} from {from_version}'s venv "
                "(it has the down scripts), under the migration advisory lock",
                switch,
                verify,
            ),
            **base,
        )
    if not restore_backup:
        return refuse(
            f"irreversible migration(s) {', '.join(irreversible)} between {target_rev} and "
            f"{db_revision}: the schema cannot be taken back. --restore-backup would restore "
            + (f"the pre-deploy dump {backup}" if backup else "a pre-deploy dump (none known)")
            + " and lose every write made since it",
            path,
        )
    if backup is None:
        return refuse(
            f"irreversible migration(s) {', '.join(irreversible)}, and no pre-deploy dump "
            f"at {target_rev} is recorded in the deploy log: nothing to restore",
            path,
        )
    return RollbackPlan(
        RESTORE_BACKUP,
        path=path,
        backup=backup,
        reason=(
            f"irreversible migration(s) {', '.join(irreversible)}: restoring the dump taken "
            f"before the database left {target_rev}"
        ),
        steps=(
            switch.split(" and restart")[0],
            f"stop the app, restore {backup} (every write since the dump is lost), start it",
            verify,
        ),
        **base,
    )


def backup_for(log: Iterable[Mapping[str, Any]], revision: str | None) -> Mapping[str, Any] | None:
    """The newest deploy-log entry whose pre-deploy dump holds the schema ``revision``."""
    found = None
    for entry in log:
        if (
            entry.get("event") == "deploy"
            and entry.get("backup")
            and entry.get("alembic_before") == revision
        ):
            found = entry
    return found


def migrations_between(
    manifest: Mapping[str, Any], upper: str | None, lower: str | None
) -> list[Migration] | None:
    """The migrations above ``lower`` up to ``upper``, newest first (None: no such path)."""
    if upper == lower:
        return []
    graph = _graph([manifest])
    above = _ancestors(upper, graph) if upper else set()
    below = _ancestors(lower, graph) if lower else set()
    if above is None or below is None or (lower and lower not in above):
        return None
    return sorted(
        (graph[rev] for rev in above - below),
        key=lambda m: -len(_ancestors(m.revision, graph) or ()),
    )


# --- invoke rollback: carry the plan out -----------------------------------------------------


class RollbackRefused(RuntimeError):
    """The rollback was not started; nothing changed. The message says why."""


class RollbackFailed(RuntimeError):
    """The rollback failed and the server was put back on the release it came from."""


@dataclass
class RollbackOptions:
    to: str = ""
    host: str = ""
    repo: Path | None = None
    restore_backup: bool = False
    lock_wait: float = 0.0
    domain: str = ""
    ca_file: str | None = None
    health_timeout: float = 60.0


def dump_time(path: str) -> str:
    """``/srv/tas/backups/tas-20261127T101500Z.dump`` -> ``2026-11-27T10:15:00Z``."""
    match = re.search(r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z", path)
    if not match:
        return "an unknown time"
    y, mo, d, h, mi, se = match.groups()
    return f"{y}-{mo}-{d}T{h}:{mi}:{se}Z"


def deployed_from(log: Iterable[Mapping[str, Any]], release: str) -> str | None:
    """The release that served before ``release`` was deployed (its newest good deploy)."""
    found = None
    for entry in log:
        if (
            entry.get("event") == "deploy"
            and entry.get("release") == release
            and entry.get("result") == "ok"
        ):
            found = entry.get("from_release")
    return str(found) if found else None


def choose_target(state: ServerState, to: str, log: Iterable[Mapping[str, Any]] = ()) -> Release:
    """The release to go back to: ``to``, else the one the current release was deployed
    over (from the deploy log, so a second rollback goes one further back instead of
    returning to the release just rolled away from), else the newest older good one."""
    current = state.current_release
    if current is None:
        raise RollbackRefused("nothing is deployed: no current release")
    if to:
        target = state.find_version(to)
        if target is None:
            known = ", ".join(sorted({r.version for r in state.releases})) or "none"
            raise RollbackRefused(f"no release of {to} on the server (there are: {known})")
        if target.name == current.name:
            raise RollbackRefused(f"{target.name} is what runs already")
        return target
    before = deployed_from(log, current.name)
    candidate = state.release(before) if before else None
    if before and (candidate is None or not candidate.complete):
        raise RollbackRefused(
            f"{current.name} was deployed over {before}, which is no longer on the server: "
            "give --to"
        )
    if candidate is None:
        older = [
            r
            for r in state.releases
            if r.stamp < current.stamp and r.complete and not r.failed and r.manifest
        ]
        candidate = older[-1] if older else None
    if candidate is None or candidate.name == current.name:
        raise RollbackRefused("no previous release on the server to go back to: give --to")
    return candidate


def _plan_for(
    state: ServerState, options: RollbackOptions, log: list[dict[str, Any]]
) -> tuple[Release, Release, RollbackPlan]:
    current = state.current_release
    if current is None:
        raise RollbackRefused("nothing is deployed: no current release")
    if not state.db_ok:
        raise RollbackRefused(
            "the database cannot be read (PostgreSQL down or restarting?): refusing to plan "
            "a rollback without knowing its schema; nothing was changed"
        )
    target = choose_target(state, options.to, log)
    if not current.manifest or not target.manifest:
        missing = current.name if not current.manifest else target.name
        raise RollbackRefused(f"{missing} has no manifest.json on the server: cannot plan")
    found = backup_for(log, target.alembic_head)
    plan = plan_rollback(
        current.manifest,
        target.manifest,
        state.db_revision,
        restore_backup=options.restore_backup,
        backup=str(found["backup"]) if found else None,
    )
    return current, target, plan


def plan_lines(remote: Remote, options: RollbackOptions) -> list[str]:
    """``invoke rollback --dry-run``: the plan and the state it was made from."""
    from releases import lock as deploy_lock
    from releases.inventory import read_state

    state = read_state(remote)
    current, target, plan = _plan_for(state, options, deploy_lock.read_log(remote))
    lines = [
        f"rollback plan for {options.host or 'the server'} (dry run: nothing is changed)",
        f"  current: {current.name} (alembic {current.alembic_head}); database at "
        f"{state.db_revision}",
        f"  target: {target.name} (alembic {target.alembic_head})"
        + (f" -- it FAILED before: {target.failed}" if target.failed else ""),
        f"  lock: {deploy_lock.lock_state(remote).describe()}",
        *("  " + line for line in plan.lines()),
    ]
    if plan.backup and plan.mode in (RESTORE_BACKUP, REFUSED):
        lines.append(
            f"  writes that a restore would lose: everything since {dump_time(plan.backup)}"
        )
    return lines


def run_rollback(
    remote: Remote, options: RollbackOptions, echo: Callable[[str], None] = print
) -> dict[str, Any]:
    """Carry out the plan under the deploy lock, health-gated; returns the log entry.

    Planning happens here, under the lock; what changes the server (downgrade or restore,
    switch, health gate, and going back on a failure) runs on the server by itself
    (:mod:`releases.handover`), so a lost connection or a killed client cannot leave it
    half done.
    """
    from releases import backups
    from releases import handover
    from releases import lock as deploy_lock
    from releases import steps
    from releases.deploy import runner_settings
    from releases.deploy import stage_ca_file
    from releases.deploy import who
    from releases.inventory import read_state

    run = steps.Steps("rollback", echo)
    started = time.monotonic()
    run_id = handover.new_run_id("rollback")
    # The lock first, then one look at the server: what is planned is what runs.
    held = deploy_lock.acquire(
        remote,
        {"who": who(), "pid": os.getpid(), "action": "rollback", "version": options.to or "?"},
        wait=options.lock_wait,
        echo=run.say,
    )
    entry: dict[str, Any] = {
        "run": run_id,
        "event": "rollback",
        "who": who(),
        "host": options.host,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    handed_over = followed = False
    try:
        # Every attempt is on record before anything else happens, refused ones too.
        deploy_lock.append_log(remote, {**entry, "result": "started"})
        with run("plan: read the server and the deploy log") as note:
            state = read_state(remote)
            current, target, plan = _plan_for(state, options, deploy_lock.read_log(remote))
            note["detail"] = f"{current.name} -> {target.name}: {plan.mode}"
        for line in plan.lines():
            run.say(line)
        if plan.refused:
            raise RollbackRefused(plan.reason)
        if plan.mode == RESTORE_BACKUP and plan.backup:
            # Before anything changes: the dump is there, reads to its end, and holds the
            # schema the target release needs.
            try:
                checked = backups.ensure_backup_present(remote, plan.backup, plan.target_revision)
            except backups.BackupUnusable as exc:
                raise RollbackRefused(f"{exc}: nothing was changed") from exc
            revision, entries = checked["revision"], checked["entries"]
            run.say(f"dump checked: {plan.backup} at {revision}, {entries} entries")
        entry.update(
            release=target.name,
            version=target.version,
            commit=(target.manifest or {}).get("commit"),
            artifact_sha256=(target.manifest or {}).get("artifact_sha256"),
            from_release=current.name,
            from_version=current.version,
            mode=plan.mode,
            alembic_before=state.db_revision,
            backup=plan.backup if plan.mode == RESTORE_BACKUP else None,
        )
        deploy_lock.append_log(remote, {**entry, "result": "planned"})
        domain = options.domain or steps.site_domain(remote)
        settings = runner_settings(
            run_id, held.token, domain, stage_ca_file(remote, options.ca_file), options
        )
        runner_plan = {
            **settings,
            **_runner_plan(plan, current, target, state.previous),
            "entry": entry,
        }
        unit = handover.start(remote, run_id, runner_plan, held, echo, "rollback")
        handed_over = True  # from here the server finishes the rollback, whatever happens here
        entry.update(handover.follow(remote, unit, held, echo, "rollback"))
        followed = True
        if entry.get("result") != "ok":
            raise RollbackFailed(
                f"{entry.get('reason')}; undone: " + "; ".join(entry.get("undone", []))
            )
    except RollbackRefused as exc:
        entry.update(result="refused", reason=str(exc))
        deploy_lock.append_log(remote, {"run": run_id, "result": "refused", "reason": str(exc)})
        raise
    except BaseException as exc:
        if not handed_over:
            result = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            reason = f"{type(exc).__name__}: {exc}"[:2000]
            with contextlib.suppress(Exception):
                deploy_lock.append_log(remote, {"run": run_id, "result": result, "reason": reason})
        raise
    finally:
        if not handed_over or followed:
            held.release()
        entry["duration_s"] = round(time.monotonic() - started, 1)
    if options.host and options.repo is not None:
        from releases.deploy import record_deployed

        message = f"{target.version} rolled back to on {options.host} by {entry['who']}"
        entry["git_tag"], said = record_deployed(
            options.repo, options.host, target.version, message
        )
        run.say(said)
    run.say(f"{target.version} is live on {options.host} [{entry['duration_s']:.1f}s]")
    return entry


def _runner_plan(
    plan: RollbackPlan, current: Release, target: Release, previous: str | None
) -> dict[str, Any]:
    """What the server-side runner does for ``plan`` (releases/scripts/runner.py)."""
    from releases import backups
    from releases.inventory import RELEASES_DIR

    prepare: list[dict[str, Any]] = []
    undo: dict[str, str] | None = None
    if plan.mode == DOWNGRADE:
        assert plan.target_revision is not None
        prepare.append(
            {
                "do": "migrate",
                "label": f"alembic downgrade {plan.target_revision} from {current.name}'s venv",
                "release": current.path,
                "action": "downgrade",
                "target": plan.target_revision,
            }
        )
        if current.alembic_head:
            undo = {
                "release": current.path,
                "action": "upgrade",
                "target": current.alembic_head,
                "when": "before-switch-back",
                "words": f"alembic upgrade {current.alembic_head} from {current.name}'s venv",
            }
    elif plan.mode == RESTORE_BACKUP:
        assert plan.backup is not None
        prepare.append(
            {
                "do": "restore",
                "label": f"restore {plan.backup} (the app is stopped meanwhile)",
                "command": backups.restore_command(plan.backup, plan.target_revision, units=""),
                "lost_since": dump_time(plan.backup),
            }
        )
    return {
        "kind": "rollback",
        "expect_before": plan.db_revision,
        "new": {"name": target.name, "path": target.path, "version": target.version},
        "old": {"name": current.name, "path": current.path, "version": current.version},
        "previous_before": f"{RELEASES_DIR}/{previous}" if previous else None,
        "prepare": prepare,
        "undo_schema": undo,
        "undone_result": "failed, back on the release it came from",
    }

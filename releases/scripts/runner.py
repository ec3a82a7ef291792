"""The part of a deploy or rollback that changes what serves, run on the server by itself.

``invoke deploy`` and ``invoke rollback`` prepare everything that cannot hurt (a new
release directory and venv, a plan), then start this script as a transient systemd unit
(``tas-run-<id>``) and follow its progress. From then on the server finishes the job
whatever happens to the operator's machine: a dropped SSH connection, a killed or
interrupted ``invoke`` only stop the *following*; the unit still backs up, migrates,
switches, checks, undoes a failure, writes the deploy log and hands the lock back.

Stdlib only, Python 3.10+, run as root by the server's ``python3``:
``python3 runner.py RUN_DIR`` where ``RUN_DIR/plan.json`` says what to do. It writes

* ``RUN_DIR/progress.jsonl`` — one JSON line per step started/ended or remark (the client
  prints them as they come);
* ``RUN_DIR/result.json`` — the finished log entry, written last;
* lines into the deploy log (``plan["log"]``) with the run's id: one before migrating
  (with the backup's path), one at the end (the client wrote one when it started).

The plan, step by step (``prepare`` runs before the switch; any failure runs the undo):

* ``backup`` — a verified ``pg_dump -Fc`` (the command comes from the plan);
* ``migrate`` — ``migrate.py`` from a release's venv under the migrations' advisory lock,
  refusing unless the database is at the revision the plan was made from;
* ``canary`` — the new release alone on a temporary socket, hardened like the service,
  must answer ``/healthz`` with its version and render the sign-in page;
* then ``current`` (and ``previous``) are switched atomically, the app restarted, and the
  health gate asks nginx over HTTPS for ``/healthz`` and the sign-in page.

The undo puts back the schema (``undo_schema``: before or after switching back, never
below the revision seen under the advisory lock, never to ``base``), the ``current`` and
``previous`` links, restarts and checks the old release.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PAGE_MARK = 'name="csrf_token"'
BACKUP_WARN_HOURS = 36  # the health gate warns when the last good backup is older
PAGE_ERRORS_TO_FAIL = 3  # the gate's early failure: see Runner.gate
MIGRATION_ERROR = "migration failed: "  # migrate.py's one-line reason
# Rows per table, in one statement (query_to_xml runs a count per table).
ROW_COUNTS = """
SELECT table_name || ' ' || (xpath('/row/c/text()', query_to_xml(
  format('SELECT count(*) AS c FROM %I.%I', table_schema, table_name), false, true, '')))[1]::text
FROM information_schema.tables
WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name <> 'alembic_version'
ORDER BY table_name
"""


class StepFailed(RuntimeError):
    """A step failed; the message says why (it becomes the log entry's reason)."""


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# systemd's own exit codes for a process it failed to set up (EXIT_CHDIR … EXIT_CREDENTIALS
# in systemd's exit-status.h): the app's code never ran.
SYSTEMD_OWN_EXIT = (200, 243)
RESTART_RETRY_AFTER = 1.0


def sh(command: str, *, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", "-c", command], capture_output=True, text=True, timeout=timeout, check=False
    )


class Runner:
    def __init__(self, run_dir: Path) -> None:
        self.dir = run_dir
        self.plan: dict[str, Any] = json.loads((run_dir / "plan.json").read_text())
        self.entry: dict[str, Any] = dict(self.plan["entry"])
        self.timings: dict[str, float] = {}
        self.progress = open(run_dir / "progress.jsonl", "a", buffering=1)  # noqa: SIM115
        self.before: str | None = self.plan.get("expect_before")
        self.after: str | None = self.before
        self.switched = False
        self.migrated = False
        self.restored: dict[str, Any] = {}

    # --- reporting ----------------------------------------------------------------------

    def emit(self, **record: Any) -> None:
        self.progress.write(json.dumps(record) + "\n")
        print(json.dumps(record), flush=True)  # the unit's journal keeps it too

    def say(self, text: str) -> None:
        self.emit(t="say", text=text)

    def step(self, name: str, action: Any) -> Any:
        self.emit(t="start", step=name)
        started = time.monotonic()
        detail, ok = "", False
        try:
            result = action()
            detail = result if isinstance(result, str) else ""
            ok = True
            return result
        except Exception as exc:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise
        finally:
            took = round(time.monotonic() - started, 2)
            self.timings[name] = took
            self.emit(t="done", step=name, took=took, detail=detail, ok=ok)

    def log(self, **fields: Any) -> None:
        line = json.dumps({"run": self.plan["run"], **fields}, sort_keys=True) + "\n"
        log = self.plan["log"]
        with open(log, "a") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

    # --- commands -----------------------------------------------------------------------

    def as_app(self, release: str, args: str, *, timeout: float = 900) -> Any:
        """A command as the app user with the service's env file (as systemd parses it)."""
        p = self.plan
        return sh(
            f"systemd-run --wait --pipe --quiet --collect --uid={p['app_user']} "
            f"--gid={p['app_user']} -p EnvironmentFile={p['env_file']} "
            f"-p WorkingDirectory={release} {args} </dev/null",
            timeout=timeout,
        )

    def migrate(
        self, release: str, action: str, target: str, expect: str | None, *, check: bool = True
    ) -> None:
        """``migrate.py`` from ``release``'s venv; with ``check``, only if the database is at
        ``expect`` (None: no revision yet) when the advisory lock is held."""
        script = shlex.quote(str(self.dir / "migrate.py"))
        guard = ""
        if check:
            guard = f"--expect-before {shlex.quote(expect)}" if expect else "--expect-none"
        args = f"{release}/venv/bin/python {script} {action} {shlex.quote(target)} {guard}"
        result = self.as_app(release, args)
        reported = _last_json(result.stdout)
        if reported is not None:
            self.after = reported.get("after")
        if result.returncode == 3:
            self.migrated = False  # refused under the lock: nothing was changed
            raise StepFailed(result.stderr.strip() or "the database moved since the plan")
        if result.returncode != 0:
            if reported is None:
                self.after = self.read_revision()
            print(result.stderr, flush=True)  # the whole story, for the journal
            plain = [
                line for line in result.stderr.splitlines() if line.startswith(MIGRATION_ERROR)
            ]
            why = plain[-1] if plain else result.stderr.strip()[-1500:]
            raise StepFailed(f"alembic {action} {target} failed: {why}")

    def read_revision(self, wait: float = 60) -> str | None:
        """The database's revision now; waits while PostgreSQL is restarting."""
        deadline = time.monotonic() + wait
        while True:
            result = sh(
                f"runuser -u postgres -- psql -X -qtA -d {self.plan['database']} "
                "-c 'SELECT version_num FROM alembic_version'"
            )
            if result.returncode == 0:
                return result.stdout.strip() or None
            if time.monotonic() > deadline:
                return self.after
            time.sleep(1)

    def switch(self, path: str, previous: str | None) -> None:
        for link, target in (
            (self.plan["current_link"], path),
            (self.plan["previous_link"], previous),
        ):
            if target:
                q = shlex.quote(link)
                checked(sh(f"ln -sfn {shlex.quote(target)} {q}.tas-new && mv -T {q}.tas-new {q}"))
            else:
                sh(f"rm -f {shlex.quote(link)}")

    def switch_and_restart(self, path: str, previous: str | None) -> str:
        """Both links, then ``systemctl restart`` (tas.socket queues connections meanwhile);
        returns "" or why the restart failed."""
        self.switch(path, previous)
        return self.restart()

    def restart(self) -> str:
        """``systemctl restart tas.service``; "" or why it failed, with what the app said.

        When systemd itself failed to start the process (its own exit codes, such as
        219/CGROUP while the old process's control group is still being removed), the
        app never ran: one more try after a pause, said in the progress, before giving up.
        """
        since = time.strftime("%Y-%m-%d %H:%M:%S")
        command = "systemctl reset-failed tas.service 2>/dev/null; systemctl restart tas.service"
        result = sh(command)
        if result.returncode != 0:
            status = sh("systemctl show -p ExecMainStatus --value tas.service").stdout.strip()
            if status.isdigit() and SYSTEMD_OWN_EXIT[0] <= int(status) <= SYSTEMD_OWN_EXIT[1]:
                self.say(
                    f"systemd could not start tas.service (exit status {status}, its own, "
                    f"before the app ran); trying once more in {RESTART_RETRY_AFTER:g} s"
                )
                time.sleep(RESTART_RETRY_AFTER)
                result = sh(command)
        if result.returncode == 0:
            return ""
        said = sh(f"journalctl -u tas.service --since '{since}' -n 12 --no-pager -o cat").stdout
        return "\n".join(
            part for part in ((result.stderr or result.stdout).strip(), said.strip()) if part
        )

    # --- health -------------------------------------------------------------------------

    def curl(self, path: str, *, socket: str = "") -> tuple[int, str, int]:
        domain = self.plan["gate"]["domain"]
        if socket:
            where = f"--unix-socket {socket} -H 'X-Forwarded-Proto: https' http://{domain}{path}"
        else:
            cacert = self.plan["gate"].get("cacert")
            ca = f"--cacert {shlex.quote(cacert)}" if cacert else ""
            where = f"--resolve {domain}:443:127.0.0.1 {ca} https://{domain}{path}"
        result = sh(f"curl -sS --max-time 5 -w '\\n%{{http_code}}' {where}", timeout=30)
        body, _, code = result.stdout.rpartition("\n")
        return (int(code) if code.strip().isdigit() else 0), body, result.returncode

    def check(self, version: str, socket: str = "") -> dict[str, Any]:
        """``/healthz`` answers ``version`` and the sign-in page renders."""
        health = judge(*self.curl("/healthz", socket=socket), version)
        if health["ok"]:
            page_status, page, _ = self.curl(self.plan["gate"]["page"], socket=socket)
            health["page"] = page_status
            if not renders(page_status, page):
                health["ok"] = False
                health["detail"] = (
                    f"{self.plan['gate']['page']} does not render (HTTP {page_status})"
                )
        return health

    def gate(self, version: str) -> dict[str, Any]:
        """Two good answers in a row through nginx over HTTPS, within the timeout.

        Gives up early when the release answers ``/healthz`` with its version but its page
        fails with HTTP 500 ``PAGE_ERRORS_TO_FAIL`` times in a row: the app is up and
        talking to its database, so the error is its own and waiting will not mend it;
        the site should go back to the old release now, not after the whole timeout.
        (A 502/504 from nginx, or no answer, is a release still starting: waited for.)
        """
        deadline = time.monotonic() + float(self.plan["gate"]["timeout"])
        restarts = _restarts()
        good = page_errors = 0
        while True:
            health = self.check(version)
            good = good + 1 if health["ok"] else 0
            if good >= 2:
                return health
            page_errors = page_errors + 1 if health.get("page") == 500 else 0
            if page_errors >= PAGE_ERRORS_TO_FAIL:
                health["detail"] += (
                    f"; {page_errors} answers in a row: the release is up (its /healthz is"
                    " healthy) and its page fails, so the gate did not wait for its timeout"
                )
                return health
            if not health["ok"] and _restarts() > restarts:
                log = sh("journalctl -u tas.service -n 8 --no-pager -o cat").stdout.strip()
                health["detail"] += f"; tas.service crashed and was restarted by systemd:\n{log}"
                return health
            if time.monotonic() > deadline:
                return health
            time.sleep(0.3 if health["ok"] else 0.5)

    def canary(self) -> str:
        p, new = self.plan, self.plan["new"]
        unit, socket = p["canary"]["unit"], p["canary"]["socket"]
        sh(f"systemctl stop {unit} 2>/dev/null; systemctl reset-failed {unit} 2>/dev/null")
        hardening = " ".join(f"-p {shlex.quote(prop)}" for prop in p["canary"]["hardening"])
        python = f"{new['path']}/venv/bin/python"
        checked(
            sh(
                f"systemd-run --unit={unit} --collect --uid={p['app_user']} "
                f"--gid={p['app_user']} -p EnvironmentFile={p['env_file']} "
                f"-p RuntimeDirectory={unit} -p WorkingDirectory={new['path']} {hardening} "
                f"{python} -m gunicorn -c python:service.gunicorn_conf "
                f"--bind unix:{socket} --workers 1 --chdir {new['path']} "
                f"--control-socket /run/{unit}/gunicorn.ctl service.wsgi:app"
            )
        )
        deadline = time.monotonic() + float(p["gate"]["timeout"])
        try:
            while True:
                health = self.check(new["version"], socket=socket)
                if health["ok"] or health["http"]:
                    break
                state = sh(f"systemctl is-active {unit}").stdout.strip()
                if state not in ("active", "activating") or time.monotonic() > deadline:
                    log = sh(f"journalctl -u {unit} -n 12 --no-pager -o cat").stdout.strip()
                    health["detail"] = f"the canary did not answer (unit {state}):\n{log}"
                    break
                time.sleep(0.4)
        finally:
            sh(f"systemctl stop {unit} 2>/dev/null")
        self.entry["canary"] = health
        if not health["ok"]:
            raise StepFailed(f"the canary failed: {explain(health)}")
        return summary(health)

    # --- the run ------------------------------------------------------------------------

    def forward(self) -> None:
        p = self.plan
        new, old = p["new"], p["old"]
        for item in p["prepare"]:
            kind = item["do"]
            if kind == "backup":
                self.step(item["label"], lambda item=item: self.backup(item))
            elif kind == "migrate":
                self.step(item["label"], lambda item=item: self.migrate_step(item))
            elif kind == "restore":
                self.step(item["label"], lambda item=item: self.restore(item))
            elif kind == "canary":
                self.step("canary: the new release alone on a temporary socket", self.canary)
        if new:
            self.switched = True
            failure = self.step(
                f"switch current -> {new['name']} and restart",
                lambda: self.switch_and_restart(new["path"], old["path"] if old else None),
            )
        else:
            # A restore: the release that served goes on serving, on the restored database.
            new = old
            failure = self.step("start the app again", self.restart)
        url = f"https://{p['gate']['domain']}/healthz"
        if p.get("no_gate"):
            self.say("no health gate: the database is not at the revision this release needs")
            if failure:
                raise StepFailed(f"restart failed: {failure}")
            return

        def gate() -> str:
            if failure:
                health = {
                    "ok": False,
                    "http": 0,
                    "body": {},
                    "detail": f"restart failed: {failure}",
                }
            else:
                health = self.gate(new["version"])
            self.entry["health"] = health
            if not health["ok"]:
                raise StepFailed(f"the health gate failed: {explain(health)}")
            body = health.get("body")
            warning = backup_warning(body if isinstance(body, dict) else {})
            if warning:
                self.say(warning)
            return summary(health)

        self.step(f"health gate: {url} must answer {new['version']}", gate)

    def backup(self, item: dict[str, Any]) -> str:
        result = sh(item["command"])
        if result.returncode != 0:
            raise StepFailed(f"the backup failed:\n{(result.stderr or result.stdout)[-2000:]}")
        dump = result.stdout.strip().splitlines()[-1]
        listing = sh(f"pg_restore --list {shlex.quote(dump)}")
        if listing.returncode != 0:
            raise StepFailed(f"the backup {dump} cannot be read: {listing.stderr.strip()}")
        entries = sum(1 for line in listing.stdout.splitlines() if line and line[0] != ";")
        self.entry.update(backup=dump, backup_entries=entries)
        # Written before migrating: whatever happens next, the dump's path is on record.
        self.log(event=self.entry["event"], result="migrating", backup=dump, at=now())
        return f"{dump} ({entries} entries)"

    def psql(self, sql: str, database: str = "") -> subprocess.CompletedProcess[str]:
        db = shlex.quote(database or self.plan["database"])
        return sh(
            f"runuser -u postgres -- psql -X -qtA -v ON_ERROR_STOP=1 -d {db} -c {shlex.quote(sql)}"
        )

    def row_counts(self) -> dict[str, int]:
        counts = {}
        for line in self.psql(ROW_COUNTS).stdout.splitlines():
            name, _, count = line.partition(" ")
            if count.strip().isdigit():
                counts[name] = int(count)
        return counts

    def restore(self, item: dict[str, Any]) -> str:
        """The dump into a new database, swapped in while the app is stopped; the switch
        that follows starts the target release on it. On a failure the live database is
        untouched and the app is started again on the code that served it."""
        before = self.row_counts()
        sh("systemctl stop tas.socket tas.service")
        self.migrated = True  # the schema changes here, not by a migration
        result = sh(item["command"], timeout=3600)
        reported = _last_json(result.stdout)
        if result.returncode != 0 or reported is None:
            sh("systemctl start tas.socket tas.service")
            self.migrated = False
            why = (result.stderr or result.stdout).strip()[-2000:]
            raise StepFailed(f"the restore failed, nothing was replaced:\n{why}")
        self.restored = reported
        self.after = reported.get("revision")
        after: dict[str, int] = reported.get("row_counts") or {}  # the script counted them
        lost = {t: before[t] - after.get(t, 0) for t in before if before[t] != after.get(t)}
        self.entry.update(
            lost_rows=lost,
            lost_since=item["lost_since"],
            restored=reported,
        )
        counts = ", ".join(f"{t} {before[t]} -> {after.get(t, 0)}" for t in sorted(lost))
        return f"writes since {item['lost_since']} are gone; rows per table, before -> after: " + (
            counts or "no difference in row counts"
        )

    def swap_back(self) -> str:
        """Undo a restore: the replaced database becomes the live one again."""
        replaced = self.restored.get("replaced_database")
        if not replaced:
            raise StepFailed("the restore kept no replaced database to go back to")
        live = self.plan["database"]
        failed = f"{live}_failed_{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
        sh("systemctl stop tas.socket tas.service")
        checked(
            self.psql(
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = '{live}' AND pid <> pg_backend_pid()",
                "postgres",
            )
        )
        checked(
            self.psql(
                f'BEGIN; ALTER DATABASE "{live}" RENAME TO "{failed}"; '
                f'ALTER DATABASE "{replaced}" RENAME TO "{live}"; COMMIT;',
                "postgres",
            )
        )
        self.after = self.read_revision()
        return f"database {replaced} is live again (the restored one kept as {failed})"

    def migrate_step(self, item: dict[str, Any]) -> str:
        self.migrated = True
        self.migrate(item["release"], item["action"], item["target"], self.before)
        return f"database at {self.after}"

    def undo(self, reason: str) -> list[str]:
        p, new, old = self.plan, self.plan["new"], self.plan["old"]
        self.say(f"FAILED: {reason}")
        done: list[str] = []
        schema: dict[str, str] = p.get("undo_schema") or {}
        moved = self.migrated and self.after != self.before
        fix_schema = bool(schema) and moved and self.after != "unknown" and not self.restored

        def do(words: str, action: Any) -> None:
            try:
                self.step(f"undo: {words}", action)
                done.append(words)
            except (StepFailed, subprocess.SubprocessError, OSError) as exc:
                done.append(f"{words} -- FAILED: {exc}")

        def schema_back() -> str:
            # "@before": the revision seen under the advisory lock when migrating, never
            # anything below it, and never base (there is no schema undo without one).
            target = self.before if schema["target"] == "@before" else schema["target"]
            if not target:
                raise StepFailed("no revision to go back to: the schema stays as it is")
            self.migrate(schema["release"], schema["action"], target, None, check=False)
            return f"database at {self.after}"

        first = fix_schema and (schema["when"] == "before-switch-back" or not self.switched)
        if first:
            do(schema["words"], schema_back)
        if self.restored:
            do("put the replaced database back", self.swap_back)

        def verify() -> str:
            health = self.gate(old["version"])
            self.entry["rollback_health"] = health
            if not health["ok"]:
                raise StepFailed(explain(health))
            return summary(health)

        if self.restored and not self.switched and old:

            def restart_and_check() -> str:
                failure = self.restart()
                if failure:
                    raise StepFailed(f"restart failed: {failure}")
                return verify()

            do(f"start {old['name']} again and check it answers", restart_and_check)
        if self.switched and old:
            do(
                f"switch current back to {old['name']} and restart",
                lambda: self.switch_and_restart(old["path"], p.get("previous_before")),
            )
            do(f"check /healthz answers {old['version']} through nginx", verify)
        elif self.switched:
            done.append("no previous release to go back to")
        if fix_schema and not first:
            do(schema["words"], schema_back)
        if moved and not schema and not self.restored:
            done.append(
                f"the schema stays at {self.after}: a migration on the way cannot be "
                "undone here (the pre-deploy backup can be restored)"
            )
        if not done:
            done.append(f"nothing to undo: {old['name'] if old else 'nothing'} serves")
        if p["kind"] == "deploy" and new:
            mark = Path(new["path"]) / p["failed_mark"]
            mark.write_text(reason.strip().splitlines()[0][:300] + "\n")
        return done

    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        try:
            self.forward()
            self.entry["result"] = "ok"
            if self.plan.get("deploy_json"):
                info = {**self.plan["deploy_json"], "deployed_at": now()}
                info.update(alembic_before=self.before, alembic_after=self.after)
                info["backup"] = self.entry.get("backup")
                target = Path(self.plan["new"]["path"]) / "deploy.json"
                target.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        except Exception as exc:  # noqa: BLE001 - whatever failed is undone and logged
            reason = str(exc).strip() or type(exc).__name__
            if not isinstance(exc, StepFailed):
                reason = f"{type(exc).__name__}: {reason}"
            undone = self.undo(reason)
            failed = any("FAILED" in line for line in undone)
            self.entry.update(
                result="undo FAILED" if failed else self.plan["undone_result"],
                reason=reason,
                undone=undone,
            )
        self.entry.update(
            alembic_before=self.before,
            alembic_after=self.read_revision(wait=30) if self.migrated else self.after,
            steps={**self.entry.get("steps", {}), **self.timings},
            server_duration_s=round(time.monotonic() - started, 1),
            finished_at=now(),
        )
        self.log(**self.entry)
        (self.dir / "result.json.tmp").write_text(json.dumps(self.entry))
        os.replace(self.dir / "result.json.tmp", self.dir / "result.json")
        self.emit(t="end", result=self.entry["result"])
        self.hand_back_lock()
        return self.entry

    def hand_back_lock(self) -> None:
        """Free the lock when nobody follows any more (the client is gone or detached);
        a client still following frees it itself after its cleanup."""
        lock = Path(self.plan["lock"]["dir"])
        try:
            info = (lock / "info.json").read_text()
        except OSError:
            return
        if self.plan["lock"]["token"] not in info:
            return
        if (lock / "detached").exists() or not _session_alive(lock / "session"):
            sh(f"rm -rf {shlex.quote(str(lock))}")


def judge(status: int, text: str, curl_exit: int, version: str) -> dict[str, Any]:
    """A /healthz answer: healthy only with HTTP 200, status ok and ``version``."""
    try:
        body = json.loads(text) if text.strip() else {}
    except ValueError:
        body = {}
    health: dict[str, Any] = {"ok": False, "http": status, "body": body, "detail": ""}
    if status == 0 or curl_exit not in (0, 22):
        health["detail"] = f"no answer (curl exit {curl_exit})"
    elif status != 200 or body.get("status") != "ok":
        health["detail"] = "unhealthy"
    elif body.get("version") != version:
        health["detail"] = f"answers version {body.get('version')}"
    else:
        health["ok"] = True
    return health


def renders(status: int, page: str) -> bool:
    """A real page came back whole: HTTP 200, its form (with a CSRF field), its end."""
    return status == 200 and PAGE_MARK in page and "</html>" in page


def _session_alive(session: Path) -> bool:
    try:
        pid, start = session.read_text().split()
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(") ", 1)[1].split()[19] == start
    except (OSError, ValueError, IndexError):
        return False


def _restarts() -> int:
    out = sh("systemctl show -p NRestarts --value tas.service").stdout.strip()
    return int(out) if out.isdigit() else 0


def _last_json(text: str) -> dict[str, Any] | None:
    for line in reversed(text.strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def checked(result: subprocess.CompletedProcess[str]) -> None:
    if result.returncode != 0:
        raise StepFailed((result.stderr or result.stdout).strip() or "command failed")


def backup_warning(body: dict[str, Any]) -> str | None:
    """A warning (never a failure) when /healthz says the last good backup is too old."""
    if "backup_age_hours" not in body:
        return None  # an app that does not report it (older release, no status file set)
    age = body["backup_age_hours"]
    if age is None:
        return (
            "WARNING: no good backup is recorded on this server yet "
            "(invoke backup takes one now; the nightly timer should)"
        )
    if float(age) > BACKUP_WARN_HOURS:
        return (
            f"WARNING: the last good backup is {float(age):.0f} hours old (more than "
            f"{BACKUP_WARN_HOURS}): check tas-backup.service (journalctl -t tas-alert) and "
            "run invoke backup"
        )
    return None


def summary(health: dict[str, Any]) -> str:
    body = health.get("body") or {}
    if body:
        keys = ("status", "version", "schema", "schema_state", "reason")
        shown = ", ".join(f"{k}={body[k]}" for k in keys if k in body)
        page = f", page HTTP {health['page']}" if "page" in health else ""
        return f"HTTP {health['http']} ({shown}{page})"
    detail = str(health.get("detail") or "").strip()
    first = detail.splitlines()[0] if detail else "no answer"
    return f"HTTP {health['http'] or '-'} ({first.rstrip(':')})"


def explain(health: dict[str, Any]) -> str:
    detail = str(health.get("detail") or "").strip()
    rest = detail.splitlines()[1:] if not health.get("body") else []
    head = summary(health)
    if health.get("body") and detail:
        head += f": {detail.splitlines()[0]}"
    return "\n".join([head, *rest])


if __name__ == "__main__":
    entry = Runner(Path(sys.argv[1])).run()
    sys.exit(0 if entry["result"] == "ok" else 1)

"""The restore script and the backup script, run as programs against a real PostgreSQL.

``releases/scripts/tas_restore.py`` (installed as /usr/local/sbin/tas-restore) and
``releases/templates/tas-backup.sh`` (rendered as provisioning renders it) run here with
options pointing them at a database of the test's own, owned by a role of its own (as the
server's ``tas`` database is owned by ``tas``), a temporary backup folder and no systemd
units; the client tools run directly with PGHOST/PGUSER from the environment. Each test
drops every database and role it made.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from db import migrate
from releases.remote import render

ROOT = Path(__file__).resolve().parents[2]
RESTORE = ROOT / "releases" / "scripts" / "tas_restore.py"
DUMP = ROOT / "releases" / "scripts" / "tas_dump.py"
# The server runs it with the system python3: only the standard library is there.
PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
FIRST = "0001"


@dataclass
class Live:
    """The "live" database of one test, its owner role, its backup folder."""

    name: str
    role: str
    admin_url: str
    env: dict[str, str]
    backups: Path
    scripts: Path

    @property
    def url(self) -> str:
        """As the app connects: its own role (SQLAlchemy URL, for Alembic)."""
        return (
            make_url(self.admin_url)
            .set(drivername="postgresql+psycopg", username=self.role, password=None)
            .set(database=self.name)
            .render_as_string(hide_password=False)
        )

    def connect(self, database: str | None = None, *, admin: bool = False) -> psycopg.Connection:
        url = make_url(self.admin_url).set(database=database or self.name)
        if not admin:
            url = url.set(username=self.role, password=None)
        return psycopg.connect(url.render_as_string(hide_password=False), autocommit=True)

    def query(self, sql: str, database: str | None = None) -> list[tuple[Any, ...]]:
        with self.connect(database) as conn:
            cursor = conn.execute(sql)
            return cursor.fetchall() if cursor.description else []

    def admin(self, sql: str) -> list[tuple[Any, ...]]:
        with self.connect("postgres", admin=True) as conn:
            cursor = conn.execute(sql)
            return cursor.fetchall() if cursor.description else []

    def databases(self) -> set[str]:
        rows = self.admin("SELECT datname FROM pg_database")
        return {name for (name,) in rows if name == self.name or name.startswith(self.name + "_")}

    def state(self, database: str | None = None) -> dict[str, Any]:
        """What an operator would compare: revision, people, tables, the trigger function."""
        db = database or self.name
        return {
            "revision": [r for (r,) in self.query("SELECT version_num FROM alembic_version", db)],
            "users": [u for (u,) in self.query("SELECT username FROM users ORDER BY 1", db)],
            "tables": sorted(
                t
                for (t,) in self.query(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public'", db
                )
            ),
            "functions": [
                f
                for (f,) in self.query(
                    "SELECT proname FROM pg_proc WHERE proname = 'bump_data_version'", db
                )
            ],
        }

    def add_user(self, name: str) -> None:
        self.query(f"INSERT INTO users (username, signin_key_hash) VALUES ('{name}', 'x')")

    def files(self) -> set[str]:
        return {p.name for p in self.backups.iterdir()}

    def restore(self, dump: str | Path, *options: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                PYTHON,
                "-I",
                str(RESTORE),
                f"--database={self.name}",
                f"--app-role={self.role}",
                f"--backup-dir={self.backups}",
                "--units=",
                "--app-user=",
                "--admin-user=",
                *options,
                str(dump),
            ],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )

    def restored(self, dump: str | Path, *options: str) -> dict[str, Any]:
        result = self.restore(dump, *options)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout.strip().splitlines()[-1])

    def backup(
        self, *args: str, keep: int = 14, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """tas-backup as provisioning renders it, for this test's database and folder."""
        script = self.scripts / f"tas-backup-keep{keep}"
        script.write_text(
            render(
                "tas-backup.sh",
                backup_dir=self.backups,
                backup_keep=keep,
                database=self.name,
                dump_script=f"{PYTHON} -I {DUMP}",
                status_file=self.backups / "last-ok",
                offsite_keep_daily=14,
                offsite_keep_weekly=8,
                offsite_keep_monthly=6,
            )
        )
        env = {**self.env, "PGUSER": self.role, **(env or {})}
        return subprocess.run(
            ["sh", str(script), *args], env=env, capture_output=True, text=True, check=False
        )

    def nightly(self) -> Path:
        result = self.backup()
        assert result.returncode == 0, result.stderr
        return Path(result.stdout.strip().splitlines()[0])


def _libpq_env(url: str) -> dict[str, str]:
    parsed = make_url(url)
    env = {**os.environ, "PGUSER": parsed.username or "postgres", "PGDATABASE": "postgres"}
    host = parsed.host or str(parsed.query.get("host", ""))
    if host:
        env["PGHOST"] = host
    if parsed.port:
        env["PGPORT"] = str(parsed.port)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    return env


@pytest.fixture
def live(pg_server, tmp_path: Path) -> Iterator[Live]:
    name = f"tas_rs_{uuid.uuid4().hex[:8]}"
    site = Live(
        name=name,
        role=f"{name}_app",
        admin_url=make_url(pg_server.url).set(drivername="postgresql").render_as_string(False),
        env=_libpq_env(pg_server.url),
        backups=tmp_path / "backups",
        scripts=tmp_path,
    )
    site.backups.mkdir()
    site.admin(f'CREATE ROLE "{site.role}" LOGIN')
    site.admin(f'CREATE DATABASE "{name}" OWNER "{site.role}"')
    try:
        yield site
    finally:
        for database in site.databases():
            site.admin(f'DROP DATABASE "{database}" WITH (FORCE)')
        for (role,) in site.admin(f"SELECT rolname FROM pg_roles WHERE rolname LIKE '{name}%'"):
            site.admin(f'DROP ROLE "{role}"')


@pytest.fixture
def old_dump(live: Live) -> Path:
    """The reported case: a dump at 0001 (ann, bob, a task), then the database moves on
    to the newest schema (page_cache, the trigger function) and cy signs up."""
    migrate.upgrade(live.url, FIRST)
    live.add_user("ann")
    live.add_user("bob")
    live.query(
        "INSERT INTO tasks (user_id, name) SELECT id, 'Taxes' FROM users WHERE username = 'ann'"
    )
    dump = live.nightly()
    migrate.upgrade(live.url)
    live.add_user("cy")
    return dump


def _dump_tables(live: Live, dump: Path) -> set[str]:
    """The tables a dump holds (its table of contents: ``... TABLE public <name> <owner>``)."""
    listing = subprocess.run(
        ["pg_restore", "--list", str(dump)], env=live.env, capture_output=True, text=True
    )
    return {line.split()[5] for line in listing.stdout.splitlines() if " TABLE public " in line}


def test_a_dump_from_before_later_migrations_restores_exactly_its_schema(live: Live, old_dump):
    head = migrate.head_revision()
    before = live.state()
    assert before["revision"] == [head] and "page_cache" in before["tables"]
    # What the old restore did fails on this very dump (the bug this restore fixes).
    clean = subprocess.run(
        ["pg_restore", "--clean", "--if-exists", "--single-transaction", "--exit-on-error",
         f"--dbname={live.name}", str(old_dump)],
        env=live.env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    # A later table's key to an older one (which one comes first depends on the schema).
    assert clean.returncode != 0 and "cannot drop constraint" in clean.stderr
    app_pool = live.connect()  # a connection the app left open: it must not block the swap

    out = live.restored(old_dump, f"--expect-revision={FIRST}")

    assert out["revision"] == FIRST and out["dump"] == str(old_dump)
    assert out["row_counts"]["users"] == 2 and out["row_counts"]["tasks"] == 1
    after = live.state()
    assert after["revision"] == [FIRST]
    assert after["users"] == ["ann", "bob"]
    assert "page_cache" not in after["tables"] and after["functions"] == []
    # Exactly the dump's tables: none that a later migration made is left behind.
    assert set(after["tables"]) == _dump_tables(live, old_dump)
    assert {"page_cache", "notes"} <= set(before["tables"]) - set(after["tables"])
    owner = live.admin(
        f"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{live.name}'"
    )
    assert owner == [(live.role,)]
    # The replaced database is kept as it was; no restore database is left behind.
    assert live.databases() == {live.name, out["replaced_database"]}
    assert live.state(out["replaced_database"]) == before
    with pytest.raises(psycopg.OperationalError):
        app_pool.execute("SELECT 1")
    app_pool.close()

    migrate.upgrade(live.url)
    assert live.state()["revision"] == [head]
    assert live.state()["users"] == ["ann", "bob"]


def test_a_dump_at_another_revision_is_refused_and_nothing_changes(live: Live, old_dump):
    head = migrate.head_revision()
    before, files = live.state(), live.files()

    result = live.restore(old_dump.name, f"--expect-revision={head}")

    assert result.returncode == 2
    assert f"holds revision {FIRST}, not {head}" in result.stderr
    assert "nothing changed" in result.stderr
    assert live.state() == before
    assert live.databases() == {live.name}
    assert live.files() == files


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("cut short after its table of contents", "is damaged"),
        ("not a dump at all", "is not a dump pg_restore can read"),
        ("outside the backup folder", "is not in the backup folder"),
        ("missing", "no dump"),
    ],
)
def test_a_damaged_or_misplaced_dump_is_refused_before_anything_changes(
    live: Live, old_dump: Path, damage: str, message: str
):
    data = old_dump.read_bytes()
    dump = live.backups / "tas-20260101T000000Z.dump"
    if damage == "cut short after its table of contents":
        dump.write_bytes(data[:-16])
        listing = subprocess.run(["pg_restore", "--list", str(dump)], capture_output=True)
        assert listing.returncode == 0, "the damage must be one --list alone misses"
    elif damage == "not a dump at all":
        dump.write_text("PGDMP? no: a text file with the right name\n")
    elif damage == "outside the backup folder":
        dump = live.scripts / old_dump.name
        dump.write_bytes(data)
    else:
        dump = live.backups / "tas-20250101T000000Z.dump"
    before, files = live.state(), live.files()

    result = live.restore(dump)

    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "nothing changed" in result.stderr
    assert live.state() == before
    assert live.databases() == {live.name}
    assert live.files() == files


def test_a_second_restore_while_one_runs_is_refused(live: Live, old_dump: Path):
    before, files = live.state(), live.files()
    running = os.open(live.backups, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(running, fcntl.LOCK_EX)  # what a running restore holds
    try:
        result = live.restore(old_dump)
    finally:
        os.close(running)

    assert result.returncode == 2
    assert "another restore is running" in result.stderr
    assert live.state() == before and live.files() == files
    assert live.databases() == {live.name}


def test_a_restore_that_fails_half_way_leaves_the_live_database_alone(live: Live):
    """A dump that grants to a role the server no longer has: readable, its revision right,
    but pg_restore fails at its last step, after every table and row was loaded."""
    source, ghost = f"{live.name}_src", f"{live.name}_ghost"
    live.admin(f'CREATE DATABASE "{source}" OWNER "{live.role}"')
    live.admin(f'CREATE ROLE "{ghost}"')
    source_url = make_url(live.url).set(database=source).render_as_string(False)
    migrate.upgrade(source_url, FIRST)
    live.query("INSERT INTO users (username, signin_key_hash) VALUES ('old', 'x')", source)
    live.query(f'GRANT SELECT ON users TO "{ghost}"', source)
    dump = live.backups / "tas-20260101T000000Z.dump"
    subprocess.run(
        ["pg_dump", "--format=custom", f"--dbname={source}", f"--file={dump}"],
        env=live.env,
        check=True,
    )
    live.admin(f'DROP DATABASE "{source}"')
    live.admin(f'DROP ROLE "{ghost}"')
    migrate.upgrade(live.url)
    live.add_user("ann")
    before, files = live.state(), live.files()

    result = live.restore(dump, f"--expect-revision={FIRST}")

    assert result.returncode == 1
    assert f'role "{ghost}" does not exist' in result.stderr
    assert f"{live.name} and the app were not touched" in result.stderr
    assert live.state() == before
    assert live.databases() == {live.name}
    assert live.files() == files


def test_the_safety_dump_brings_back_what_a_restore_replaced(live: Live, old_dump: Path):
    head = migrate.head_revision()
    before = live.state()

    first = live.restored(old_dump)

    safety = Path(first["safety_dump"])
    assert safety.parent == live.backups
    assert re.fullmatch(r"tas-pre-restore-\d{8}T\d{6}Z\.dump", safety.name)
    assert live.state()["users"] == ["ann", "bob"]

    second = live.restored(safety.name, f"--expect-revision={head}")

    assert second["revision"] == head
    assert live.state() == before
    # Only the newest replaced database is kept: the first restore's was dropped.
    assert live.databases() == {live.name, second["replaced_database"]}
    assert live.state(second["replaced_database"])["users"] == ["ann", "bob"]
    assert first["safety_dump"] != second["safety_dump"]
    assert Path(second["safety_dump"]).exists() and safety.exists()


def test_a_restore_creates_the_database_when_it_is_gone(live: Live, old_dump: Path):
    live.admin(f'DROP DATABASE "{live.name}" WITH (FORCE)')

    out = live.restored(old_dump)

    assert out["safety_dump"] is None and out["replaced_database"] is None
    assert live.state()["users"] == ["ann", "bob"]
    assert live.databases() == {live.name}


def test_nightly_retention_prunes_only_nightly_dumps(live: Live):
    migrate.upgrade(live.url)
    made = live.backup("predeploy", "0.2.0-20261127T101500Z")
    assert made.returncode == 0, made.stderr
    predeploy = Path(made.stdout.strip())
    assert re.fullmatch(
        r"tas-predeploy-\d{8}T\d{6}Z-0\.2\.0-20261127T101500Z\.dump", predeploy.name
    )
    # Older dumps of every kind (copies of a real one, named as each kind is).
    older = [
        "tas-20200101T000000Z.dump",
        "tas-20200102T000000Z.dump",
        "tas-20200103T000000Z.dump",
        "tas-predeploy-20200101T000000Z-0.1.0-20191231T000000Z.dump",
        "tas-pre-restore-20200101T000000Z.dump",
    ]
    for name in older:
        shutil.copyfile(predeploy, live.backups / name)

    result = live.backup(keep=2)

    assert result.returncode == 0, result.stderr
    nightly = Path(result.stdout.strip().splitlines()[0])
    assert re.fullmatch(r"tas-\d{8}T\d{6}Z\.dump", nightly.name)
    assert live.files() == {
        "tas-20200103T000000Z.dump",
        nightly.name,
        f"{nightly.name}.counts.json",
        "last-ok",
        predeploy.name,
        f"{predeploy.name}.counts.json",
        "tas-predeploy-20200101T000000Z-0.1.0-20191231T000000Z.dump",
        "tas-pre-restore-20200101T000000Z.dump",
    }
    # The new dumps are real: the restore script reads their revision.
    for dump in (nightly, predeploy):
        check = live.restore(dump, "--check")
        assert check.returncode == 0, check.stderr
        assert json.loads(check.stdout.splitlines()[-1])["revision"] == migrate.head_revision()


@pytest.mark.parametrize("release", ["", "../etc/passwd", "-rf", "0.2.0 x"])
def test_a_predeploy_dump_needs_a_plain_release_name(live: Live, release: str):
    migrate.upgrade(live.url)

    result = live.backup("predeploy", release)

    assert result.returncode == 2
    assert "predeploy needs a release name" in result.stderr
    assert live.files() == set()


# --- counts, the off-site copy, the restore drill (tas_dump.py, tas-backup.sh, tas_drill.py) ---

DRILL = ROOT / "releases" / "scripts" / "tas_drill.py"


def _restic_env(tmp_path: Path) -> dict[str, str]:
    """A local folder standing in for the off-site repository."""
    env = {
        "RESTIC_REPOSITORY": str(tmp_path / "offsite"),
        "RESTIC_PASSWORD": "a test password",
        "RESTIC_CACHE_DIR": str(tmp_path / "restic-cache"),
    }
    init = subprocess.run(
        ["restic", "init"], env={**os.environ, **env}, capture_output=True, text=True
    )
    assert init.returncode == 0, init.stderr
    return env


def _drill(live: Live, tmp_path: Path, source: str, env_file: str = "") -> tuple[int, dict]:
    result = subprocess.run(
        [
            PYTHON,
            "-I",
            str(DRILL),
            source,
            f"--backup-dir={live.backups}",
            f"--log={live.backups / 'drills.jsonl'}",
            f"--env-file={env_file or tmp_path / 'no-env'}",
            f"--scratch={live.name}_drill",
            f"--app-role={live.role}",
            "--app-user=",
            "--admin-user=",
            f"--app-home={tmp_path}",
        ],
        env=live.env,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = (live.backups / "drills.jsonl").read_text().splitlines()
    assert result.stdout.strip().splitlines()[-1] == lines[-1]
    return result.returncode, json.loads(lines[-1])


@pytest.fixture
def populated(live: Live) -> Live:
    migrate.upgrade(live.url)
    for name in ("ann", "bob", "cy"):
        live.add_user(name)
    live.query("INSERT INTO tasks (user_id, name) SELECT id, 'Taxes' FROM users")
    return live


def test_a_nightly_backup_records_its_row_counts_and_says_no_offsite_copy(populated: Live):
    result = populated.backup()

    assert result.returncode == 0, result.stderr
    dump, note = result.stdout.strip().splitlines()
    assert note == "offsite: not configured (no RESTIC_REPOSITORY in the env file)"
    counts = json.loads(Path(f"{dump}.counts.json").read_text())
    assert counts["tables"]["users"] == 3
    assert counts["tables"]["tasks"] == 3
    assert "alembic_version" not in counts["tables"]
    status = json.loads((populated.backups / "last-ok").read_text())
    assert status["dump"] == Path(dump).name
    assert status["offsite_snapshot"] == ""


def test_a_nightly_backup_goes_off_site_and_the_drill_restores_it(populated: Live, tmp_path: Path):
    restic = _restic_env(tmp_path)

    result = populated.backup(env=restic)

    assert result.returncode == 0, result.stderr
    dump, copied = result.stdout.strip().splitlines()
    snapshot = copied.removeprefix("offsite snapshot ")
    assert re.fullmatch(r"[0-9a-f]{8,64}", snapshot)
    listed = subprocess.run(
        ["restic", "snapshots", "--json"], env={**os.environ, **restic}, capture_output=True
    )
    (listed_snapshot,) = json.loads(listed.stdout)
    assert listed_snapshot["id"].startswith(snapshot)
    assert sorted(listed_snapshot["paths"]) == [dump, f"{dump}.counts.json"]
    assert json.loads((populated.backups / "last-ok").read_text())["offsite_snapshot"] == snapshot

    # The app writes on after the dump: the drill compares with the counts AT dump time.
    populated.add_user("dee")
    code, local = _drill(populated, tmp_path, "local")
    assert code == 0, local
    assert local["result"] == "ok" and local["source"] == "local"
    assert local["backup"] == Path(dump).name
    assert local["rows"] == 6 and local["tables"] >= 2
    assert local["restore_seconds"] >= 0

    env_file = tmp_path / "tas.env"
    env_file.write_text(
        f"RESTIC_REPOSITORY={restic['RESTIC_REPOSITORY']}\n"
        f"RESTIC_PASSWORD={restic['RESTIC_PASSWORD']}\n"
    )
    code, offsite = _drill(populated, tmp_path, "offsite", str(env_file))
    assert code == 0, offsite
    assert offsite["source"] == "offsite" and offsite["result"] == "ok"
    assert offsite["snapshot"] == snapshot[:8] and offsite["backup"] == Path(dump).name
    assert offsite["rows"] == 6
    # The scratch database is gone after each drill.
    assert populated.databases() == {populated.name}


def test_a_drill_whose_rows_do_not_match_fails_and_says_which_table(
    populated: Live, tmp_path: Path
):
    dump = populated.nightly()
    counts_file = Path(f"{dump}.counts.json")
    counts = json.loads(counts_file.read_text())
    counts["tables"]["users"] = 4  # as if a row had gone missing from the dump
    counts_file.write_text(json.dumps(counts))

    code, entry = _drill(populated, tmp_path, "local")

    assert code == 1
    assert entry["result"] == "failed"
    assert entry["reason"] == "row counts differ: users: 4 at dump time, 3 restored"
    assert populated.databases() == {populated.name}


def test_an_offsite_drill_without_a_repository_fails_plainly(populated: Live, tmp_path: Path):
    populated.nightly()

    code, entry = _drill(populated, tmp_path, "offsite")

    assert code == 1
    assert entry["result"] == "failed"
    assert entry["reason"].startswith("no off-site repository configured")


def test_an_offsite_copy_that_fails_fails_the_backup_but_keeps_the_local_dump(
    populated: Live, tmp_path: Path
):
    restic = {**_restic_env(tmp_path), "RESTIC_PASSWORD": "the wrong password"}

    result = populated.backup(env=restic)

    assert result.returncode == 1
    assert "the off-site copy (restic backup to" in result.stderr
    dumps = [name for name in populated.files() if name.endswith(".dump")]
    assert len(dumps) == 1
    assert "last-ok" not in populated.files()


def test_a_drill_killed_half_way_leaves_a_scratch_database_the_next_drill_replaces(
    populated: Live, tmp_path: Path
):
    """What a drill killed during its restore leaves (its scratch database, half full) does
    not stop the next one: it starts from a fresh scratch database and drops it after."""
    populated.nightly()
    scratch = f"{populated.name}_drill"
    with populated.connect("postgres", admin=True) as conn:
        conn.execute(f'CREATE DATABASE "{scratch}"')
    with populated.connect(scratch, admin=True) as conn:
        conn.execute("CREATE TABLE users (id int)")  # a restore cut short

    code, entry = _drill(populated, tmp_path, "local")

    assert code == 0 and entry["result"] == "ok"
    with populated.connect("postgres", admin=True) as conn:
        left = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (scratch,)).fetchall()
    assert left == []

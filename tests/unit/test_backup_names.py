"""Which dump is which, and which pre-deploy dumps the deploy's cleanup deletes."""

from __future__ import annotations

import shlex

from releases import backups

DIR = "/srv/tas/backups"
NIGHTLY = f"{DIR}/tas-20261127T020000Z.dump"
PRE_RESTORE = f"{DIR}/tas-pre-restore-20261127T090000Z.dump"
V1 = "0.2.0-20261120T101500Z"
V2 = "0.3.0-20261126T101500Z"
DUMP_V1 = f"{DIR}/tas-predeploy-20261126T101400Z-{V1}.dump"
DUMP_V2 = f"{DIR}/tas-predeploy-20261127T101400Z-{V2}.dump"


def test_each_kind_of_dump_is_told_by_its_name():
    assert backups.backup_kind(NIGHTLY) == "nightly"
    assert backups.backup_kind(DUMP_V1) == "predeploy"
    assert backups.backup_kind(PRE_RESTORE) == "pre-restore"
    assert backups.backup_kind(f"{DIR}/notes.txt") is None
    assert backups.predeploy_release(DUMP_V1) == V1
    assert backups.predeploy_release(NIGHTLY) is None
    assert backups.backup_stamp(DUMP_V2) == "20261127T101400Z"
    assert backups.backup_stamp(PRE_RESTORE) == "20261127T090000Z"


def test_cleanup_deletes_the_predeploy_dumps_of_releases_no_longer_kept_and_nothing_else():
    paths = [NIGHTLY, DUMP_V1, DUMP_V2, PRE_RESTORE]

    assert backups.predeploy_dumps_to_delete(paths, [V2, "0.4.0-20261128T101500Z"]) == [DUMP_V1]
    assert backups.predeploy_dumps_to_delete(paths, [V1, V2]) == []
    assert backups.predeploy_dumps_to_delete(paths, ["0.9.0-20261201T000000Z"]) == [
        DUMP_V1,
        DUMP_V2,
    ]


def test_an_empty_list_of_kept_releases_deletes_nothing():
    assert backups.predeploy_dumps_to_delete([DUMP_V1, DUMP_V2], []) == []


def test_the_restore_command_quotes_the_dump_and_passes_the_expected_revision():
    command = backups.restore_command(f"{DIR}/tas-x y.dump", "0004", check=True)
    argv = shlex.split(command)
    assert argv[0] == "/usr/local/sbin/tas-restore"
    assert "--expect-revision=0004" in argv and "--check" in argv
    assert argv[-2:] == ["--", f"{DIR}/tas-x y.dump"]
    assert "--expect-revision" not in backups.restore_command(NIGHTLY)


def test_the_backups_report_shows_both_copies_and_the_last_drill_of_each_source():
    from releases.backups import Inventory
    from releases.backups import inventory_lines
    from releases.backups import last_drills

    now = 1_800_000_000.0
    log = "\n".join(
        [
            '{"source": "local", "result": "failed", "at": "A", "backup": "old.dump",'
            ' "reason": "row counts differ: users: 4 at dump time, 3 restored"}',
            "not json",
            '{"source": "local", "result": "ok", "at": "2027-01-15T05:20:00Z",'
            ' "backup": "tas-20270115T031700Z.dump", "restore_seconds": 0.8, "rows": 12,'
            ' "tables": 9}',
        ]
    )
    found = Inventory(
        dumps=[{"name": "tas-20270115T031700Z.dump", "size": 3 * 1024 * 1024, "mtime": now - 7200}],
        repository="sftp:backup@vault:/tas",
        snapshots=[
            {
                "short_id": "3282ea75",
                "time": "2027-01-15T03:17:09.1234Z",
                "paths": ["/srv/tas/backups/tas-20270115T031700Z.dump", "/x.counts.json"],
            }
        ],
        offsite_error="",
        drills=last_drills(log),
        status={"finished_at": now - 7000, "dump": "tas-20270115T031700Z.dump"},
    )

    lines = inventory_lines(found, now=now)

    assert "  tas-20270115T031700Z.dump  3.0 MiB  2.0 h old  (nightly)" in lines
    assert "off-site snapshots in sftp:backup@vault:/tas (1):" in lines
    assert "  3282ea75  2027-01-15T03:17:09Z  tas-20270115T031700Z.dump" in lines
    assert lines[-2] == (
        "last local drill: ok at 2027-01-15T05:20:00Z: tas-20270115T031700Z.dump restored in "
        "0.8 s, 12 rows in 9 tables match the dump's counts"
    )
    assert lines[-1] == "last offsite drill: none yet"

    unconfigured = inventory_lines(
        Inventory(dumps=[], repository="", snapshots=[], offsite_error="", drills={}, status={}),
        now=now,
    )
    assert (
        "off-site: not configured (invoke provision --offsite-repo sets a restic repository)"
        in (unconfigured)
    )
    assert "last good nightly backup: none recorded" in unconfigured

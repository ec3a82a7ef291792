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

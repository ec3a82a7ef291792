"""Pieces of `invoke provision` that need no server: step lines, the off-site repository."""

from __future__ import annotations

from releases import provision
from releases.provision import Notice
from releases.provision import StepResult
from releases.remote import render


def test_a_secret_shown_once_stays_out_of_the_step_line():
    result = StepResult(
        "env file",
        ["write /srv/tas/shared/tas.env", "generate RESTIC_PASSWORD", Notice("  secret\n    pw")],
    )

    line = result.line(dry_run=False)

    assert line == "env file: changed (write /srv/tas/shared/tas.env; generate RESTIC_PASSWORD)"
    assert StepResult("x", [Notice("only a notice")]).line(dry_run=False) == "x: unchanged"


def test_only_a_repository_on_the_servers_own_disk_is_opened_to_the_backup_unit():
    assert provision.offsite_local_path("/mnt/second-disk/tas") == "/mnt/second-disk/tas"
    assert provision.offsite_local_path("local:/srv/offsite") == "/srv/offsite"
    assert provision.offsite_local_path("sftp:backup@vault:/tas") is None
    assert provision.offsite_local_path("s3:s3.amazonaws.com/bucket") is None


def test_the_backup_unit_alerts_on_failure_and_writes_only_its_folders():
    unit = render(
        "tas-backup.service",
        backup_script=provision.BACKUP_SCRIPT,
        backup_dir=provision.BACKUP_DIR,
        backup_keep=14,
        env_file=provision.ENV_FILE,
        offsite_paths=" /srv/offsite/tas",
    ).splitlines()

    assert "OnFailure=tas-alert@%n.service" in unit
    assert "ReadWritePaths=/srv/tas/backups /srv/offsite/tas" in unit
    assert "User=tas" in unit and "ProtectSystem=strict" in unit
    assert "Environment=RESTIC_CACHE_DIR=/var/cache/tas-restic" in unit
    assert "OnFailure=tas-alert@%n.service" in render("certbot-alert.conf").splitlines()

"""Pieces of `invoke provision` that need no server: step lines, the off-site repository."""

from __future__ import annotations

import pytest

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


# /etc/nginx/nginx.conf as Debian 12's and Ubuntu 22.04's nginx packages install it (the
# parts around the limits; the http block shortened).
DISTRIBUTION_NGINX_CONF = """user www-data;
worker_processes auto;
pid /run/nginx.pid;
error_log /var/log/nginx/error.log;
include /etc/nginx/modules-enabled/*.conf;

events {
\tworker_connections 768;
\t# multi_accept on;
}

http {
\tsendfile on;
\tinclude /etc/nginx/sites-enabled/*;
}
"""


def test_nginx_gets_the_sites_connection_limits_and_nothing_else_changes():
    tuned = provision.tuned_nginx_conf(DISTRIBUTION_NGINX_CONF)

    before, after = DISTRIBUTION_NGINX_CONF.splitlines(), tuned.splitlines()
    assert [line for line in before if line not in after] == ["\tworker_connections 768;"]
    assert [line for line in after if line not in before] == [
        "worker_rlimit_nofile 8192;",
        "\tworker_connections 4096;",
    ]
    top, events = tuned.split("events {")
    assert "worker_rlimit_nofile 8192;" in top and "worker_connections 4096;" in events
    # Twice is once: the next provisioning finds nothing to change.
    assert provision.tuned_nginx_conf(tuned) == tuned


def test_nginx_limits_an_operator_raised_further_are_kept():
    raised = DISTRIBUTION_NGINX_CONF.replace("768", "10000").replace(
        "events {", "worker_rlimit_nofile 30000;\nevents {"
    )

    assert provision.tuned_nginx_conf(raised) == raised


def test_nginx_limits_are_added_where_the_file_has_none():
    bare = "user www-data;\nevents {\n\t# worker_connections 1024;\n}\nhttp {\n}\n"

    tuned = provision.tuned_nginx_conf(bare)

    assert tuned == (
        "user www-data;\nworker_rlimit_nofile 8192;\n\nevents {\n\tworker_connections 4096;\n"
        "\t# worker_connections 1024;\n}\nhttp {\n}\n"
    )


def test_an_nginx_conf_without_events_block_is_refused_with_what_to_do():
    with pytest.raises(RuntimeError, match="no events block: set worker_connections 4096"):
        provision.tuned_nginx_conf("http {\n}\n")

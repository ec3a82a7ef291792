"""The service unit's sandbox, and the canary's copy of it (releases/deploy.py)."""

from __future__ import annotations

from releases import provision
from releases.deploy import service_hardening
from releases.remote import render

# Issue 18's directives: the app needs unix sockets only, no capabilities, no namespaces.
REQUIRED = [
    "IPAddressDeny=any",
    "CapabilityBoundingSet=",
    "SystemCallFilter=@system-service",
    "ProtectProc=invisible",
    "RestrictNamespaces=yes",
    "RestrictAddressFamilies=AF_UNIX",
    "PrivateNetwork=true",
    f"ReadWritePaths={provision.DATA_DIR}",
]


def _unit() -> str:
    return render(
        "tas.service",
        env_file=provision.ENV_FILE,
        app_root=provision.APP_ROOT,
        data_dir=provision.DATA_DIR,
    )


def test_the_unit_carries_the_hardening_and_lets_the_app_write_only_its_data_folder():
    lines = _unit().splitlines()
    for directive in REQUIRED:
        assert directive in lines, directive
    assert [line for line in lines if line.startswith("ReadWritePaths=")] == [
        "ReadWritePaths=/srv/tas/shared/data"
    ]


def test_the_canary_gets_every_sandboxing_line_of_the_unit_and_nothing_else():
    hardening = service_hardening(_unit())
    for directive in REQUIRED:
        assert directive in hardening, directive
    # Both SystemCallFilter lines, in order: the allow-list, then what it takes away.
    filters = [line for line in hardening if line.startswith("SystemCallFilter=")]
    assert filters == ["SystemCallFilter=@system-service", "SystemCallFilter=~@resources"]
    names = {line.split("=", 1)[0] for line in hardening}
    assert not names & {"ExecStart", "User", "EnvironmentFile", "Type", "RuntimeDirectory"}
